//go:build go1.25

// testing/synctest (Go 1.25) is what makes this test deterministic; the module still builds and
// tests with Go 1.24, without it.

package bump

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
)

// heldSM answers DescribeSecret with version heldVersion(secretId) holding AWSCURRENT, but holds each
// call until the test lets one go (a send on release) or all (closing it). It counts the calls in
// flight and the most ever in flight at once, as each call starts.
type heldSM struct {
	release chan struct{}

	mu                    sync.Mutex
	inFlight, maxInFlight int
	calls                 map[string]int
}

func newHeldSM() *heldSM {
	return &heldSM{release: make(chan struct{}), calls: map[string]int{}}
}

func (h *heldSM) DescribeSecret(_ context.Context, in *secretsmanager.DescribeSecretInput, _ ...func(*secretsmanager.Options)) (*secretsmanager.DescribeSecretOutput, error) {
	id := aws.ToString(in.SecretId)
	h.mu.Lock()
	h.calls[id]++
	h.inFlight++
	h.maxInFlight = max(h.maxInFlight, h.inFlight)
	h.mu.Unlock()
	<-h.release
	h.mu.Lock()
	h.inFlight--
	h.mu.Unlock()
	return &secretsmanager.DescribeSecretOutput{Name: in.SecretId, VersionIdsToStages: map[string][]string{heldVersion(id): {"AWSCURRENT"}}}, nil
}

func (h *heldSM) now() (inFlight, maxInFlight int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.inFlight, h.maxInFlight
}

// TestResolveKeepsConcurrencyCallsInFlight holds every DescribeSecret and lets them return one by
// one. synctest.Wait returns only when every goroutine of the test is blocked, so no call more
// can start before the count is read: while at least `slots` calls remain, exactly `slots` are
// in flight (the limit is used, and never exceeded), and the most ever in flight is `slots`.
func TestResolveKeepsConcurrencyCallsInFlight(t *testing.T) {
	for _, tc := range []struct {
		name                 string
		secrets, concurrency int
		// slots is how many calls may be in flight: concurrency, or 1 when it is below 1.
		slots int
	}{
		{"more secrets than slots", 10, 3, 3},
		{"one at a time", 4, 1, 1},
		{"fewer secrets than slots", 3, 8, 8},
		{"zero is one", 3, 0, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				sm := newHeldSM()
				var ids []string
				for i := range tc.secrets {
					id := fmt.Sprintf("prod/s%02d", i)
					ids = append(ids, id, id) // twice: still one call
				}
				done := make(chan map[string]Resolved, 1)
				go func() { done <- Resolve(context.Background(), sm, ids, "AWSCURRENT", tc.concurrency) }()
				for returned := 0; returned < tc.secrets; returned++ {
					synctest.Wait()
					inFlight, _ := sm.now()
					if want := min(tc.slots, tc.secrets-returned); inFlight != want {
						t.Errorf("concurrency %d, after %d of %d calls returned: %d DescribeSecret calls in flight, want %d", tc.concurrency, returned, tc.secrets, inFlight, want)
						break
					}
					sm.release <- struct{}{}
				}
				close(sm.release) // after a failure, let the rest return
				got := <-done

				if _, most := sm.now(); most != min(tc.slots, tc.secrets) {
					t.Errorf("concurrency %d: at most %d DescribeSecret calls were in flight at once, want %d", tc.concurrency, most, min(tc.slots, tc.secrets))
				}
				if len(got) != tc.secrets {
					t.Errorf("%d secrets resolved, want %d", len(got), tc.secrets)
				}
				for i := range tc.secrets {
					id := fmt.Sprintf("prod/s%02d", i)
					if r := got[id]; r.Err != nil || r.VersionID != heldVersion(id) {
						t.Errorf("%s resolved to %+v, want v-%s", id, r, id)
					}
					if n := sm.calls[id]; n != 1 {
						t.Errorf("%s: %d DescribeSecret calls, want 1", id, n)
					}
				}
			})
		})
	}
}

// heldVersion is the version the fake says holds AWSCURRENT: "v-<secretId>", made as long as a
// version id.
func heldVersion(id string) string { return "v-" + id + "-0123456789abcdef0123456789abcdef" }
