package awssm

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/aws/smithy-go"
	"k8s.io/klog/v2/ktesting"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/mumoshu/aws-secret-controller/pkg/apis/mumoshu/v1alpha1"
)

var epoch = time.Date(2026, 11, 29, 0, 0, 0, 0, time.UTC)

// guardedCache is a Cache on a fake clock whose log lines are kept.
func guardedCache(t *testing.T, api API, opts CacheOptions) (*Cache, *clocktesting.FakeClock, func() ktesting.Log) {
	t.Helper()
	clk := clocktesting.NewFakeClock(epoch)
	logger := ktesting.NewLogger(ktesting.NopTL{}, ktesting.NewConfig(ktesting.BufferLogs(true)))
	opts.Clock, opts.Logger = clk, logger
	logs := func() ktesting.Log { return logger.GetSink().(ktesting.Underlier).GetBuffer().Data() }
	return NewCache(api, opts), clk, logs
}

// heldFor returns how long err says the version is held, failing unless it is a hold.
func heldFor(t *testing.T, err error) time.Duration {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) || e.RetryAfter <= 0 {
		t.Fatalf("error %v is not a hold", err)
	}
	return e.RetryAfter
}

// TestFailedReadsAreHeldAndShared: a failed read is answered to every reader without a call
// until its hold ends; holds grow per failure in a row, within bounds; permanent errors are held
// longer than transient ones; a success ends the hold.
func TestFailedReadsAreHeldAndShared(t *testing.T) {
	notFound := &types.ResourceNotFoundException{Message: aws.String("Secrets Manager can't find the specified secret.")}
	expired := &smithy.GenericAPIError{Code: "ExpiredTokenException"}
	throttled := &smithy.GenericAPIError{Code: "ThrottlingException"}
	refused := errors.New("dial tcp 127.0.0.1:1: connect: connection refused")
	for name, tc := range map[string]struct {
		err     error
		backoff Backoff
	}{
		"permanent": {notFound, DefaultPermanentHold},
		"transient": {expired, DefaultTransientHold},
		// The account's and the endpoint's failures stay at the first step: the pacer and the
		// circuit back off from those.
		"throttled": {throttled, Backoff{DefaultTransientHold.Initial, DefaultTransientHold.Initial}},
		"no answer": {refused, Backoff{DefaultTransientHold.Initial, DefaultTransientHold.Initial}},
	} {
		t.Run(name, func(t *testing.T) {
			api := &countingAPI{err: tc.err}
			// The circuit never opens here: every call is a version's own.
			c, clk, _ := guardedCache(t, api, CacheOptions{Circuit: CircuitOptions{Failures: 1000}})
			ctx := context.Background()
			var last time.Duration
			for step := 1; step <= 12; step++ {
				_, err := c.Get(ctx, Identity{}, "s", "v1")
				hold := heldFor(t, err)
				if api.count() != step {
					t.Fatalf("step %d: calls = %d, want %d", step, api.count(), step)
				}
				want := min(tc.backoff.Max, tc.backoff.Initial<<(step-1))
				if hold > want || hold < want*4/5 {
					t.Fatalf("step %d: hold %v, want within [%v, %v]", step, hold, want*4/5, want)
				}
				if step > 1 && want < tc.backoff.Max && hold <= last {
					t.Fatalf("step %d: hold %v did not grow from %v", step, hold, last)
				}
				last = hold
				// Every reader during the hold gets the same reason and message without a call.
				clk.Step(hold / 2)
				for range 5 {
					_, again := c.Get(ctx, Identity{}, "s", "v1")
					if again.Error() != err.Error() || heldFor(t, again) > hold-hold/2 {
						t.Fatalf("step %d: a reader during the hold got %v (%v)", step, again, heldFor(t, again))
					}
				}
				if api.count() != step {
					t.Fatalf("step %d: readers during the hold made calls: %d", step, api.count())
				}
				if s := c.Stats(); s.Holds != 1 {
					t.Fatalf("holds in force = %d, want 1", s.Holds)
				}
				clk.Step(hold - hold/2)
			}
			// The version is there now: the next read after the hold gets it, and ends the hold.
			api.mu.Lock()
			api.err = nil
			api.mu.Unlock()
			if _, err := c.Get(ctx, Identity{}, "s", "v1"); err != nil {
				t.Fatal(err)
			}
			if s := c.Stats(); s.Holds != 0 || s.Entries != 1 {
				t.Errorf("stats after success = %+v", s)
			}
		})
	}
}

