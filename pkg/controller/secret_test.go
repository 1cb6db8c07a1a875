package controller

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	kubeinformers "k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	k8sfake "k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/cache"

	"github.com/mumoshu/aws-secret-controller/pkg/apis/mumoshu/v1alpha1"
	"github.com/mumoshu/aws-secret-controller/pkg/render"
)

// TestValidateSecret mirrors the API server's rules per Secret type, so a Secret is never
// replaced by one it would refuse. The e2e suite checks the same refusals on a real API server.
func TestValidateSecret(t *testing.T) {
	tests := map[string]struct {
		secretType corev1.SecretType
		data       map[string]string
		wantErr    bool
	}{
		"Opaque takes anything":            {secretType: corev1.SecretTypeOpaque, data: map[string]string{"x": "y"}},
		"custom types take anything":       {secretType: "example.com/custom", data: map[string]string{}},
		"tls with cert and key":            {secretType: corev1.SecretTypeTLS, data: map[string]string{"tls.crt": "c", "tls.key": "k"}},
		"tls without key":                  {secretType: corev1.SecretTypeTLS, data: map[string]string{"tls.crt": "c"}, wantErr: true},
		"tls without anything":             {secretType: corev1.SecretTypeTLS, data: map[string]string{"foo": "bar"}, wantErr: true},
		"basic-auth with username only":    {secretType: corev1.SecretTypeBasicAuth, data: map[string]string{"username": "u"}},
		"basic-auth with empty password":   {secretType: corev1.SecretTypeBasicAuth, data: map[string]string{"password": ""}},
		"basic-auth without either":        {secretType: corev1.SecretTypeBasicAuth, data: map[string]string{"user": "u"}, wantErr: true},
		"ssh-auth with a key":              {secretType: corev1.SecretTypeSSHAuth, data: map[string]string{"ssh-privatekey": "k"}},
		"ssh-auth with an empty key":       {secretType: corev1.SecretTypeSSHAuth, data: map[string]string{"ssh-privatekey": ""}, wantErr: true},
		"dockerconfigjson with JSON":       {secretType: corev1.SecretTypeDockerConfigJson, data: map[string]string{".dockerconfigjson": `{"auths":{}}`}},
		"dockerconfigjson with non-JSON":   {secretType: corev1.SecretTypeDockerConfigJson, data: map[string]string{".dockerconfigjson": "nope"}, wantErr: true},
		"dockerconfigjson without the key": {secretType: corev1.SecretTypeDockerConfigJson, data: map[string]string{"foo": "{}"}, wantErr: true},
		"dockercfg with JSON":              {secretType: corev1.SecretTypeDockercfg, data: map[string]string{".dockercfg": `{}`}},
		"dockercfg without the key":        {secretType: corev1.SecretTypeDockercfg, data: map[string]string{}, wantErr: true},
		"service-account-token is refused": {secretType: corev1.SecretTypeServiceAccountToken, data: map[string]string{"token": "t"}, wantErr: true},
		"values over 1 MiB":                {secretType: corev1.SecretTypeOpaque, data: map[string]string{"big": strings.Repeat("x", 1<<20+1)}, wantErr: true},
		"values of exactly 1 MiB":          {secretType: corev1.SecretTypeOpaque, data: map[string]string{"big": strings.Repeat("x", 1<<20)}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			data := map[string][]byte{}
			for k, v := range tc.data {
				data[k] = []byte(v)
			}
			err := validateSecret(tc.secretType, data)
			if (err != nil) != tc.wantErr {
				t.Fatalf("validateSecret() = %v, want error: %v", err, tc.wantErr)
			}
			if err == nil {
				return
			}
			if f := classify(err); f.reason != v1alpha1.ReasonInvalidSecret || f.transient {
				t.Errorf("reason %s transient=%v, want permanent InvalidSecret", f.reason, f.transient)
			}
			for _, v := range tc.data {
				if len(v) > 2 && strings.Contains(err.Error(), v) {
					t.Errorf("message %q repeats a value", err)
				}
			}
		})
	}
}

