// Command faults runs aws-secret-controller on the real local stack (kube-apiserver, etcd, kumo)
// while its dependencies fail, one scenario per fresh stack, and writes what it measured:
// recovery time, AWS calls, Kubernetes writes, restarts and errors, and whether anything was
// lost. `make faults` runs it; docs/reliability.md is its report.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/mumoshu/aws-secret-controller/hack/internal/drive"
	"github.com/mumoshu/aws-secret-controller/pkg/testenv"
)

type config struct {
	repo, binDir, workDir string
	objects               int
	namespaces            int
	versions              int
	workers               int
	outage                time.Duration
	fraction              float64
	delay                 time.Duration
	grace                 time.Duration
	timeout               time.Duration
	leaseDuration         time.Duration
	renewDeadline         time.Duration
	retryPeriod           time.Duration
	controllerArgs        string
	scenarios             string
	markdown, jsonPath    string
	keep                  bool
	render                bool
}

// effectiveLease is the leader election's Lease duration and retry period the processes run
// with: the flags', or the controller's defaults.
func (c config) effectiveLease() (lease, retry time.Duration) {
	if c.leaseDuration > 0 {
		return c.leaseDuration, c.retryPeriod
	}
	return 15 * time.Second, 2 * time.Second
}

func (c *config) flags(fs *flag.FlagSet) {
	fs.StringVar(&c.repo, "repo", ".", "The repository: bin/ and the CRD are found there.")
	fs.IntVar(&c.objects, "objects", 1000, "AWSSecrets in each scenario.")
	fs.IntVar(&c.namespaces, "namespaces", 10, "Namespaces the AWSSecrets are spread over.")
	fs.IntVar(&c.versions, "versions", 200, "Distinct Secrets Manager secrets the AWSSecrets pin (AWSSecret i pins secret i mod versions).")
	fs.IntVar(&c.workers, "workers", 16, "Controller workers (--workers).")
	fs.DurationVar(&c.outage, "outage", 60*time.Second, "Scenario 2: how long Secrets Manager refuses connections.")
	fs.Float64Var(&c.fraction, "fraction", 0.5, "Scenario 3: the fraction of requests throttled, failed or reset.")
	fs.DurationVar(&c.delay, "delay", 2*time.Second, "Scenario 4: the delay of every request to Secrets Manager.")
	fs.DurationVar(&c.grace, "grace", 30*time.Second, "Scenario 5: the grace period the exit must fit in (the Deployment's terminationGracePeriodSeconds).")
	fs.DurationVar(&c.timeout, "timeout", 10*time.Minute, "How long a scenario may take to converge.")
	fs.DurationVar(&c.leaseDuration, "lease-duration", 0, "Leader election Lease duration for the controller; 0 keeps its default (15s, renew deadline 10s, retry 2s).")
	fs.DurationVar(&c.renewDeadline, "renew-deadline", 0, "Leader election renew deadline, with --lease-duration.")
	fs.DurationVar(&c.retryPeriod, "retry-period", 0, "Leader election retry period, with --lease-duration.")
	fs.StringVar(&c.controllerArgs, "controller-args", "", "Extra controller flags, space separated.")
	fs.StringVar(&c.scenarios, "scenarios", "0,1a,1b,2,3a,3b,3c,4,5,6,7", "Scenarios to run, in order.")
	fs.StringVar(&c.markdown, "out", "docs/reliability.md", "Markdown report; empty writes none.")
	fs.StringVar(&c.jsonPath, "json", "docs/reliability.json", "JSON report with every figure; empty writes none.")
	fs.StringVar(&c.workDir, "work-dir", "", "Where each scenario's stack keeps its data and logs; empty means a temporary folder.")
	fs.BoolVar(&c.keep, "keep", false, "Keep the work folder (logs, audit logs) after the run.")
	fs.BoolVar(&c.render, "render", false, "Run nothing: write the markdown report again from the JSON report (after a change to its wording).")
}

