package controller

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/mumoshu/aws-secret-controller/pkg/apis/mumoshu/v1alpha1"
	"github.com/mumoshu/aws-secret-controller/pkg/awssm"
	"github.com/mumoshu/aws-secret-controller/pkg/render"
	"github.com/mumoshu/aws-secret-controller/pkg/tenancy"
)

// These tests sync AWSSecrets with data entries and templates through the controller, over fake
// clientsets: what the Secret and the status record, what each change costs in AWS calls.

const (
	tlsSecretID   = "prod/tls"
	tokenSecretID = "prod/api-token"
	tokenV2       = "7d2c1a0e-9b8f-4e6d-a5c4-3b2a1f0e9d8c"
)

// mappedAWSSecret is a kubernetes.io/tls AWSSecret built from two properties of one JSON secret,
// with a token whole and a template over them.
func mappedAWSSecret() *v1alpha1.AWSSecret {
	a := newAWSSecret("mapped", "", "")
	a.Spec.StringDataFrom = nil
	a.Spec.Type = corev1.SecretTypeTLS
	tls := v1alpha1.SecretsManagerSecretRef{SecretID: tlsSecretID, VersionID: seedVersionID}
	a.Spec.Data = []v1alpha1.DataEntry{
		{Key: "tls.crt", SecretsManagerSecretRef: tls, Property: "cert"},
		{Key: "tls.key", SecretsManagerSecretRef: tls, Property: "key"},
		{Key: "token", SecretsManagerSecretRef: v1alpha1.SecretsManagerSecretRef{SecretID: tokenSecretID, VersionID: seedVersionID}},
	}
	a.Spec.Template = &v1alpha1.SecretTemplate{MergePolicy: v1alpha1.MergePolicyMerge, Data: map[string]string{
		"auth": `Bearer {{ .token }}`,
	}}
	return a
}

func (f *fixture) putMappedVersions() {
	f.aws.putString(tlsSecretID, seedVersionID, `{"cert":"CERT-1","key":"`+secretValue+`"}`)
	f.aws.putString(tokenSecretID, seedVersionID, "token-"+secretValue)
	f.aws.putString(tokenSecretID, tokenV2, "token2-"+secretValue)
}

// restart returns a fixture that starts from what f stored, with awsSecret in place of the
// stored AWSSecret when given, and an empty version cache: the controller after a restart.
func (f *fixture) restart(ctx context.Context, name string, awsSecret *v1alpha1.AWSSecret) *fixture {
	r := newFixture(f.t)
	r.aws = f.aws
	if awsSecret == nil {
		awsSecret = f.storedAWSSecret(ctx, name)
	}
	r.seedAWSSecret(awsSecret)
	r.seedSecret(f.storedSecret(ctx, name))
	return r
}

// startMapped syncs mappedAWSSecret once and returns the fixture, its context and controller.
func startMapped(t *testing.T) (*fixture, context.Context, *Controller) {
	t.Helper()
	f := newFixture(t)
	f.putMappedVersions()
	ctx, c, err := f.startWith(mappedAWSSecret())
	if err != nil {
		t.Fatal(err)
	}
	return f, ctx, c
}

// editMapped applies edit to the stored AWSSecret as a new generation and puts it in the
// controller's lister.
func (f *fixture) editMapped(ctx context.Context, edit func(*v1alpha1.AWSSecret)) *v1alpha1.AWSSecret {
	f.t.Helper()
	edited := f.storedAWSSecret(ctx, "mapped")
	edit(edited)
	edited.Generation++
	if err := f.awsSecretIndexer.Update(edited); err != nil {
		f.t.Fatal(err)
	}
	return edited
}

