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
	"github.com/mumoshu/aws-secret-controller/pkg/generated/clientset/versioned"
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
	return newTrimmingInformer(secretListWatch(client, namespace), &corev1.Secret{}, resync)
}

// secretListWatch lists and watches the controller's Secrets in namespace, trimmed as they arrive.
func secretListWatch(client kubernetes.Interface, namespace string) *cache.ListWatch {
	secrets := client.CoreV1().Secrets(namespace)
	return trimmingListWatch(ManagedSecretsOnly, func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
		return secrets.List(ctx, o)
	}, secrets.Watch)
}

// NewAWSSecretInformer returns the AWSSecret informer the controller needs, for namespace (empty
// for all): it trims each AWSSecret as it arrives (TransformForCache: no managedFields, no
// kubectl last-applied annotation), in every LIST page and every watch event, so that a
// restart's initial list is not held whole, untrimmed, before the informer's transform runs: at
// 100,000 AWSSecrets that was about 100 MiB on top of the cache. Register it with the informer
// factory, so that factory.Mumoshu().V1alpha1().AWSSecrets() returns it:
//
//	factory.InformerFor(&v1alpha1.AWSSecret{}, func(c versioned.Interface, resync time.Duration) cache.SharedIndexInformer {
//		return controller.NewAWSSecretInformer(c, namespace, resync)
//	})
func NewAWSSecretInformer(client versioned.Interface, namespace string, resync time.Duration) cache.SharedIndexInformer {
	return newTrimmingInformer(awsSecretListWatch(client, namespace), &v1alpha1.AWSSecret{}, resync)
}

// awsSecretListWatch lists and watches the AWSSecrets in namespace, trimmed as they arrive.
func awsSecretListWatch(client versioned.Interface, namespace string) *cache.ListWatch {
	awsSecrets := client.MumoshuV1alpha1().AWSSecrets(namespace)
	return trimmingListWatch(nil, func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
		return awsSecrets.List(ctx, o)
	}, awsSecrets.Watch)
}

// newTrimmingInformer is an informer of lw, a trimmingListWatch, indexed by namespace. It needs
// no transform: every object it stores came through lw, trimmed. (A factory's InformerFor sets
// the factory's transform on it; WithTransform(TransformForCache) is harmless, the transform
// being idempotent, but only repeats the work.)
func newTrimmingInformer(lw *cache.ListWatch, example runtime.Object, resync time.Duration) cache.SharedIndexInformer {
	return cache.NewSharedIndexInformer(lw, example, resync, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
}

// trimmingListWatch lists and watches with list and watchFn, with the options tweak (if not nil)
// changes, passing every listed object and every added, modified or deleted one through
// TransformForCache before it returns them.
func trimmingListWatch(tweak func(*metav1.ListOptions),
	list func(context.Context, metav1.ListOptions) (runtime.Object, error),
	watchFn func(context.Context, metav1.ListOptions) (watch.Interface, error)) *cache.ListWatch {
	if tweak == nil {
		tweak = func(*metav1.ListOptions) {}
	}
	return &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			tweak(&o)
			l, err := list(ctx, o)
			if err != nil {
				return nil, err
			}
			if err := meta.EachListItem(l, func(obj runtime.Object) error {
				_, err := TransformForCache(obj)
				return err
			}); err != nil {
				return nil, err
			}
			return l, nil
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			tweak(&o)
			w, err := watchFn(ctx, o)
			if err != nil {
				return nil, err
			}
			return watch.Filter(w, func(e watch.Event) (watch.Event, bool) {
				switch e.Type {
				case watch.Added, watch.Modified, watch.Deleted:
					// Not bookmarks: a streamed list's last one carries an annotation the
					// reflector reads.
					_, _ = TransformForCache(e.Object) // cannot fail
				}
				return e, true
			}), nil
		},
	}
}

// TransformForCache is an informer transform that drops from cached objects what the controller
// never reads between syncs: a Secret's data (replaced by their digest, see DropSecretData, so
// that no secret value stays in memory), managedFields, and (but on Secrets, whose annotations it
// writes back) kubectl's last-applied-configuration annotation, each often as large as the rest of
// a small object. NewSecretInformer and NewAWSSecretInformer apply it to every object as it
// arrives; pass it to WithTransform for an informer of these kinds built otherwise.
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