// TestIgnoreHoldReadsAgain: a caller whose reason to read changed asks AWS during the hold.
func TestIgnoreHoldReadsAgain(t *testing.T) {
	api := &countingAPI{err: &types.ResourceNotFoundException{Message: aws.String("can't find the specified secret.")}}
	c, _, _ := guardedCache(t, api, CacheOptions{})
	ctx := context.Background()
	c.Get(ctx, Identity{}, "s", "v1")
	c.Fetch(ctx, Identity{}, "s", "v1", FetchOptions{})
	if api.count() != 1 {
		t.Fatalf("calls = %d, want 1", api.count())
	}
	_, err := c.Fetch(ctx, Identity{}, "s", "v1", FetchOptions{IgnoreHold: true})
	if api.count() != 2 {
		t.Fatalf("calls = %d, want 2: IgnoreHold must ask again", api.count())
	}
	// The failure counts toward the back-off: the hold is the second step's.
	if hold := heldFor(t, err); hold < 2*DefaultPermanentHold.Initial*4/5 {
		t.Errorf("hold after a second failure = %v", hold)
	}
}

// TestReadsInFlightPark: with Wake, a reader of a version another reader is fetching gets
// ErrInFlight at once, and is woken when the fetch is done; it then reads the cache.
func TestReadsInFlightPark(t *testing.T) {
	api := &countingAPI{release: make(chan struct{}), entered: make(chan struct{}, 1)}
	c, _, _ := guardedCache(t, api, CacheOptions{})
	ctx := context.Background()
	done := make(chan error, 1)
	go func() {
		_, err := c.Fetch(ctx, Identity{}, "s", "v1", FetchOptions{Wake: func() {}})
		done <- err
	}()
	<-api.entered
	woken := make(chan struct{}, 3)
	for range 3 {
		_, err := c.Fetch(ctx, Identity{}, "s", "v1", FetchOptions{Wake: func() { woken <- struct{}{} }})
		if !errors.Is(err, ErrInFlight) {
			t.Fatalf("Fetch during another's fetch = %v, want ErrInFlight", err)
		}
	}
	if len(woken) != 0 {
		t.Fatal("woken before the fetch was done")
	}
	close(api.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for range 3 {
		select {
		case <-woken:
		case <-time.After(10 * time.Second):
			t.Fatal("a parked reader was never woken")
		}
	}
	if v, err := c.Fetch(ctx, Identity{}, "s", "v1", FetchOptions{Wake: func() {}}); err != nil || string(v.Bytes()) != "s/v1" {
		t.Fatalf("after the wake: %q, %v", v.Bytes(), err)
	}
	if api.count() != 1 {
		t.Errorf("calls = %d, want 1", api.count())
	}
}

// switchAPI fails every call with a connection error while down is set, and counts calls.
type switchAPI struct {
	countingAPI
	down atomic.Bool
}

func (a *switchAPI) setDown(down bool) {
	a.down.Store(down)
	a.mu.Lock()
	defer a.mu.Unlock()
	a.err = nil
	if down {
		a.err = errors.New("dial tcp 127.0.0.1:1: connect: connection refused")
	}
}

// waitFor polls cond until it holds or 10 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestCircuitProbesAndWakes: calls that get no answer open the circuit after
// CircuitOptions.Failures in a row; then reads are parked without a call, one probe is made at
// intervals growing from 1 s to 5 s, and when a probe is answered every parked reader is woken.
func TestCircuitProbesAndWakes(t *testing.T) {
	api := &switchAPI{}
	api.setDown(true)
	c, clk, logs := guardedCache(t, api, CacheOptions{})
	ctx := context.Background()
	for i := range 5 {
		_, err := c.Get(ctx, Identity{}, "s", "v"+string(rune('a'+i)))
		if err == nil {
			t.Fatal("want an error")
		}
	}
	if s := c.Stats(); !s.CircuitOpen || s.Holds != 0 {
		t.Fatalf("after 5 failures in a row: %+v, want the circuit open and no holds", s)
	}
	var woken atomic.Int32
	for i := range 100 {
		_, err := c.Fetch(ctx, Identity{}, "s", "w"+string(rune('a'+i%26)), FetchOptions{Wake: func() { woken.Add(1) }})
		var e *Error
		if !errors.As(err, &e) || !e.Parked || e.Reason != v1alpha1.ReasonAWSError || !e.Transient {
			t.Fatalf("read while open = %v, want a parked AWSError", err)
		}
	}
	if api.count() != 5 {
		t.Fatalf("calls while open = %d, want none", api.count()-5)
	}
	// Probes: one per interval, 1 s, 2 s, 4 s, then 5 s.
	calls := 5
	for _, interval := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 5 * time.Second, 5 * time.Second} {
		clk.Step(interval - time.Millisecond)
		time.Sleep(10 * time.Millisecond) // nothing may happen: there is nothing to wait for
		if api.count() != calls {
			t.Fatalf("probe before its interval of %v", interval)
		}
		clk.Step(time.Millisecond)
		calls++
		waitFor(t, "the probe", func() bool { return api.count() == calls && !c.probing() })
	}
	if woken.Load() != 0 {
		t.Fatal("parked readers woken while down")
	}
	// Back: the next probe is answered, the circuit closes, every parked reader is woken.
	api.setDown(false)
	clk.Step(5 * time.Second)
	waitFor(t, "the parked readers to be woken", func() bool { return woken.Load() == 100 })
	if s := c.Stats(); s.CircuitOpen || s.Parked != 0 || s.Entries != 1 || api.count() != calls+1 {
		t.Errorf("after recovery: %+v, calls %d", s, api.count())
	}
	// One line per hold before it opened (the fifth failure opened it), one for opening, one per
	// failed probe, one when it closed: none for the 100 reads it stopped.
	if n := len(logs()); n != 4+1+5+1 {
		for _, l := range logs() {
			t.Log(l.Message, l.ParameterKVList)
		}
		t.Errorf("log lines = %d, want 11", n)
	}
}

