package controller

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	core "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"

	"github.com/mumoshu/aws-secret-controller/pkg/apis/mumoshu/v1alpha1"
	"github.com/mumoshu/aws-secret-controller/pkg/fairqueue"
	"github.com/mumoshu/aws-secret-controller/pkg/tenancy"
)

// recordingLimiter is a rate limiter that counts what the queue asks of it and delays an hour, so
// that nothing comes back during a test.
type recordingLimiter struct {
	mu      sync.Mutex
	whens   int
	forgets int
}

func (r *recordingLimiter) When(cache.ObjectName) time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.whens++
	return time.Hour
}

func (r *recordingLimiter) Forget(cache.ObjectName) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.forgets++
}

func (r *recordingLimiter) NumRequeues(cache.ObjectName) int { return 0 }

func (r *recordingLimiter) counts() (whens, forgets int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.whens, r.forgets
}

// TestRetryPacing shows which failures are retried fast (per-item backoff), which slowly, and
// that a failed read from AWS is retried by neither: it waits for the hold the version cache set
// for every AWSSecret that pins the version (TestHeldReadsAreShared).
func TestRetryPacing(t *testing.T) {
	tests := map[string]struct {
		// awsErr is what Secrets Manager answers; nil means success.
		awsErr error
		// reactor, if set, answers Secret actions before the fake does.
		reactor       core.ReactionFunc
		wantFast      int // When calls on Options.RateLimiter
		wantSlow      int // When calls on Options.PermanentErrorRetry
		wantForgotten bool
	}{
		"success forgets the item":               {wantForgotten: true},
		"transient AWS error waits for its hold": {awsErr: errors.New("dial tcp 127.0.0.1:1: connection refused")},
		"permanent AWS error waits for its hold": {
			awsErr: &smtypes.ResourceNotFoundException{Message: ptr.To("Secrets Manager can't find the specified secret.")},
		},
		"API conflict is retried fast": {
			reactor:  refuse("create", apierrors.NewConflict(schema.GroupResource{Resource: "secrets"}, "example", errors.New("modified"))),
			wantFast: 1,
		},
		"API server refusing the Secret as invalid is retried slowly": {
			reactor:  refuse("create", apierrors.NewInvalid(schema.GroupKind{Kind: "Secret"}, "example", nil)),
			wantSlow: 1,
		},
		"forbidden is retried slowly": {
			reactor:  refuse("create", apierrors.NewForbidden(schema.GroupResource{Resource: "secrets"}, "example", errors.New("RBAC"))),
			wantSlow: 1,
		},
		"exceeded quota is retried fast": {
			reactor:  refuse("create", apierrors.NewForbidden(schema.GroupResource{Resource: "secrets"}, "example", errors.New("exceeded quota: compute, requested: secrets=1"))),
			wantFast: 1,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t)
			f.aws.putString(seedSecretID, seedVersionID, `{"foo":"bar"}`)
			if tc.awsErr != nil {
				f.aws.errs[versionRef{seedSecretID, seedVersionID}] = tc.awsErr
			}
			if tc.reactor != nil {
				f.secretReactors = append(f.secretReactors, tc.reactor)
			}
			a := newAWSSecret("example", seedSecretID, seedVersionID)
			f.seedAWSSecret(a)
			ctx := f.context()
			fast, slow := &recordingLimiter{}, &recordingLimiter{}
			f.options = func(o *Options) { o.RateLimiter, o.PermanentErrorRetry = fast, slow }
			c := f.newController(ctx)
			c.queue.Add(keyOf(t, a))

			if !c.processNextWorkItem(ctx, ctx) {
				t.Fatal("queue shut down")
			}
			if whens, _ := fast.counts(); whens != tc.wantFast {
				t.Errorf("fast retries = %d, want %d", whens, tc.wantFast)
			}
			if whens, _ := slow.counts(); whens != tc.wantSlow {
				t.Errorf("slow retries = %d, want %d", whens, tc.wantSlow)
			}
			_, fastForgets := fast.counts()
			_, slowForgets := slow.counts()
			if forgotten := fastForgets > 0 && slowForgets > 0; forgotten != tc.wantForgotten {
				t.Errorf("forgotten by both limiters = %v, want %v", forgotten, tc.wantForgotten)
			}
			if c.queue.Len() != 0 {
				t.Errorf("queue length = %d, want 0 (retries wait)", c.queue.Len())
			}
		})
	}
}

