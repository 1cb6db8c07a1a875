package controller

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	k8sfake "k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/cache"

	"github.com/mumoshu/aws-secret-controller/pkg/apis/mumoshu/v1alpha1"
	"github.com/mumoshu/aws-secret-controller/pkg/generated/clientset/versioned/fake"
)

// TestListAndWatchTrimAsObjectsArrive: the informers' list and watch trim every object before
// client-go holds on to it, because a streamed initial list sits whole in the reflector before
// the informer's transform runs. The LIST and each watch event are checked as they come, without
// the transform: AWSSecrets without managedFields or kubectl's last-applied annotation, Secrets
// without managedFields or data.
func TestListAndWatchTrimAsObjectsArrive(t *testing.T) {
	managed := []metav1.ManagedFieldsEntry{{Manager: "kubectl", Operation: metav1.ManagedFieldsOperationApply,
		FieldsType: "FieldsV1", FieldsV1: &metav1.FieldsV1{Raw: []byte(`{"f:spec":{}}`)}}}
	listed := newAWSSecret("listed", seedSecretID, seedVersionID)
	listed.ManagedFields = managed
	listed.Annotations = map[string]string{lastAppliedAnnotation: "{}", "team": "payments"}
	watched := listed.DeepCopy()
	watched.Name = "watched"
	listedSecret := syncedSecret(listed, map[string]string{"foo": secretValue})
	listedSecret.ManagedFields = managed
	watchedSecret := syncedSecret(watched, map[string]string{"foo": secretValue})
	watchedSecret.ManagedFields = managed

	awsClient := fake.NewClientset(listed)
	kubeClient := k8sfake.NewClientset(listedSecret)
	for _, tc := range []struct {
		name   string
		lw     *cache.ListWatch
		create func() error
	}{
		// Added through the trackers: the fakes' field managers know no AWSSecret schema.
		{name: "AWSSecrets", lw: awsSecretListWatch(awsClient, ""), create: func() error { return awsClient.Tracker().Add(watched) }},
		{name: "Secrets", lw: secretListWatch(kubeClient, ""), create: func() error { return kubeClient.Tracker().Add(watchedSecret) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			list, err := tc.lw.ListWithContext(ctx, metav1.ListOptions{})
			if err != nil {
				t.Fatal(err)
			}
			items, err := meta.ExtractList(list)
			if err != nil || len(items) != 1 {
				t.Fatalf("the LIST holds %d objects (%v), want 1", len(items), err)
			}
			assertTrimmed(t, "listed", items[0])

			w, err := tc.lw.WatchWithContext(ctx, metav1.ListOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer w.Stop()
			if err := tc.create(); err != nil {
				t.Fatal(err)
			}
			select {
			case e := <-w.ResultChan():
				assertTrimmed(t, "watched", e.Object)
			case <-ctx.Done():
				t.Fatal("no watch event")
			}
		})
	}
}

// assertTrimmed fails unless obj is as TransformForCache leaves it.
func assertTrimmed(t *testing.T, what string, obj runtime.Object) {
	t.Helper()
	m, err := meta.Accessor(obj)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if m.GetManagedFields() != nil {
		t.Errorf("%s: %s keeps its managedFields", what, m.GetName())
	}
	switch o := obj.(type) {
	case *v1alpha1.AWSSecret:
		if _, ok := o.Annotations[lastAppliedAnnotation]; ok || o.Annotations["team"] != "payments" {
			t.Errorf("%s: annotations %v, want the last-applied one dropped and the others kept", what, o.Annotations)
		}
	case *corev1.Secret:
		if o.Data != nil || o.Annotations[cachedDataDigest] == "" {
			t.Errorf("%s: the Secret keeps its data (%d keys) or has no digest of them", what, len(o.Data))
		}
	default:
		t.Errorf("%s: unexpected %T", what, obj)
	}
}
