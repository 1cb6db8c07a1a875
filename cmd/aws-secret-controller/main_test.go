package main

import (
	"context"
	"errors"
	"flag"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	k8sfake "k8s.io/client-go/kubernetes/fake"
	core "k8s.io/client-go/testing"
	"k8s.io/klog/v2"

	"github.com/mumoshu/aws-secret-controller/pkg/tenancy"
)

// TestAllowedSecretIDs: --allowed-secret-ids="" (the default) is no bound; a value that holds no
// pattern is refused, naming the flag, never read as no bound.
func TestAllowedSecretIDs(t *testing.T) {
	tests := map[string]struct {
		flag    string
		want    tenancy.Patterns
		wantErr bool
	}{
		"unset: no bound":             {flag: ""},
		"blank":                       {flag: " ", wantErr: true},
		"one comma":                   {flag: ",", wantErr: true},
		"comma between blanks":        {flag: " , ", wantErr: true},
		"trailing comma: one pattern": {flag: "a,", want: tenancy.Patterns{"a"}},
		"two patterns":                {flag: "team-a/*, shared/*", want: tenancy.Patterns{"team-a/*", "shared/*"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := parseAllowedSecretIDs(tc.flag)
			if tc.wantErr {
				if err == nil || !strings.Contains(err.Error(), "--allowed-secret-ids") || !strings.Contains(err.Error(), "holds no secret id pattern") {
					t.Fatalf("parseAllowedSecretIDs(%q) = %q, %v; want an error naming the flag", tc.flag, got, err)
				}
				if !errors.Is(err, tenancy.ErrNoPattern) {
					t.Errorf("error %v does not wrap tenancy.ErrNoPattern", err)
				}
				return
			}
			if err != nil || !slices.Equal(got, tc.want) || (got == nil) != (tc.want == nil) {
				t.Errorf("parseAllowedSecretIDs(%q) = %#v, %v; want %#v", tc.flag, got, err, tc.want)
			}
		})
	}
}

// TestRunRefusesAnAllowedSecretIDsWithoutPattern: the controller does not start with a bound that
// holds no pattern; it says so before it builds any client. The kubeconfig does not exist, so
// a controller that went on would fail on it instead, with another error.
func TestRunRefusesAnAllowedSecretIDsWithoutPattern(t *testing.T) {
	for _, value := range []string{" ", ",", " , "} {
		o := options{workers: 1, namespacePolicy: string(tenancy.ModeOpen), allowedSecretIDs: value,
			kubeconfig: filepath.Join(t.TempDir(), "no-kubeconfig")}
		err := run(context.Background(), o)
		if err == nil || !strings.HasPrefix(err.Error(), "--allowed-secret-ids: ") {
			t.Errorf("run with --allowed-secret-ids=%q: %v, want a refusal naming the flag", value, err)
		}
	}
}

func TestCapVerbosity(t *testing.T) {
	tests := map[string]struct {
		args        []string
		wantV       string
		wantVModule string
		wantCapped  bool
	}{
		"default":          {wantV: "0"},
		"7 is allowed":     {args: []string{"-v=7"}, wantV: "7"},
		"8 is capped":      {args: []string{"-v=8"}, wantV: "7", wantCapped: true},
		"10 is capped":     {args: []string{"-v=10"}, wantV: "7", wantCapped: true},
		"vmodule is kept":  {args: []string{"-vmodule=sync=4"}, wantV: "0", wantVModule: "sync=4"},
		"vmodule capped":   {args: []string{"-vmodule=request=9,sync=4"}, wantV: "0", wantVModule: "request=7,sync=4", wantCapped: true},
		"both capped":      {args: []string{"-v=9", "-vmodule=round_trippers=10"}, wantV: "7", wantVModule: "round_trippers=7", wantCapped: true},
		"vmodule is empty": {args: []string{"-vmodule="}, wantV: "0"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			fs := flag.NewFlagSet("test", flag.ContinueOnError)
			klog.InitFlags(fs)
			t.Cleanup(func() { _ = fs.Set("v", "0"); _ = fs.Set("vmodule", "") })
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			capped := capVerbosity(fs)
			if (capped != "") != tc.wantCapped {
				t.Errorf("capVerbosity() = %q, want capped: %v", capped, tc.wantCapped)
			}
			if got := fs.Lookup("v").Value.String(); got != tc.wantV {
				t.Errorf("-v = %s, want %s", got, tc.wantV)
			}
			if got := fs.Lookup("vmodule").Value.String(); got != tc.wantVModule {
				t.Errorf("-vmodule = %q, want %q", got, tc.wantVModule)
			}
			if klog.V(8).Enabled() {
				t.Error("klog.V(8) is enabled: client-go would log bodies")
			}
		})
	}
}