// TestSecretEventsWakeTheirOwner shows that a change to a Secret enqueues the AWSSecret that
// controls it, and only that.
func TestSecretEventsWakeTheirOwner(t *testing.T) {
	owner := newAWSSecret("example", seedSecretID, seedVersionID)
	owned := syncedSecret(owner, map[string]string{"foo": "bar"})
	tests := map[string]struct {
		obj     any
		wantKey *cache.ObjectName
	}{
		"controlled Secret": {obj: owned, wantKey: &cache.ObjectName{Namespace: "default", Name: "example"}},
		"tombstone of a controlled Secret": {
			obj:     cache.DeletedFinalStateUnknown{Key: "default/example", Obj: owned},
			wantKey: &cache.ObjectName{Namespace: "default", Name: "example"},
		},
		"Secret without owner": {obj: &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "x", Namespace: "default"}}},
		"Secret controlled by something else": {obj: &corev1.Secret{ObjectMeta: metav1.ObjectMeta{
			Name: "x", Namespace: "default",
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: "example", UID: "d", Controller: ptr.To(true)}},
		}}},
		"Secret owned but not controlled": {obj: &corev1.Secret{ObjectMeta: metav1.ObjectMeta{
			Name: "x", Namespace: "default",
			OwnerReferences: []metav1.OwnerReference{{APIVersion: v1alpha1.SchemeGroupVersion.String(), Kind: "AWSSecret", Name: "example", UID: "u"}},
		}}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t)
			c := f.newController(f.context())
			c.handleSecret(tc.obj, fairqueue.High)
			if tc.wantKey == nil {
				if c.queue.Len() != 0 {
					t.Errorf("queue length = %d, want 0", c.queue.Len())
				}
				return
			}
			if c.queue.Len() != 1 {
				t.Fatalf("queue length = %d, want 1", c.queue.Len())
			}
			if got, _ := c.queue.Get(); got != *tc.wantKey {
				t.Errorf("enqueued %v, want %v", got, *tc.wantKey)
			}
		})
	}
}

func TestTransformForCache(t *testing.T) {
	a := newAWSSecret("example", seedSecretID, seedVersionID)
	a.ManagedFields = []metav1.ManagedFieldsEntry{{Manager: "kubectl"}}
	a.Annotations = map[string]string{lastAppliedAnnotation: `{"big":"json"}`, "keep": "me"}
	got, err := TransformForCache(a)
	if err != nil {
		t.Fatal(err)
	}
	trimmed := got.(*v1alpha1.AWSSecret)
	if trimmed.ManagedFields != nil || len(trimmed.Annotations) != 1 || trimmed.Annotations["keep"] != "me" {
		t.Errorf("trimmed object: managedFields %v, annotations %v", trimmed.ManagedFields, trimmed.Annotations)
	}
	// A Secret's annotations are written back on update: another writer's must stay whole.
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{lastAppliedAnnotation: "{}"}, ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl"}}}}
	if got, _ := TransformForCache(s); got.(*corev1.Secret).Annotations[lastAppliedAnnotation] != "{}" || got.(*corev1.Secret).ManagedFields != nil {
		t.Errorf("trimmed Secret: %v", got)
	}
	if got, err := TransformForCache(cache.DeletedFinalStateUnknown{Key: "x"}); err != nil || got == nil {
		t.Errorf("tombstone: %v, %v", got, err)
	}
}

// runFixture starts Run over a fixture whose listers were filled by hand, and returns a channel
// that receives Run's result.
func runFixture(ctx context.Context, c *Controller, workers int) <-chan error {
	c.awsSecretsSynced = func() bool { return true }
	c.secretsSynced = func() bool { return true }
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx, workers) }()
	return done
}

// waitReturned waits up to 10 seconds for Run to return, and fails on its error.
func waitReturned(t *testing.T, done <-chan error) {
	t.Helper()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return within 10s of cancellation")
	}
}

