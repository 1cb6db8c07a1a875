package controller

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	core "k8s.io/client-go/testing"

	"github.com/mumoshu/aws-secret-controller/pkg/apis/mumoshu/v1alpha1"
	"github.com/mumoshu/aws-secret-controller/pkg/awssm"
)

// TestConditionMessageIsBounded: a condition message over the API's 32 KiB limit would make
// every status write fail; it is cut, on a character boundary.
func TestConditionMessageIsBounded(t *testing.T) {
	f := newFixture(t)
	c := f.newController(f.context())
	a := newAWSSecret("example", seedSecretID, seedVersionID)
	long := permanentError(v1alpha1.ReasonInvalidSecretFormat, "%s", strings.Repeat("é", 40000))
	cond := meta.FindStatusCondition(c.status(a, outcome{err: long, reason: v1alpha1.ReasonInvalidSecretFormat}).Conditions, v1alpha1.ConditionReady)
	if len(cond.Message) > maxConditionMessage || !utf8.ValidString(cond.Message) {
		t.Errorf("message of %d bytes (valid UTF-8: %v), want at most %d", len(cond.Message), utf8.ValidString(cond.Message), maxConditionMessage)
	}
}

// TestRepeatedFailureIsQuiet shows that a failure records one event and one status write, not
// one per retry.
func TestRepeatedFailureIsQuiet(t *testing.T) {
	f := newFixture(t)
	a := newAWSSecret("example", seedSecretID, newVersionID) // not in AWS
	ctx, c, err := f.startWith(a)
	if err == nil {
		t.Fatal("want an error")
	}
	stored := f.storedAWSSecret(ctx, "example")
	// The informer catches up with the status write; the retry fails the same way.
	if err := f.awsSecretIndexer.Update(stored); err != nil {
		t.Fatal(err)
	}
	f.forgetRecorded()
	if err := c.syncHandler(ctx, keyOf(t, a)); err == nil {
		t.Fatal("want an error")
	}
	if w := f.writes(); len(w) != 0 {
		t.Errorf("writes on retry = %v, want none", w)
	}
	if e := f.events(); len(e) != 0 {
		t.Errorf("events on retry = %q, want none", e)
	}
}

// TestStaleListerDoesNotRepeatStatusWrite syncs again before the AWSSecret informer has seen
// the status the first sync wrote (the Secret informer has seen the new Secret, whose event
// brought the second sync): the write is not repeated.
func TestStaleListerDoesNotRepeatStatusWrite(t *testing.T) {
	f := newFixture(t)
	f.aws.putString(seedSecretID, seedVersionID, `{"foo":"bar"}`)
	a := newAWSSecret("example", seedSecretID, seedVersionID)
	a.ResourceVersion = "10"
	ctx, c, err := f.startWith(a)
	if err != nil {
		t.Fatal(err)
	}
	secret := f.storedSecret(ctx, "example")
	if err := f.secretIndexer.Add(secret); err != nil {
		t.Fatal(err)
	}
	f.forgetRecorded()

	if err := c.syncHandler(ctx, keyOf(t, a)); err != nil {
		t.Fatal(err)
	}
	if w := f.writes(); len(w) != 0 {
		t.Errorf("writes from a stale lister = %v, want none", w)
	}

	// Once the informer catches up, the remembered write is forgotten.
	stored := f.storedAWSSecret(ctx, "example")
	stored.ResourceVersion = "11" // what the API server's write made; the fake keeps versions as they are
	if err := f.awsSecretIndexer.Update(stored); err != nil {
		t.Fatal(err)
	}
	if err := c.syncHandler(ctx, keyOf(t, a)); err != nil {
		t.Fatal(err)
	}
	if w := f.writes(); len(w) != 0 {
		t.Errorf("writes after the lister caught up = %v, want none", w)
	}
	if err := f.awsSecretIndexer.Update(a); err != nil { // back to the stale view for the next step
		t.Fatal(err)
	}

	// A real change to the status is still written, from the same stale object.
	f.aws.errs[versionRef{seedSecretID, seedVersionID}] = errors.New("dial tcp: connection refused")
	c.versions = awssm.NewCache(f.aws, awssm.CacheOptions{}) // forget the cached version
	if err := f.secretIndexer.Update(func() *corev1.Secret { s := secret.DeepCopy(); s.Data["foo"] = []byte("edited"); return s }()); err != nil {
		t.Fatal(err)
	}
	if err := c.syncHandler(ctx, keyOf(t, a)); err == nil {
		t.Fatal("want an error")
	}
	var statusWrites int
	for _, w := range f.writes() {
		if w.GetSubresource() == "status" {
			statusWrites++
		}
	}
	if statusWrites != 1 {
		t.Errorf("status writes for a new failure = %d, want 1", statusWrites)
	}
}

// TestReplacementCreateFailureRecovers: if the create after the delete of a type change fails
// (an outage between the two calls), the next sync finds no Secret and creates it.
func TestReplacementCreateFailureRecovers(t *testing.T) {
	f := newFixture(t)
	f.aws.putString(seedSecretID, seedVersionID, `{"username":"app","password":"`+secretValue+`"}`)
	a := newAWSSecret("example", seedSecretID, seedVersionID)
	a.Status = syncedStatus(a)
	a.Spec.Type = corev1.SecretTypeBasicAuth
	old := syncedSecret(newAWSSecret("example", seedSecretID, seedVersionID), map[string]string{"username": "app", "password": secretValue})
	f.seedAWSSecret(a)
	f.seedSecret(old)
	failed := false
	f.secretReactors = append(f.secretReactors, func(action core.Action) (bool, runtime.Object, error) {
		if action.GetVerb() != "create" || isDryRun(action) || failed {
			return false, nil, nil
		}
		failed = true
		return true, nil, errors.New("etcdserver: leader changed")
	})
	ctx := f.context()
	c := f.newController(ctx)
	if err := c.syncHandler(ctx, keyOf(t, a)); err == nil {
		t.Fatal("want the failed create's error")
	}
	if _, err := f.kubeClient.CoreV1().Secrets("default").Get(ctx, "example", metav1.GetOptions{}); err == nil {
		t.Fatal("the old Secret is still there: the test did not reach the window it means to test")
	}
	// The informer sees the delete; the retry finds no Secret and creates the replacement.
	if err := f.secretIndexer.Delete(old); err != nil {
		t.Fatal(err)
	}
	f.forgetRecorded()
	if err := c.syncHandler(ctx, keyOf(t, a)); err != nil {
		t.Fatal(err)
	}
	s, err := f.kubeClient.CoreV1().Secrets("default").Get(ctx, "example", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the Secret was not recreated: %v", err)
	}
	if s.Type != corev1.SecretTypeBasicAuth || string(s.Data["password"]) != secretValue {
		t.Errorf("recreated Secret: type %s, keys %d", s.Type, len(s.Data))
	}
}