// TestOwnership shows which labels and annotations the controller counts as its own: the ones
// it sets, and the ones its records say it set; never anybody else's.
func TestOwnership(t *testing.T) {
	spec := func(labels, annotations map[string]string) *v1alpha1.AWSSecret {
		a := newAWSSecret("example", seedSecretID, seedVersionID)
		a.Spec.Metadata.Labels, a.Spec.Metadata.Annotations = labels, annotations
		return a
	}
	data := map[string][]byte{"foo": []byte("bar")}
	written := func(a *v1alpha1.AWSSecret) *corev1.Secret { return newSecret(a, want(a), data, render.DataHash(data)) }

	tests := map[string]struct {
		// before is the AWSSecret the Secret was written for; now is the one it must match.
		before, now *v1alpha1.AWSSecret
		// edit changes the Secret after it was written.
		edit          func(*corev1.Secret)
		wantUpToDate  bool
		wantLabels    map[string]string // after mark, besides managed-by
		wantNoLabel   string
		wantNoAnno    string
		wantAnnoValue [2]string // key, value after mark
	}{
		"unchanged": {
			before: spec(map[string]string{"team": "a"}, nil), now: spec(map[string]string{"team": "a"}, nil),
			wantUpToDate: true, wantLabels: map[string]string{"team": "a"},
		},
		"others' label and annotation are not ours": {
			before: spec(nil, nil), now: spec(nil, nil),
			edit:         func(s *corev1.Secret) { s.Labels["webhook"] = "x"; s.Annotations["tool"] = "y" },
			wantUpToDate: true, wantLabels: map[string]string{"webhook": "x"}, wantAnnoValue: [2]string{"tool", "y"},
		},
		"our label's value edited": {
			before: spec(map[string]string{"team": "a"}, nil), now: spec(map[string]string{"team": "a"}, nil),
			edit:       func(s *corev1.Secret) { s.Labels["team"] = "b" },
			wantLabels: map[string]string{"team": "a"},
		},
		"our annotation removed by hand": {
			before: spec(nil, map[string]string{"note": "n"}), now: spec(nil, map[string]string{"note": "n"}),
			edit:          func(s *corev1.Secret) { delete(s.Annotations, "note") },
			wantAnnoValue: [2]string{"note", "n"},
		},
		"label dropped from spec": {
			before: spec(map[string]string{"team": "a", "tier": "1"}, nil), now: spec(map[string]string{"tier": "1"}, nil),
			wantLabels: map[string]string{"tier": "1"}, wantNoLabel: "team",
		},
		"annotation dropped from spec, another writer's kept": {
			before: spec(nil, map[string]string{"note": "n"}), now: spec(nil, nil),
			edit:       func(s *corev1.Secret) { s.Annotations["tool"] = "y" },
			wantNoAnno: "note", wantAnnoValue: [2]string{"tool", "y"},
		},
		"dataFrom dropped: its ref annotations go": {
			before: func() *v1alpha1.AWSSecret {
				a := spec(nil, nil)
				a.Spec.DataFrom = &v1alpha1.DataSource{SecretsManagerSecretRef: v1alpha1.SecretsManagerSecretRef{SecretID: "b", VersionID: newVersionID}}
				return a
			}(),
			now:        spec(nil, nil),
			wantNoAnno: AnnotationDataVersionID,
		},
		"a label another writer added and the spec now claims": {
			before: spec(nil, nil), now: spec(map[string]string{"team": "a"}, nil),
			edit:       func(s *corev1.Secret) { s.Labels["team"] = "theirs" },
			wantLabels: map[string]string{"team": "a"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			s := written(tc.before)
			if tc.edit != nil {
				tc.edit(s)
			}
			w := want(tc.now)
			annotations := w.withHash(render.DataHash(data))
			if got := metadataUpToDate(s, w.labels, annotations); got != tc.wantUpToDate {
				t.Errorf("metadataUpToDate() = %v, want %v", got, tc.wantUpToDate)
			}
			mark(s, w.labels, annotations)
			if !metadataUpToDate(s, w.labels, annotations) {
				t.Errorf("not up to date after mark: labels %v, annotations %v", s.Labels, s.Annotations)
			}
			for k, v := range tc.wantLabels {
				if s.Labels[k] != v {
					t.Errorf("label %s = %q, want %q", k, s.Labels[k], v)
				}
			}
			if _, ok := s.Labels[tc.wantNoLabel]; ok && tc.wantNoLabel != "" {
				t.Errorf("label %s is still there", tc.wantNoLabel)
			}
			if _, ok := s.Annotations[tc.wantNoAnno]; ok && tc.wantNoAnno != "" {
				t.Errorf("annotation %s is still there", tc.wantNoAnno)
			}
			if k, v := tc.wantAnnoValue[0], tc.wantAnnoValue[1]; k != "" && s.Annotations[k] != v {
				t.Errorf("annotation %s = %q, want %q", k, s.Annotations[k], v)
			}
		})
	}
}

