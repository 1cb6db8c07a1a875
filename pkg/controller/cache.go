package controller

import (
	"context"
	"time"
	"unique"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/mumoshu/aws-secret-controller/pkg/apis/mumoshu/v1alpha1"
)

// This file is what the controller keeps of objects between syncs: no secret value, and the
// strings many objects share held once.

// NewSecretInformer returns the Secret informer the controller needs, for namespace (empty for
// all): it lists and watches only the controller's Secrets (ManagedSecretsOnly), and drops their
// data as each object arrives (TransformForCache, applied to every LIST page and every watch
// event before client-go holds on to it). An informer transform alone runs later: client-go 0.34
// keeps a whole initial list, values included, before it transforms any of it, which at 10,000
// Secrets of 4 KiB was the controller's peak. Register it with the informer factory, so that
// factory.Core().V1().Secrets() returns it:
//
//	factory.InformerFor(&corev1.Secret{}, func(c kubernetes.Interface, resync time.Duration) cache.SharedIndexInformer {
//		return controller.NewSecretInformer(c, namespace, resync)
//	})
func NewSecretInformer(client kubernetes.Interface, namespace string, resync time.Duration) cache.SharedIndexInformer {
	secrets := client.CoreV1().Secrets(namespace)
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			ManagedSecretsOnly(&o)
			list, err := secrets.List(ctx, o)
			if err != nil {
				return nil, err
			}
			for i := range list.Items {
				if _, err := TransformForCache(&list.Items[i]); err != nil {
					return nil, err
				}
			}
			return list, nil
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			ManagedSecretsOnly(&o)
			w, err := secrets.Watch(ctx, o)
			if err != nil {
				return nil, err
			}
			return watch.Filter(w, func(e watch.Event) (watch.Event, bool) {
				switch e.Type {
				case watch.Added, watch.Modified, watch.Deleted:
					if secret, ok := e.Object.(*corev1.Secret); ok {
						DropSecretData(secret)
					}
				}
				return e, true
			}), nil
		},
	}
	informer := cache.NewSharedIndexInformer(lw, &corev1.Secret{}, resync, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	// The rest of TransformForCache (managedFields, shared strings) runs once per object, and
	// covers what a watch.Filter does not see.
	_ = informer.SetTransform(TransformForCache) // cannot fail: the informer has not started
	return informer
}

// TransformForCache is an informer transform that drops from cached objects what the controller
// never reads between syncs: a Secret's data (replaced by their digest, see DropSecretData, so
// that no secret value stays in memory), managedFields, and (but on Secrets, whose annotations it
// writes back) kubectl's last-applied-configuration annotation, each often as large as the rest of
// a small object. Pass it to WithTransform on the informer factories.
func TransformForCache(obj any) (any, error) {
	accessor, err := meta.Accessor(obj)
	if err != nil {
		return obj, nil // a tombstone or another wrapper: nothing to trim
	}
	accessor.SetManagedFields(nil)
	if secret, isSecret := obj.(*corev1.Secret); isSecret {
		// A Secret's annotations are written back on update: another writer's must stay whole.
		DropSecretData(secret)
		secret.Type = corev1.SecretType(intern(string(secret.Type)))
	} else if annotations := accessor.GetAnnotations(); annotations[lastAppliedAnnotation] != "" {
		delete(annotations, lastAppliedAnnotation)
		if len(annotations) == 0 {
			annotations = nil
		}
		accessor.SetAnnotations(annotations)
	}
	internMeta(accessor)
	if a, ok := obj.(*v1alpha1.AWSSecret); ok {
		internAWSSecret(a)
	}
	return obj, nil
}

// intern returns s from a set of strings shared by every cached object: the strings many objects
// hold (namespaces, label and annotation keys, secret ids, version ids, reasons, messages) are
// then kept once, however many objects hold them.
func intern(s string) string {
	if s == "" {
		return s
	}
	return unique.Make(s).Value()
}

// internMeta shares what an object's metadata holds in common with others: its namespace, its
// label and annotation keys, its label values and the values of the controller's annotations
// that name versions, and its owners' group and kind.
func internMeta(m metav1.Object) {
	m.SetNamespace(intern(m.GetNamespace()))
	if labels := m.GetLabels(); len(labels) > 0 {
		shared := make(map[string]string, len(labels))
		for k, v := range labels {
			shared[intern(k)] = intern(v)
		}
		m.SetLabels(shared)
	}
	if annotations := m.GetAnnotations(); len(annotations) > 0 {
		shared := make(map[string]string, len(annotations))
		for k, v := range annotations {
			switch k {
			case AnnotationStringDataSecretID, AnnotationStringDataVersionID, AnnotationDataSecretID, AnnotationDataVersionID, AnnotationMapping, AnnotationDataVersions:
				v = intern(v)
			}
			shared[intern(k)] = v
		}
		m.SetAnnotations(shared)
	}
	owners := m.GetOwnerReferences()
	for i := range owners {
		o := &owners[i]
		o.APIVersion, o.Kind = intern(o.APIVersion), intern(o.Kind)
		o.Controller, o.BlockOwnerDeletion = sharedBool(o.Controller), sharedBool(o.BlockOwnerDeletion)
	}
}

var sharedTrue, sharedFalse = true, false

// sharedBool returns a pointer to a shared copy of *b, for the fields cached objects never change.
func sharedBool(b *bool) *bool {
	switch {
	case b == nil:
		return nil
	case *b:
		return &sharedTrue
	default:
		return &sharedFalse
	}
}

// internAWSSecret shares the secret ids, version ids and condition texts an AWSSecret holds.
func internAWSSecret(a *v1alpha1.AWSSecret) {
	ref := func(r *v1alpha1.SecretsManagerSecretRef) {
		r.SecretID, r.VersionID = intern(r.SecretID), intern(r.VersionID)
	}
	for _, d := range []*v1alpha1.DataSource{a.Spec.StringDataFrom, a.Spec.DataFrom} {
		if d != nil {
			ref(&d.SecretsManagerSecretRef)
		}
	}
	for i := range a.Spec.Data {
		ref(&a.Spec.Data[i].SecretsManagerSecretRef)
	}
	for _, r := range []*v1alpha1.SecretsManagerSecretRef{a.Status.StringDataFrom, a.Status.DataFrom} {
		if r != nil {
			ref(r)
		}
	}
	for i := range a.Status.Data {
		ref(&a.Status.Data[i])
	}
	for i := range a.Status.Conditions {
		c := &a.Status.Conditions[i]
		c.Type, c.Status, c.Reason, c.Message = intern(c.Type), metav1.ConditionStatus(intern(string(c.Status))), intern(c.Reason), intern(c.Message)
	}
}