// TestLosingTheLeaseWaitsForInFlightSyncs: when the Lease cannot be renewed, the controller's
// context is canceled and runLeading returns an error, but only after the controller has
// returned (its syncs in flight done), never while a sync may still write.
func TestLosingTheLeaseWaitsForInFlightSyncs(t *testing.T) {
	client := k8sfake.NewClientset()
	var failRenewals atomic.Bool
	client.PrependReactor("update", "leases", func(core.Action) (bool, runtime.Object, error) {
		if failRenewals.Load() {
			return true, nil, errors.New("etcdserver: request timed out")
		}
		return false, nil, nil
	})
	o := options{
		leaderElectID: "test", leaderElectNS: "default",
		leaseDuration: time.Second, renewDeadline: 500 * time.Millisecond, retryPeriod: 100 * time.Millisecond,
	}
	started, lost, release := make(chan struct{}), make(chan struct{}), make(chan struct{})
	var finished atomic.Bool
	run := func(ctx context.Context) error {
		close(started)
		<-ctx.Done()
		close(lost)
		<-release // a sync in flight, still writing
		finished.Store(true)
		return nil
	}
	done := make(chan error, 1)
	go func() { done <- runLeading(context.Background(), client, o, nil, run) }()

	waitClosed(t, started, "leading")
	failRenewals.Store(true)
	waitClosed(t, lost, "the controller's context canceled after failed renewals")
	select {
	case err := <-done:
		t.Fatalf("runLeading returned (%v) while a sync was still in flight", err)
	case <-time.After(300 * time.Millisecond):
	}
	close(release)
	select {
	case err := <-done:
		if err == nil {
			t.Error("runLeading returned no error after losing the Lease")
		}
		if !finished.Load() {
			t.Error("runLeading returned before the controller did")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("runLeading did not return within 10s of the controller returning")
	}
}

func waitClosed(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: not within 10s", what)
	}
}

// TestEveryFlagIsDocumented: docs/operations.md's flags table names every flag the controller
// defines, and no flag it does not define.
func TestEveryFlagIsDocumented(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "docs", "operations.md"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	start := strings.Index(text, "## Flags\n")
	if start < 0 {
		t.Fatal("docs/operations.md has no Flags section")
	}
	end := strings.Index(text[start+1:], "\n## ")
	if end < 0 {
		t.Fatal("docs/operations.md's Flags section is its last: want the sections after it")
	}
	documented := map[string]bool{}
	for _, line := range strings.Split(text[start:start+1+end], "\n") {
		if first, _, ok := strings.Cut(strings.TrimPrefix(line, "| "), " |"); ok && strings.HasPrefix(line, "| `--") {
			for _, m := range regexp.MustCompile("`--([a-z0-9-]+)`").FindAllStringSubmatch(first, -1) {
				documented[m[1]] = true
			}
		}
	}

	fs := flag.NewFlagSet("aws-secret-controller", flag.ContinueOnError)
	var o options
	o.bindFlags(fs)
	fs.VisitAll(func(f *flag.Flag) {
		if !documented[f.Name] {
			t.Errorf("--%s is not in docs/operations.md's flags table", f.Name)
		}
		delete(documented, f.Name)
	})
	for name := range documented {
		t.Errorf("docs/operations.md's flags table names --%s, which the controller does not define", name)
	}
}

// TestGoMemoryLimit: with versions cached outside the Go heap, the runtime's limit is GOMEMLIMIT
// less what the cache mapped, so that heap and cache together stay within GOMEMLIMIT.
func TestGoMemoryLimit(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct {
		name                string
		limit, mapped, want int64
	}{
		{name: "nothing mapped", limit: 113 * mib, mapped: 0, want: 113 * mib},
		{name: "the cache's slabs", limit: 113 * mib, mapped: 9 * mib, want: 104 * mib},
		{name: "no GOMEMLIMIT", limit: math.MaxInt64, mapped: 9 * mib, want: math.MaxInt64},
		{name: "never below half", limit: 40 * mib, mapped: 32 * mib, want: 20 * mib},
	} {
		if got := goMemoryLimit(tc.limit, tc.mapped); got != tc.want {
			t.Errorf("%s: goMemoryLimit(%d MiB, %d MiB) = %.1f MiB, want %.1f MiB", tc.name, tc.limit/mib, tc.mapped/mib, float64(got)/mib, float64(tc.want)/mib)
		}
	}
}