// probing says whether a probe is in flight, for tests.
func (c *Cache) probing() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.circuit.probing
}

// TestAnswersKeepTheCircuitClosed: AWS refusing a read is an answer: no number of them opens
// the circuit, and one between connection errors starts the count again.
func TestAnswersKeepTheCircuitClosed(t *testing.T) {
	api := &switchAPI{}
	c, _, _ := guardedCache(t, api, CacheOptions{})
	ctx := context.Background()
	for i := range 20 {
		api.setDown(i%4 != 3) // three connection errors, then a NotFound
		if i%4 == 3 {
			api.mu.Lock()
			api.err = &types.ResourceNotFoundException{Message: aws.String("can't find the specified secret.")}
			api.mu.Unlock()
		}
		c.Get(ctx, Identity{}, "s", "v"+string(rune('a'+i)))
	}
	if c.Stats().CircuitOpen {
		t.Error("circuit open although AWS answered every fourth call")
	}
}

// TestCircuitNeedsSilence: failures in a row open the circuit only when nothing answered for
// CircuitOptions.Silence: an endpoint failing half its calls at random still answers.
func TestCircuitNeedsSilence(t *testing.T) {
	api := &switchAPI{}
	c, clk, _ := guardedCache(t, api, CacheOptions{})
	ctx := context.Background()
	if _, err := c.Get(ctx, Identity{}, "s", "ok"); err != nil {
		t.Fatal(err)
	}
	api.setDown(true)
	for i := range 10 {
		c.Get(ctx, Identity{}, "s", "v"+string(rune('a'+i)))
	}
	if c.Stats().CircuitOpen {
		t.Fatal("circuit open although AWS answered less than a second ago")
	}
	clk.Step(time.Second)
	c.Get(ctx, Identity{}, "s", "next")
	if !c.Stats().CircuitOpen {
		t.Fatal("circuit closed after 11 failures in a row and a second without an answer")
	}
}