func TestMappedSecret(t *testing.T) {
	f := newFixture(t)
	f.putMappedVersions()
	a := mappedAWSSecret()
	ctx, _, err := f.startWith(a)
	if err != nil {
		t.Fatal(err)
	}

	secret := f.storedSecret(ctx, "mapped")
	got := map[string]string{}
	for k, v := range secret.Data {
		got[k] = string(v)
	}
	want := map[string]string{"tls.crt": "CERT-1", "tls.key": secretValue, "token": "token-" + secretValue, "auth": "Bearer token-" + secretValue}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("data (-want +got):\n%s", diff)
	}
	if secret.Type != corev1.SecretTypeTLS {
		t.Errorf("type = %s", secret.Type)
	}
	if n := f.aws.totalCalls(); n != 2 {
		t.Errorf("AWS calls = %d, want 2: one per distinct version", n)
	}
	// The Secret records the versions and the mapping in two annotations of fixed size.
	var ours []string
	for k := range secret.Annotations {
		if strings.HasPrefix(k, AnnotationPrefix) {
			ours = append(ours, k)
		}
	}
	if diff := cmp.Diff([]string{AnnotationDataHash, AnnotationDataVersions, AnnotationMapping}, sortedSet(ours)); diff != "" {
		t.Errorf("controller annotations (-want +got):\n%s", diff)
	}
	stored := f.storedAWSSecret(ctx, "mapped")
	wantVersions := []v1alpha1.SecretsManagerSecretRef{
		{SecretID: tokenSecretID, VersionID: seedVersionID},
		{SecretID: tlsSecretID, VersionID: seedVersionID},
	}
	if diff := cmp.Diff(wantVersions, stored.Status.Data); diff != "" {
		t.Errorf("status.data (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(syncedStatus(a), stored.Status); diff != "" {
		t.Errorf("status (-want +got):\n%s", diff)
	}
	f.assertNoLeak(nil, f.events(), secretValue)

	// After a restart, nothing is read and nothing is written.
	r := f.restart(ctx, "mapped", nil)
	c := r.newController(ctx)
	if err := c.syncHandler(ctx, keyOf(t, a)); err != nil {
		t.Fatal(err)
	}
	if w := r.writes(); len(w) != 0 {
		t.Errorf("writes after restart = %v, want none", w)
	}
	if n := f.aws.totalCalls(); n != 2 {
		t.Errorf("AWS calls after restart = %d, want still 2", n)
	}
}

// TestMappingChanges: what each edit of a synced AWSSecret costs.
func TestMappingChanges(t *testing.T) {
	tests := map[string]struct {
		edit func(a *v1alpha1.AWSSecret)
		// restarted: the edit reaches a controller with an empty version cache.
		restarted bool
		wantCalls int
		want      map[string]string
	}{
		"bump one entry": {
			edit:      func(a *v1alpha1.AWSSecret) { a.Spec.Data[2].SecretsManagerSecretRef.VersionID = tokenV2 },
			wantCalls: 1,
			want:      map[string]string{"token": "token2-" + secretValue, "auth": "Bearer token2-" + secretValue},
		},
		"template, warm cache": {
			edit:      func(a *v1alpha1.AWSSecret) { a.Spec.Template.Data["auth"] = `Token {{ .token }}` },
			wantCalls: 0,
			want:      map[string]string{"auth": "Token token-" + secretValue},
		},
		"property, warm cache": {
			edit:      func(a *v1alpha1.AWSSecret) { a.Spec.Data[0].Property = "key" },
			wantCalls: 0,
			want:      map[string]string{"tls.crt": secretValue},
		},
		// A restart empties the version cache: the new template costs one call per distinct
		// version it is rendered from.
		"template after a restart": {
			edit:      func(a *v1alpha1.AWSSecret) { a.Spec.Template.Data["auth"] = `Token {{ .token }}` },
			restarted: true,
			wantCalls: 2,
			want:      map[string]string{"auth": "Token token-" + secretValue},
		},
		"metadata only after a restart": {
			edit:      func(a *v1alpha1.AWSSecret) { a.Spec.Metadata.Labels = map[string]string{"team": "a"} },
			restarted: true,
			wantCalls: 0,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			f, ctx, c := startMapped(t)
			calls := f.aws.totalCalls()
			edited := f.editMapped(ctx, tc.edit)
			g := f
			if tc.restarted {
				g = f.restart(ctx, "mapped", edited)
				c = g.newController(ctx)
			}
			if err := c.syncHandler(ctx, keyOf(t, edited)); err != nil {
				t.Fatal(err)
			}
			if n := f.aws.totalCalls() - calls; n != tc.wantCalls {
				t.Errorf("AWS calls for the edit = %d, want %d", n, tc.wantCalls)
			}
			after := g.storedSecret(ctx, "mapped")
			for k, v := range tc.want {
				if string(after.Data[k]) != v {
					t.Errorf("key %s: not the value the edit asks for", k)
				}
			}
			if after.Annotations[AnnotationMapping] != render.MappingDigest(&edited.Spec) {
				t.Error("the Secret does not record the new mapping")
			}
			if status := g.storedAWSSecret(ctx, "mapped").Status; !cmp.Equal(status.Data, pinnedRefs(edited).data) {
				t.Errorf("status.data = %v, want %v", status.Data, pinnedRefs(edited).data)
			}
		})
	}
}