// TestManagedSecretsOnly: a Secret informer built with ManagedSecretsOnly, as main builds it,
// holds the Secrets the controller writes and none of the cluster's others, whatever they hold
// or whom they name as owner.
func TestManagedSecretsOnly(t *testing.T) {
	managed := syncedSecret(newAWSSecret("mine", seedSecretID, seedVersionID), map[string]string{"foo": secretValue})
	unmanaged := managed.DeepCopy()
	unmanaged.Name = "theirs"
	delete(unmanaged.Labels, ManagedByLabel)
	other := unmanaged.DeepCopy()
	other.Name = "other-tool"
	other.Labels = map[string]string{ManagedByLabel: "someone-else"}
	kube := k8sfake.NewClientset(managed, unmanaged, other)
	factory := kubeinformers.NewSharedInformerFactoryWithOptions(kube, 0, kubeinformers.WithTweakListOptions(ManagedSecretsOnly))
	lister := factory.Core().V1().Secrets().Lister()
	ctx, cancel := context.WithCancel(context.Background())
	defer func() { cancel(); factory.Shutdown() }()
	factory.Start(ctx.Done())
	factory.WaitForCacheSync(ctx.Done())
	cached, err := lister.List(labels.Everything())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range cached {
		names = append(names, s.Name)
	}
	if len(names) != 1 || names[0] != "mine" {
		t.Errorf("the informer holds %v, want only the controller's Secret [mine]", names)
	}
}

// TestTheCacheHoldsNoValue: a Secret informer built as main builds it (NewSecretInformer, in a
// factory without a transform: its list and watch drop the data themselves) keeps no secret
// value, in any encoding, anywhere in the cached object, and still tells a Secret as written
// from one edited by hand. With the factory's transform as well (an embedder's choice), the
// same.
func TestTheCacheHoldsNoValue(t *testing.T) {
	t.Run("as main builds it", func(t *testing.T) {
		testTheCacheHoldsNoValue(t)
	})
	t.Run("with the factory's transform too", func(t *testing.T) {
		testTheCacheHoldsNoValue(t, kubeinformers.WithTransform(TransformForCache))
	})
}

