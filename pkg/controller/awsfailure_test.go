package controller

import (
	"errors"
	"testing"
	"time"

	"github.com/aws/smithy-go"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/mumoshu/aws-secret-controller/pkg/apis/mumoshu/v1alpha1"
	"github.com/mumoshu/aws-secret-controller/pkg/awssm"
	"github.com/mumoshu/aws-secret-controller/pkg/tenancy"
)

// readyOf returns the Ready condition the API server holds for an AWSSecret.
func (f *fixture) readyOf(name string) *metav1.Condition {
	f.t.Helper()
	return meta.FindStatusCondition(f.storedAWSSecret(f.context(), name).Status.Conditions, v1alpha1.ConditionReady)
}

// TestHeldReadsAreShared: AWSSecrets that pin a version whose read failed share the failure:
// one call, the same reason for each, and no call until the hold ends; but an AWSSecret whose
// spec or namespace policy changed since it was told reads again at once.
func TestHeldReadsAreShared(t *testing.T) {
	f := newFixture(t)
	f.aws.errs[versionRef{seedSecretID, seedVersionID}] = &smithy.GenericAPIError{Code: "AccessDeniedException", Message: "not authorized"}
	names := []string{"one", "two", "three"}
	for _, name := range names {
		f.seedAWSSecret(newAWSSecret(name, seedSecretID, seedVersionID))
	}
	ns := namespaceInformer(namespaceWith("default", nil))
	f.options = func(o *Options) { o.NamespaceInformer = ns }
	clk := clocktesting.NewFakeClock(testNow)
	ctx := f.context()
	f.cache = awssm.NewCache(f.aws, awssm.CacheOptions{Clock: clk})
	c := f.newController(ctx)
	for _, name := range names {
		key := cache.ObjectName{Namespace: "default", Name: name}
		c.handleErr(ctx, key, c.syncHandler(ctx, key))
		if cond := f.readyOf(name); cond == nil || cond.Reason != v1alpha1.ReasonAccessDenied {
			t.Fatalf("%s: Ready = %+v, want AccessDenied", name, cond)
		}
	}
	if n := f.aws.totalCalls(); n != 1 {
		t.Fatalf("calls for three AWSSecrets pinning one failed version = %d, want 1", n)
	}
	if c.queue.Len() != 0 {
		t.Errorf("queue length = %d: the retries must wait for the hold", c.queue.Len())
	}
	// The hold ends: the next sync asks again, once.
	clk.Step(awssm.DefaultPermanentHold.Initial)
	for _, name := range names {
		c.syncHandler(ctx, cache.ObjectName{Namespace: "default", Name: name})
	}
	if n := f.aws.totalCalls(); n != 2 {
		t.Fatalf("calls after the hold = %d, want 2", n)
	}

	// A new spec reads again at once; the others still wait.
	edited := f.storedAWSSecret(ctx, "two")
	edited.Generation++
	if err := f.awsSecretIndexer.Update(edited); err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		c.syncHandler(ctx, cache.ObjectName{Namespace: "default", Name: name})
	}
	if n := f.aws.totalCalls(); n != 3 {
		t.Fatalf("calls after one spec change = %d, want 3", n)
	}
	// So does a new namespace policy, for every AWSSecret in the namespace: each was told of
	// the failure under the old one. They read one after the other here: the first re-reads,
	// and the others, changed too, read again.
	if err := ns.GetIndexer().Update(namespaceWith("default", map[string]string{tenancy.AnnotationAllowedSecretIDs: "*"})); err != nil {
		t.Fatal(err)
	}
	c.syncHandler(ctx, cache.ObjectName{Namespace: "default", Name: "one"})
	if n := f.aws.totalCalls(); n != 4 {
		t.Fatalf("calls after a policy change = %d, want 4", n)
	}
	c.syncHandler(ctx, cache.ObjectName{Namespace: "default", Name: "one"})
	if n := f.aws.totalCalls(); n != 4 {
		t.Fatalf("calls after a second sync under the same policy = %d, want 4", n)
	}
}