// TestMappingFailures: a mapping that fails leaves the Secret as it is, says why in the status
// and an event without any value, and keeps saying which versions the Secret holds.
func TestMappingFailures(t *testing.T) {
	tests := map[string]struct {
		edit       func(a *v1alpha1.AWSSecret)
		wantReason string
		// wantCalls: AWS calls the failed sync made; a template that does not parse costs none.
		wantCalls int
	}{
		"missing property": {
			edit:       func(a *v1alpha1.AWSSecret) { a.Spec.Data[0].Property = "certificate" },
			wantReason: v1alpha1.ReasonPropertyNotFound,
		},
		"missing template key": {
			edit:       func(a *v1alpha1.AWSSecret) { a.Spec.Template.Data["auth"] = `{{ .tokn }}` },
			wantReason: v1alpha1.ReasonInvalidTemplate,
		},
		"template that quotes a value": {
			edit:       func(a *v1alpha1.AWSSecret) { a.Spec.Template.Data["auth"] = `{{ eq . $ }}` },
			wantReason: v1alpha1.ReasonInvalidTemplate,
		},
		"template that does not parse, after a version bump": {
			edit: func(a *v1alpha1.AWSSecret) {
				a.Spec.Data[2].SecretsManagerSecretRef.VersionID = tokenV2
				a.Spec.Template.Data["auth"] = `{{ .token `
			},
			wantReason: v1alpha1.ReasonInvalidTemplate,
		},
		"a missing key of the type": {
			edit: func(a *v1alpha1.AWSSecret) {
				a.Spec.Data[1].Key = "private.key"
			},
			wantReason: v1alpha1.ReasonInvalidSecret,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			f, ctx, c := startMapped(t)
			before := f.storedSecret(ctx, "mapped")
			held := f.storedAWSSecret(ctx, "mapped").Status.Data
			calls := f.aws.totalCalls()
			f.forgetRecorded()
			edited := f.editMapped(ctx, tc.edit)
			err := c.syncHandler(ctx, keyOf(t, edited))
			if got := classify(err); err == nil || got.reason != tc.wantReason || got.transient {
				t.Fatalf("sync error %v (%+v), want permanent %s", err, got, tc.wantReason)
			}
			if n := f.aws.totalCalls() - calls; n != tc.wantCalls {
				t.Errorf("AWS calls = %d, want %d", n, tc.wantCalls)
			}
			if after := f.storedSecret(ctx, "mapped"); after.ResourceVersion != before.ResourceVersion || !cmp.Equal(after.Data, before.Data) {
				t.Error("the Secret changed")
			}
			status := f.storedAWSSecret(ctx, "mapped").Status
			cond := meta.FindStatusCondition(status.Conditions, v1alpha1.ConditionReady)
			if cond == nil || cond.Status != metav1.ConditionFalse || cond.Reason != tc.wantReason || cond.ObservedGeneration != edited.Generation {
				t.Errorf("Ready = %+v, want False %s at generation %d", cond, tc.wantReason, edited.Generation)
			}
			if !cmp.Equal(status.Data, held) {
				t.Errorf("status.data = %v, want the versions the Secret still holds, %v", status.Data, held)
			}
			events := f.events()
			if len(events) != 1 || !strings.HasPrefix(events[0], "Warning "+tc.wantReason) {
				t.Errorf("events = %q, want one Warning %s", events, tc.wantReason)
			}
			f.assertNoLeak(err, events, secretValue, "CERT-1")
		})
	}
}