func main() {
	var c config
	c.flags(flag.CommandLine)
	flag.Parse()
	if c.render {
		if err := render(c); err != nil {
			fmt.Fprintln(os.Stderr, "faults:", err)
			os.Exit(1)
		}
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	r, err := run(ctx, c, drive.Command("faults", "FAULTSFLAGS"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "faults:", err)
		os.Exit(1)
	}
	if failed := r.failed(); len(failed) > 0 {
		fmt.Fprintln(os.Stderr, "faults: checks failed:\n  "+strings.Join(failed, "\n  "))
		os.Exit(1)
	}
}

// report is everything a run measured.
type report struct {
	Date       string         `json:"date"`
	Command    string         `json:"command"`
	Machine    string         `json:"machine"`
	Parameters map[string]any `json:"parameters"`
	LoadBefore string         `json:"loadAverageBefore"`
	LoadAfter  string         `json:"loadAverageAfter"`
	Results    []*result      `json:"results"`
}

func (r report) failed() []string {
	var out []string
	for _, res := range r.Results {
		out = append(out, res.failed()...)
	}
	return out
}

func run(ctx context.Context, c config, cmd string) (report, error) {
	repo, err := filepath.Abs(c.repo)
	if err != nil {
		return report{}, err
	}
	c.repo = repo
	if c.binDir == "" {
		c.binDir = os.Getenv(testenv.BinDirEnv)
	}
	if c.binDir == "" {
		c.binDir = filepath.Join(repo, "bin")
	}
	if c.workDir == "" {
		if c.workDir, err = os.MkdirTemp("", "aws-secret-controller-faults-"); err != nil {
			return report{}, err
		}
		if !c.keep {
			defer os.RemoveAll(c.workDir)
		}
	}
	r := report{
		Date:    time.Now().UTC().Format(time.RFC3339),
		Command: cmd,
		Machine: fmt.Sprintf("%d cores, %s, %s, %s memory", runtime.NumCPU(), runtime.GOOS+"/"+runtime.GOARCH, runtime.Version(), drive.MemTotal()),
		Parameters: map[string]any{"objects": c.objects, "namespaces": c.namespaces, "versions": c.versions, "workers": c.workers,
			"outage": c.outage.String(), "fraction": c.fraction, "delay": c.delay.String(), "grace": c.grace.String(), "scenarios": c.scenarios},
		LoadBefore: drive.LoadAverage(),
	}
	defs := map[string]scenarioDef{}
	for _, d := range scenarios(c) {
		defs[d.id] = d
	}
	for _, id := range strings.Split(c.scenarios, ",") {
		d, ok := defs[strings.TrimSpace(id)]
		if !ok {
			return r, fmt.Errorf("unknown scenario %q", id)
		}
		drive.Logf("scenario %s (%s): %s", d.id, d.name, d.fault)
		results, err := runScenario(ctx, c, d)
		if err != nil {
			return r, fmt.Errorf("scenario %s (%s): %w", d.id, d.name, err)
		}
		for _, res := range results {
			drive.Logf("%s %s: %.1f s; AWS attempts %d %v, answered %d, operations %d (%d ok); writes %v, conflicts %d; restarts %d; error lines %d; bad Secrets %d; %s",
				res.ID, res.Name, res.Seconds, res.Attempts, res.Outcomes, res.Answered, res.Operations, res.Succeeded, res.Writes, res.Conflicts, res.Restarts, res.ErrorLines, res.Bad, strings.Join(res.Notes, "; "))
			for _, f := range res.failed() {
				drive.Logf("FAILED %s", f)
			}
		}
		r.Results = append(r.Results, results...)
	}
	r.LoadAfter = drive.LoadAverage()
	return r, writeReports(c, r)
}

func runScenario(ctx context.Context, c config, d scenarioDef) ([]*result, error) {
	w, err := newWorld(ctx, c, "scenario-"+d.id)
	if err != nil {
		return nil, err
	}
	defer w.stop()
	if err := w.populate(ctx); err != nil {
		return nil, err
	}
	results, err := d.run(ctx, w)
	if err != nil {
		if _, _, _, logs := w.fleet.figures(); len(logs) > 0 {
			err = fmt.Errorf("%w\nlast lines of %s:\n%s", err, logs[len(logs)-1], lastLines(logs[len(logs)-1], 15))
		}
		return nil, err
	}
	for _, res := range results {
		if res.ID == "" {
			res.ID, res.Name = d.id, d.name
		}
		res.Fault = d.fault
	}
	return results, nil
}

func lastLines(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

func writeReports(c config, r report) error {
	if c.jsonPath != "" {
		j, err := json.MarshalIndent(r, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(abs(c.repo, c.jsonPath), append(j, '\n'), 0o644); err != nil {
			return err
		}
	}
	if c.markdown != "" {
		return os.WriteFile(abs(c.repo, c.markdown), []byte(markdown(r)), 0o644)
	}
	return nil
}

func abs(repo, p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(repo, p)
}

// render writes the markdown report from the JSON report.
func render(c config) error {
	b, err := os.ReadFile(abs(c.repo, c.jsonPath))
	if err != nil {
		return err
	}
	var r report
	if err := json.Unmarshal(b, &r); err != nil {
		return err
	}
	return os.WriteFile(abs(c.repo, c.markdown), []byte(markdown(r)), 0o644)
}