// TestSyncsParkOnReadsInFlight: a sync that needs a version another sync is reading neither
// waits nor fails: it writes no status, is not retried, and is queued again when the read is done.
func TestSyncsParkOnReadsInFlight(t *testing.T) {
	f := newFixture(t)
	f.aws.putString(seedSecretID, seedVersionID, `{"foo":"bar"}`)
	f.seedAWSSecret(newAWSSecret("first", seedSecretID, seedVersionID))
	f.seedAWSSecret(newAWSSecret("second", seedSecretID, seedVersionID))
	f.aws.block = make(chan struct{})
	ctx := f.context()
	c := f.newController(ctx)
	first, second := cache.ObjectName{Namespace: "default", Name: "first"}, cache.ObjectName{Namespace: "default", Name: "second"}
	done := make(chan error, 1)
	go func() { done <- c.syncHandler(ctx, first) }()
	deadline := time.Now().Add(10 * time.Second)
	for f.aws.totalCalls() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the first sync never called AWS")
		}
		time.Sleep(time.Millisecond)
	}
	err := c.syncHandler(ctx, second)
	if !errors.Is(err, awssm.ErrInFlight) {
		t.Fatalf("second sync = %v, want it parked on the read in flight", err)
	}
	c.handleErr(ctx, second, err)
	if c.queue.Len() != 0 || f.readyOf("second") != nil {
		t.Fatalf("a parked sync was queued (%d) or wrote a status (%+v)", c.queue.Len(), f.readyOf("second"))
	}
	close(f.aws.block)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(10 * time.Second)
	for c.queue.Len() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the parked AWSSecret was never queued again")
		}
		time.Sleep(time.Millisecond)
	}
	key, _ := c.queue.Get()
	if key != second {
		t.Fatalf("queued %v, want %v", key, second)
	}
	if err := c.syncHandler(ctx, key); err != nil {
		t.Fatal(err)
	}
	c.queue.Done(key)
	if n := f.aws.totalCalls(); n != 1 {
		t.Errorf("calls = %d, want 1", n)
	}
}

// TestOneFailureIsSaidOnce: the same failure in other words (a held connection error, then the
// circuit that stops the reads) writes no second status and records no second event; a new
// reason does.
func TestOneFailureIsSaidOnce(t *testing.T) {
	f := newFixture(t)
	f.aws.errs[versionRef{seedSecretID, seedVersionID}] = errors.New("dial tcp 127.0.0.1:1: connect: connection refused")
	f.seedAWSSecret(newAWSSecret("one", seedSecretID, seedVersionID))
	clk := clocktesting.NewFakeClock(testNow)
	ctx := f.context()
	f.cache = awssm.NewCache(f.aws, awssm.CacheOptions{Clock: clk, Circuit: awssm.CircuitOptions{Failures: 2}})
	c := f.newController(ctx)
	key := cache.ObjectName{Namespace: "default", Name: "one"}
	said := func() (statusWrites, events int) {
		for _, w := range f.writes() {
			if w.GetSubresource() == "status" {
				statusWrites++
			}
		}
		return statusWrites, len(f.recorder.Events)
	}
	first := c.syncHandler(ctx, key)
	if w, e := said(); w != 1 || e != 1 {
		t.Fatalf("after the first failure: %d status writes, %d events, want 1 and 1", w, e)
	}
	if err := f.awsSecretIndexer.Update(f.storedAWSSecret(ctx, "one")); err != nil {
		t.Fatal(err)
	}
	clk.Step(awssm.DefaultTransientHold.Max)
	second := c.syncHandler(ctx, key)
	var ae *awssm.Error
	if !errors.As(second, &ae) || !ae.Parked || second.Error() == first.Error() {
		t.Fatalf("second sync = %v, want the circuit's parked error in other words than %v", second, first)
	}
	if w, e := said(); w != 1 || e != 1 {
		t.Errorf("after the same failure in other words: %d status writes, %d events, want still 1 and 1", w, e)
	}
}