// TestDataEntriesAskThePolicy: every data entry's secret id is checked against the namespace's
// policy before anything is read.
func TestDataEntriesAskThePolicy(t *testing.T) {
	f := newFixture(t)
	f.putMappedVersions()
	f.options = func(o *Options) {
		o.Policy = tenancy.Policy{Mode: tenancy.ModeAllowList}
		o.NamespaceInformer = namespaceInformer(namespaceWith("default", map[string]string{
			tenancy.AnnotationAllowedSecretIDs: tlsSecretID, // not prod/api-token
		}))
	}
	_, _, err := f.startWith(mappedAWSSecret())
	if got := classify(err); err == nil || got.reason != v1alpha1.ReasonSecretNotAllowed {
		t.Fatalf("sync error %v, want SecretNotAllowed", err)
	}
	if !strings.Contains(err.Error(), tokenSecretID) {
		t.Errorf("error %q does not name the refused secret", err)
	}
	if n := f.aws.totalCalls(); n != 0 || f.cache.Stats().Hits != 0 {
		t.Errorf("AWS calls %d, cache %+v: the policy must decide before any read", n, f.cache.Stats())
	}
}

func sortedSet(s []string) []string {
	m := map[string]bool{}
	for _, v := range s {
		m[v] = true
	}
	return slices.Sorted(maps.Keys(m))
}

// TestOneReadPerVersion: entries that pin the same version read it once in a sync.
func TestOneReadPerVersion(t *testing.T) {
	f := newFixture(t)
	f.aws.putString("prod/tls", seedVersionID, `{"cert":"CERT","key":"KEY","ca":"CA"}`)
	a := newAWSSecret("tls", "", "")
	a.Spec.StringDataFrom = nil
	for _, k := range []string{"cert", "key", "ca"} {
		a.Spec.Data = append(a.Spec.Data, v1alpha1.DataEntry{Key: k, Property: k,
			SecretsManagerSecretRef: v1alpha1.SecretsManagerSecretRef{SecretID: "prod/tls", VersionID: seedVersionID}})
	}
	// With the cache disabled, only the sync's own memo can save the calls.
	f.cache = awssm.NewCache(f.aws, awssm.CacheOptions{MaxBytes: -1})
	if _, _, err := f.startWith(a); err != nil {
		t.Fatal(err)
	}
	if n := f.aws.totalCalls(); n != 1 {
		t.Errorf("AWS calls for three entries of one version = %d, want 1", n)
	}
}