// waitFor polls cond every 10ms until it holds or 10 seconds pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestShutdownFinishesOnlyTheSyncsInFlight: on cancellation the workers start nothing more from
// the queue (a cold-start burst must not outlive a Pod's grace period), and the sync in flight
// finishes and writes its Secret.
func TestShutdownFinishesOnlyTheSyncsInFlight(t *testing.T) {
	const queued = 40
	f := newFixture(t)
	f.aws.block = make(chan struct{})
	var keys []cache.ObjectName
	for i := range queued {
		version := fmt.Sprintf("%032d", i)
		f.aws.putString(seedSecretID, version, `{"foo":"bar"}`)
		a := newAWSSecret(fmt.Sprintf("app-%d", i), seedSecretID, version)
		f.seedAWSSecret(a)
		keys = append(keys, keyOf(t, a))
	}
	ctx, cancel := context.WithCancel(f.context())
	defer cancel()
	c := f.newController(ctx)
	for _, k := range keys {
		c.queue.Add(k)
	}
	done := runFixture(ctx, c, 1)
	waitFor(t, "a sync in flight", func() bool { return f.aws.totalCalls() == 1 })

	cancel()
	close(f.aws.block) // the sync in flight may now finish
	waitReturned(t, done)
	if n := f.aws.totalCalls(); n != 1 {
		t.Errorf("AWS calls = %d, want 1: only the sync in flight runs after cancellation", n)
	}
	var creates int
	for _, a := range f.writes() {
		if a.GetVerb() == "create" && a.GetResource().Resource == "secrets" {
			creates++
		}
	}
	if creates != 1 {
		t.Errorf("Secrets created = %d, want 1 (the sync in flight finishes its write)", creates)
	}
}

// TestShutdownDrainIsBounded: a sync in flight that does not finish within DrainTimeout is
// canceled, so that Run returns and the process exits inside its grace period.
func TestShutdownDrainIsBounded(t *testing.T) {
	f := newFixture(t)
	f.aws.block = make(chan struct{})
	t.Cleanup(func() { close(f.aws.block) })
	f.aws.putString(seedSecretID, seedVersionID, `{"foo":"bar"}`)
	a := newAWSSecret("example", seedSecretID, seedVersionID)
	f.seedAWSSecret(a)
	f.options = func(o *Options) { o.DrainTimeout = 100 * time.Millisecond }
	ctx, cancel := context.WithCancel(f.context())
	defer cancel()
	c := f.newController(ctx)
	c.queue.Add(keyOf(t, a))
	done := runFixture(ctx, c, 1)
	waitFor(t, "a sync in flight", func() bool { return f.aws.totalCalls() == 1 })

	cancel()
	waitReturned(t, done)
}

// startInformers starts the fixture's informers on the fake clientsets and waits for their
// initial lists.
func (f *fixture) startInformers(ctx context.Context) {
	f.t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	f.factory.Start(ctx.Done())
	f.kubeFactory.Start(ctx.Done())
	f.factory.WaitForCacheSync(ctx.Done())
	f.kubeFactory.WaitForCacheSync(ctx.Done())
	// Shutdown waits for the informers, which stop when their context does.
	f.t.Cleanup(func() { cancel(); f.factory.Shutdown(); f.kubeFactory.Shutdown() })
}

// nextKeys takes n keys off the queue, in the order workers would get them.
func nextKeys(c *Controller, n int) []cache.ObjectName {
	var out []cache.ObjectName
	for range n {
		key, _ := c.queue.Get()
		c.queue.Done(key)
		out = append(out, key)
	}
	return out
}

