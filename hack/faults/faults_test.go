package main

import (
	"context"
	"flag"
	"strings"
	"testing"
	"time"
)

// TestFaultsSmoke runs the fault suite small, as part of `make test`: the machinery of each kind
// of fault (the proxy refusing and resetting, kube-apiserver killed, SIGTERM, a leader killed,
// watches expiring) on the real stack, with the checks `make faults` makes. The figures are
// `make faults`'s job (docs/reliability.md).
func TestFaultsSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a stack per scenario")
	}
	scenarios := "1a,2,3c,5,6,7"
	r := runSmall(t, 10*time.Minute,
		"--objects", "40", "--namespaces", "3", "--versions", "8",
		// A slow client, so that a cold start of 40 objects takes seconds and each fault lands
		// in the middle of it (each scenario checks that it did).
		"--controller-args", "--kube-api-qps=15 --kube-api-burst=5",
		"--outage", "5s", "--fraction", "0.5",
		// Short leases, so the failover takes seconds; a renew deadline longer than the API
		// server's restart, so the kills of 1a and 7 do not cost the Lease.
		"--lease-duration", "6s", "--renew-deadline", "5s", "--retry-period", "1s",
		"--scenarios", scenarios)
	var ids []string
	for _, res := range r.Results {
		ids = append(ids, res.ID)
		t.Logf("%s %s: %.1f s, attempts %d %v, answered %d, writes %v, conflicts %d, restarts %d; %s",
			res.ID, res.Name, res.Seconds, res.Attempts, res.Outcomes, res.Answered, res.Writes, res.Conflicts, res.Restarts, strings.Join(res.Notes, "; "))
		if len(res.Verdicts) < 2 {
			t.Errorf("%s: %d checks, want at least the two every scenario makes", res.ID, len(res.Verdicts))
		}
	}
	if got := strings.Join(ids, ","); got != scenarios {
		t.Errorf("results for %s, want %s", got, scenarios)
	}
	for _, f := range r.failed() {
		t.Error(f)
	}
}

// TestFaultsSmokeSlowAWS runs scenario 4 small: every request to Secrets Manager delayed 3 s,
// 8 versions pinned by 80 AWSSecrets, 2 workers and the default QPS, so that the reads bound the
// cold start: 8 / 2 x 3 s = 12 s. It must finish within 1.25 times that, which a worker waiting
// on another's read (half of them would) cannot.
func TestFaultsSmokeSlowAWS(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a stack")
	}
	r := runSmall(t, 5*time.Minute, "--objects", "80", "--namespaces", "3", "--versions", "8", "--workers", "2", "--delay", "3s",
		"--scenarios", "4")
	if len(r.Results) != 1 || r.Results[0].ID != "4" {
		t.Fatalf("results %+v, want scenario 4's", r.Results)
	}
	t.Logf("4: %.1f s; %s", r.Results[0].Seconds, strings.Join(r.Results[0].Notes, "; "))
	for _, f := range r.failed() {
		t.Error(f)
	}
}

// runSmall runs the suite with args on top of what every small run sets (this repository, a
// 3-minute timeout per scenario, no report files, a temporary work folder), within timeout.
func runSmall(t *testing.T, timeout time.Duration, args ...string) report {
	t.Helper()
	var c config
	fs := flag.NewFlagSet("faults", flag.ContinueOnError)
	c.flags(fs)
	if err := fs.Parse(append([]string{"--repo", "../..", "--timeout", "3m", "--out", "", "--json", "", "--work-dir", t.TempDir()}, args...)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	r, err := run(ctx, c, "go test ./hack/faults")
	if err != nil {
		t.Fatal(err)
	}
	return r
}