func testTheCacheHoldsNoValue(t *testing.T, opts ...kubeinformers.SharedInformerOption) {
	a := newAWSSecret("mine", seedSecretID, seedVersionID)
	secret := syncedSecret(a, map[string]string{"foo": secretValue})
	secret.StringData = map[string]string{"bar": secretValue}
	kube := k8sfake.NewClientset(secret)
	factory := kubeinformers.NewSharedInformerFactoryWithOptions(kube, 0, opts...)
	factory.InformerFor(&corev1.Secret{}, func(c kubernetes.Interface, resync time.Duration) cache.SharedIndexInformer {
		return NewSecretInformer(c, "", resync)
	})
	lister := factory.Core().V1().Secrets().Lister()
	ctx, cancel := context.WithCancel(context.Background())
	defer func() { cancel(); factory.Shutdown() }()
	factory.Start(ctx.Done())
	factory.WaitForCacheSync(ctx.Done())

	// cached waits for the cache to hold the Secret at resourceVersion rv ("" for any).
	cached := func(rv string) *corev1.Secret {
		t.Helper()
		var s *corev1.Secret
		err := wait.PollUntilContextTimeout(ctx, time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
			got, err := lister.Secrets(secret.Namespace).Get(secret.Name)
			s = got
			return err == nil && (rv == "" || got.ResourceVersion == rv), nil
		})
		if err != nil {
			t.Fatalf("the cache never held the Secret at resourceVersion %q", rv)
		}
		return s
	}
	noValue := func(s *corev1.Secret, values ...string) {
		t.Helper()
		for _, v := range values {
			forms := []string{v, base64.StdEncoding.EncodeToString([]byte(v)), hex.EncodeToString([]byte(v))}
			walkStrings(reflect.ValueOf(s), func(got string) {
				for _, form := range forms {
					if strings.Contains(got, form) {
						t.Errorf("the cached Secret holds a form of a value (%d bytes)", len(got))
					}
				}
			})
		}
	}

	s := cached("")
	noValue(s, secretValue)
	if !observe(s).intact {
		t.Error("the Secret as the controller wrote it reads as edited")
	}

	// A hand edit of the same length: detected from the digest alone.
	edited := secret.DeepCopy()
	edited.StringData = nil
	edited.Data["foo"] = []byte(strings.Repeat("x", len(secretValue)))
	edited.ResourceVersion = "2"
	if _, err := kube.CoreV1().Secrets(edited.Namespace).Update(ctx, edited, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	s = cached("2")
	noValue(s, secretValue, string(edited.Data["foo"]))
	if observe(s).intact {
		t.Error("a hand edit of the same length reads as intact from the cache")
	}
}

// walkStrings calls visit with every string and byte slice reachable from v.
func walkStrings(v reflect.Value, visit func(string)) {
	switch v.Kind() {
	case reflect.String:
		visit(v.String())
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			visit(string(v.Bytes()))
			return
		}
		for i := range v.Len() {
			walkStrings(v.Index(i), visit)
		}
	case reflect.Array:
		for i := range v.Len() {
			walkStrings(v.Index(i), visit)
		}
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			walkStrings(v.Elem(), visit)
		}
	case reflect.Struct:
		for i := range v.NumField() {
			walkStrings(v.Field(i), visit)
		}
	case reflect.Map:
		iter := v.MapRange()
		for iter.Next() {
			walkStrings(iter.Key(), visit)
			walkStrings(iter.Value(), visit)
		}
	}
}

// TestTransformForCacheIsIdempotent: client-go requires a transform to be idempotent (its FIFOs
// may pass an object already transformed through it again, and a streamed initial list goes
// through the reflector's temporary store first). A second pass changes nothing: a Secret keeps
// the digest of its data, not that of no data.
func TestTransformForCacheIsIdempotent(t *testing.T) {
	a := newAWSSecret("mine", seedSecretID, seedVersionID)
	a.Annotations = map[string]string{lastAppliedAnnotation: "{}", "team": "payments"}
	a.Status = syncedStatus(a)
	secret := syncedSecret(a, map[string]string{"foo": secretValue})
	for _, obj := range []runtime.Object{a, secret} {
		once, err := TransformForCache(obj.DeepCopyObject())
		if err != nil {
			t.Fatal(err)
		}
		twice, err := TransformForCache(once.(runtime.Object).DeepCopyObject())
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(once, twice); diff != "" {
			t.Errorf("%T changed by a second pass (-once +twice):\n%s", obj, diff)
		}
	}
	cached, _ := TransformForCache(secret.DeepCopy())
	cached, _ = TransformForCache(cached)
	if !observe(cached.(*corev1.Secret)).intact {
		t.Error("a Secret passed through the transform twice reads as edited")
	}
}