// TestQueueOrder: an edit overtakes the informer's initial list, and a namespace's bump does
// not wait behind another namespace's flood of new AWSSecrets.
func TestQueueOrder(t *testing.T) {
	f := newFixture(t)
	for i := range 200 {
		a := newAWSSecret(fmt.Sprintf("app-%03d", i), seedSecretID, seedVersionID)
		a.Namespace = "bulk"
		f.objects = append(f.objects, a)
	}
	quiet := newAWSSecret("app", seedSecretID, seedVersionID)
	quiet.Namespace = "quiet"
	f.objects = append(f.objects, quiet)
	ctx := f.context()
	c := f.newController(ctx)
	f.startInformers(ctx)
	waitFor(t, "the initial list queued", func() bool { return c.queue.Len() == 201 })

	// An edit of an AWSSecret near the end of the initial list is served first.
	edit := func(ns, name string) {
		t.Helper()
		a, err := f.client.MumoshuV1alpha1().AWSSecrets(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		a.Spec.StringDataFrom.SecretsManagerSecretRef.VersionID = newVersionID
		a.ResourceVersion = fmt.Sprint(time.Now().UnixNano())
		if _, err := f.client.MumoshuV1alpha1().AWSSecrets(ns).Update(ctx, a, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	edit("bulk", "app-150")
	waitFor(t, "the edit seen", func() bool {
		a, err := f.awsSecretIndexer.ByIndex(cache.NamespaceIndex, "bulk")
		for _, o := range a {
			if o.(*v1alpha1.AWSSecret).Name == "app-150" && o.(*v1alpha1.AWSSecret).Spec.StringDataFrom.SecretsManagerSecretRef.VersionID == newVersionID {
				return err == nil
			}
		}
		return false
	})
	if got := nextKeys(c, 1)[0]; got != (cache.ObjectName{Namespace: "bulk", Name: "app-150"}) {
		t.Errorf("first key = %v, want the edited bulk/app-150 ahead of the initial list", got)
	}
	// The initial list still completes: nothing is starved.
	nextKeys(c, 200)
	if n := c.queue.Len(); n != 0 {
		t.Fatalf("%d keys left after the initial list", n)
	}

	// A flood of new AWSSecrets in one namespace, then a bump in another.
	for i := range 300 {
		a := newAWSSecret(fmt.Sprintf("new-%03d", i), seedSecretID, seedVersionID)
		a.Namespace = "noisy"
		if err := f.client.Tracker().Add(a); err != nil {
			t.Fatal(err)
		}
		// The fake's watch channel holds 100 events: let the informer drain it.
		if i%50 == 49 {
			waitFor(t, "the flood queued so far", func() bool { return c.queue.Len() == i+1 })
		}
	}
	waitFor(t, "the flood queued", func() bool { return c.queue.Len() == 300 })
	edit("quiet", "app")
	waitFor(t, "the bump queued", func() bool { return c.queue.Len() == 301 })
	if got := nextKeys(c, 2); got[0] != (cache.ObjectName{Namespace: "quiet", Name: "app"}) && got[1] != (cache.ObjectName{Namespace: "quiet", Name: "app"}) {
		t.Errorf("first keys = %v, want quiet/app among the first two: namespaces are served in turn", got)
	}
}

// TestDefaultRetryPacing: without options, a transient error is retried after 50 ms, doubling
// per failure up to 5 minutes; an error only a change can fix after 30 s, doubling up to 10
// minutes.
func TestDefaultRetryPacing(t *testing.T) {
	f := newFixture(t)
	c := f.newController(f.context())
	key := cache.ObjectName{Namespace: "default", Name: "x"}
	var fast, slow []time.Duration
	for range 16 {
		fast = append(fast, c.retry.When(key))
		slow = append(slow, c.permanentRetry.When(key))
	}
	wantFast := []time.Duration{50 * time.Millisecond, 100 * time.Millisecond, 200 * time.Millisecond}
	wantSlow := []time.Duration{30 * time.Second, time.Minute, 2 * time.Minute}
	if !slices.Equal(fast[:3], wantFast) || fast[15] != 5*time.Minute {
		t.Errorf("transient retries after %v … %v, want %v … 5m", fast[:3], fast[15], wantFast)
	}
	if !slices.Equal(slow[:3], wantSlow) || slow[15] != 10*time.Minute {
		t.Errorf("permanent retries after %v … %v, want %v … 10m", slow[:3], slow[15], wantSlow)
	}
}

// TestNewControllerNeedsItsOptions: each option the controller cannot work without is named
// when it is missing, and the allow-list policy needs Namespaces to read annotations from.
func TestNewControllerNeedsItsOptions(t *testing.T) {
	f := newFixture(t)
	var full Options
	f.options = func(o *Options) { full = *o }
	f.newController(f.context())
	for name, tc := range map[string]struct {
		edit func(*Options)
		want string
	}{
		"no KubeClient":             {func(o *Options) { o.KubeClient = nil }, "KubeClient and AWSSecretClient are required"},
		"no AWSSecretClient":        {func(o *Options) { o.AWSSecretClient = nil }, "KubeClient and AWSSecretClient are required"},
		"no AWSSecretInformer":      {func(o *Options) { o.AWSSecretInformer = nil }, "AWSSecretInformer and SecretInformer are required"},
		"no SecretInformer":         {func(o *Options) { o.SecretInformer = nil }, "AWSSecretInformer and SecretInformer are required"},
		"no Versions":               {func(o *Options) { o.Versions = nil }, "Versions is required"},
		"allow-list, no Namespaces": {func(o *Options) { o.Policy.Mode = tenancy.ModeAllowList }, "needs a NamespaceInformer"},
		"complete":                  {func(*Options) {}, ""},
	} {
		t.Run(name, func(t *testing.T) {
			o := full
			tc.edit(&o)
			_, err := NewController(f.context(), o)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("NewController: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("NewController: %v, want %q", err, tc.want)
			}
		})
	}
}