// TestRenderFailureIsRemembered: a spec that failed to render is neither rendered nor read
// again until it changes (its generation), whatever wakes it up; a new generation renders.
func TestRenderFailureIsRemembered(t *testing.T) {
	f := newFixture(t)
	f.putMappedVersions()
	// With the version cache off, every rendering shows as AWS calls.
	f.cache = awssm.NewCache(f.aws, awssm.CacheOptions{MaxBytes: -1})
	ctx, c, err := f.startWith(mappedAWSSecret())
	if err != nil {
		t.Fatal(err)
	}
	broken := f.editMapped(ctx, func(a *v1alpha1.AWSSecret) { a.Spec.Template.Data["auth"] = `{{ .tokn }}` })
	calls := f.aws.totalCalls()
	if err := c.syncHandler(ctx, keyOf(t, broken)); classify(err).reason != v1alpha1.ReasonInvalidTemplate {
		t.Fatalf("sync error %v, want InvalidTemplate", err)
	}
	if n := f.aws.totalCalls() - calls; n != 2 {
		t.Fatalf("the failing rendering read %d versions, want 2", n)
	}
	calls = f.aws.totalCalls()
	for range 3 { // the slow retries, a resync, an event of the Secret
		if err := c.syncHandler(ctx, keyOf(t, broken)); classify(err).reason != v1alpha1.ReasonInvalidTemplate {
			t.Fatalf("repeated sync error %v, want InvalidTemplate", err)
		}
	}
	if n := f.aws.totalCalls() - calls; n != 0 {
		t.Errorf("repeated syncs of the same generation read %d versions, want 0", n)
	}
	fixed := f.editMapped(ctx, func(a *v1alpha1.AWSSecret) { a.Spec.Template.Data["auth"] = `Basic {{ .token }}` })
	if err := c.syncHandler(ctx, keyOf(t, fixed)); err != nil {
		t.Fatalf("the fixed generation: %v", err)
	}
	if got := string(f.storedSecret(ctx, "mapped").Data["auth"]); got != "Basic token-"+secretValue {
		t.Errorf("auth = %q after the fix", got)
	}
}

// valueForms are the forms of a value a template could compute and an error could quote.
func valueForms(v string) []string {
	jsonQuoted, _ := json.Marshal(v)
	return []string{
		v,
		base64.StdEncoding.EncodeToString([]byte(v)),
		base64.RawURLEncoding.EncodeToString([]byte(v)),
		strings.ToUpper(v),
		strings.ToLower(v),
		strings.Trim(strconv.Quote(v), `"`),
		strings.Trim(string(jsonQuoted), `"`),
	}
}

// TestNoFormOfAValueLeaks: a template that fails on what it computed from a value (a typo that
// indexes by the value, its base64, its upper case, a slice of it) says so in the status, the
// Warning event and the log without any form of the value, whatever characters it holds.
func TestNoFormOfAValueLeaks(t *testing.T) {
	values := map[string]string{
		"quotes and a backslash": `tok"Zq8v\secret`,
		"a PEM key":              "-----BEGIN PRIVATE KEY-----\nZq8vMIIBVAIBADANBg\n-----END PRIVATE KEY-----\n",
		"non-ASCII":              "jeton-Zq8v-clé-ключ",
	}
	templates := map[string]string{
		"typo":       `{{ index . .token }}`,
		"base64":     `{{ index . (b64enc .token) }}`,
		"upper":      `{{ index . (upper .token) }}`,
		"lower":      `{{ index . (lower .token) }}`,
		"slice":      `{{ index . (slice .token 1) }}`,
		"quote":      `{{ index . (quote .token) }}`,
		"toJson":     `{{ index . (toJson .token) }}`,
		"printf":     `{{ index . (printf "%s-x" .token) }}`,
		"a field":    `{{ .token.x }}`,
		"comparison": `{{ eq . $ }}`,
	}
	for vname, value := range values {
		for tname, tmpl := range templates {
			t.Run(vname+"/"+tname, func(t *testing.T) {
				f := newFixture(t)
				f.putMappedVersions()
				f.aws.putString(tokenSecretID, seedVersionID, value)
				a := mappedAWSSecret()
				a.Spec.Type = ""
				a.Spec.Template.Data["auth"] = tmpl
				_, _, err := f.startWith(a)
				if classify(err).reason != v1alpha1.ReasonInvalidTemplate {
					t.Fatalf("sync error %v, want InvalidTemplate", err)
				}
				events := f.events()
				if len(events) != 1 || !strings.Contains(events[0], `template key "auth" at line 1`) {
					t.Errorf("events %q, want one naming the key and its position", events)
				}
				f.assertNoLeak(err, events, valueForms(value)...)
			})
		}
	}
}
