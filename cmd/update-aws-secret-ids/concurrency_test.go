//go:build go1.25

// testing/synctest (Go 1.25) is what makes this test deterministic; the module still builds and
// tests with Go 1.24, without it.

package main

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/synctest"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
)

// held answers DescribeSecret with version heldVersion(secretId) holding AWSCURRENT, but holds each
// call until the test lets one go (a send on release) or all (closing it). It counts the calls in
// flight and the most ever in flight at once, as each call starts.
type held struct {
	release chan struct{}

	mu                    sync.Mutex
	inFlight, maxInFlight int
	calls                 map[string]int
}

func (h *held) DescribeSecret(_ context.Context, in *secretsmanager.DescribeSecretInput, _ ...func(*secretsmanager.Options)) (*secretsmanager.DescribeSecretOutput, error) {
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

func (h *held) now() (inFlight, maxInFlight int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.inFlight, h.maxInFlight
}

// TestConcurrency runs `--check` over ten files, each pinning its own secret, with DescribeSecret
// held and let go one call at a time. synctest.Wait returns only when every goroutine of the
// test is blocked, so no call more can start before the count is read: while at least
// --concurrency calls remain, exactly --concurrency are in flight, never more.
func TestConcurrency(t *testing.T) {
	const secrets = 10
	files := map[string]string{}
	for i := range secrets {
		files[fmt.Sprintf("s%02d.yaml", i)] = awsSecret("s", fmt.Sprintf("prod/s%02d", i), old)
	}
	dir := tree(t, files)
	for _, tc := range []struct {
		name  string
		args  []string
		slots int
	}{
		{"the default", nil, 8},
		{"--concurrency 3", []string{"--concurrency", "3"}, 3},
		{"--concurrency 1", []string{"--concurrency", "1"}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			opts, err := parseFlags(append(append([]string{"--check"}, tc.args...), dir), &stderr)
			if err != nil {
				t.Fatal(err)
			}
			synctest.Test(t, func(t *testing.T) {
				api := &held{release: make(chan struct{}), calls: map[string]int{}}
				done := make(chan int, 1)
				go func() { done <- run(context.Background(), opts, api, &stdout, &stderr) }()
				for returned := 0; returned < secrets; returned++ {
					synctest.Wait()
					inFlight, _ := api.now()
					if want := min(tc.slots, secrets-returned); inFlight != want {
						t.Errorf("after %d of %d calls returned: %d DescribeSecret calls in flight, want %d", returned, secrets, inFlight, want)
						break
					}
					api.release <- struct{}{}
				}
				close(api.release) // after a failure, let the rest return
				code := <-done

				if _, most := api.now(); most != tc.slots {
					t.Errorf("at most %d DescribeSecret calls were in flight at once, want %d", most, tc.slots)
				}
				if code != exitBehind || strings.Count(stdout.String(), " -> v-prod/s") != secrets {
					t.Errorf("--check: exit %d, printed %q (stderr %q); want %d, every file behind", code, stdout.String(), stderr.String(), exitBehind)
				}
				for i := range secrets {
					id := fmt.Sprintf("prod/s%02d", i)
					if n := api.calls[id]; n != 1 {
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