// TestHeldFailuresLogOnce: one log line per hold, with the number of reads the last hold answered.
func TestHeldFailuresLogOnce(t *testing.T) {
	api := &countingAPI{err: &types.ResourceNotFoundException{Message: aws.String("can't find the specified secret.")}}
	c, clk, logs := guardedCache(t, api, CacheOptions{})
	ctx := context.Background()
	for range 3 {
		for range 50 {
			c.Get(ctx, Identity{}, "s", "v1")
		}
		clk.Step(DefaultPermanentHold.Max)
	}
	lines := logs()
	if len(lines) != 3 {
		t.Fatalf("log lines = %d, want one per hold: 3", len(lines))
	}
	for i, l := range lines {
		kv := map[any]any{}
		for j := 0; j+1 < len(l.ParameterKVList); j += 2 {
			kv[l.ParameterKVList[j]] = l.ParameterKVList[j+1]
		}
		// The first hold's line is written when it begins; each later line counts the reads
		// the hold before it answered.
		want := 0
		if i > 0 {
			want = 49
		}
		if kv["answeredFromLastHold"] != want || kv["failuresInARow"] != i+1 {
			t.Errorf("line %d: %v", i, l.ParameterKVList)
		}
	}
}

// TestParkedCallersWaitOnce: a caller that asks again and again while parked (its AWSSecret
// edited over and over during an outage) holds one wake-up, not one per request.
func TestParkedCallersWaitOnce(t *testing.T) {
	api := &switchAPI{}
	api.setDown(true)
	c, clk, _ := guardedCache(t, api, CacheOptions{Circuit: CircuitOptions{Failures: 1}})
	ctx := context.Background()
	c.Get(ctx, Identity{}, "s", "v")
	if !c.Stats().CircuitOpen {
		t.Fatal("circuit closed")
	}
	var woken atomic.Int32
	for range 1000 {
		c.Fetch(ctx, Identity{}, "s", "v", FetchOptions{WakeKey: "default/app", Wake: func() { woken.Add(1) }})
	}
	if p := c.Stats().Parked; p != 1 {
		t.Fatalf("parked = %d, want 1", p)
	}
	api.setDown(false)
	clk.Step(time.Second)
	waitFor(t, "the wake-up", func() bool { return woken.Load() > 0 })
	time.Sleep(10 * time.Millisecond)
	if n := woken.Load(); n != 1 {
		t.Errorf("woken %d times, want once", n)
	}
}

// TestWhatCountsAgainstTheEndpoint: only failures of the path to Secrets Manager (no answer, a
// 5xx) count toward the circuit; throttling, AWS's refusals, credentials and STS do not.
func TestWhatCountsAgainstTheEndpoint(t *testing.T) {
	refused := errors.New("dial tcp 127.0.0.1:1: connect: connection refused")
	for name, tc := range map[string]struct {
		err  error
		want bool
	}{
		"no answer":      {refused, true},
		"internal error": {&types.InternalServiceError{}, true},
		"throttled":      {&smithy.GenericAPIError{Code: "ThrottlingException"}, false},
		"not found":      {&types.ResourceNotFoundException{Message: aws.String("can't find the specified secret.")}, false},
		"expired token":  {&smithy.GenericAPIError{Code: "ExpiredTokenException"}, false},
		"STS unreachable": {&smithy.OperationError{ServiceID: "Secrets Manager", OperationName: "GetSecretValue",
			Err: fmt.Errorf("failed to refresh cached credentials, %w", &smithy.OperationError{ServiceID: "STS", OperationName: "AssumeRole", Err: refused})}, false},
	} {
		e := Classify(tc.err, "s", "v").(*Error)
		if e.endpoint != tc.want {
			t.Errorf("%s: counts against the endpoint = %v, want %v", name, e.endpoint, tc.want)
		}
	}
}
