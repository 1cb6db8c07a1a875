package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/mumoshu/aws-secret-controller/hack/internal/drive"
)

// --value-pairs compares two value sizes the way a single pair of runs cannot: RSS at the end of a
// cold start varies by a few MiB from one run to the next on the same controller and machine,
// as much as the difference being measured. It runs S1 and S3 at each size n times, alternating
// which size goes first, each run a fresh stack in a bench process of its own, and judges the
// means.

// pairSizes are the value sizes compared: the 16-byte values of the default benchmark, and a
// 4 KiB certificate.
var pairSizes = [2]int{defaultValueSize, 4096}

// pairGapTarget is how much more RSS the larger values may cost, on the means.
const pairGapTarget = 0.10

// pairRun is one run of a pair: one value size, its cold start and its restart.
type pairRun struct {
	Pair      int      `json:"pair"`
	ValueSize int      `json:"valueSize"`
	S1        scenario `json:"s1"`
	S3        scenario `json:"s3"`
}

// pairsReport is what --value-pairs measured.
type pairsReport struct {
	Date       string         `json:"date"`
	Command    string         `json:"command"`
	Machine    machine        `json:"machine"`
	Parameters map[string]any `json:"parameters"`
	Sizes      [2]int         `json:"valueSizes"`
	Runs       []pairRun      `json:"runs"`
	LoadBefore string         `json:"loadAverageBefore"`
	LoadAfter  string         `json:"loadAverageAfter"`
}

// pairOrder is the value sizes of pair i (from 1) in the order they run: the smaller first in odd
// pairs, the larger first in even ones, so that a machine that drifts during the runs weighs on
// both sizes alike.
func pairOrder(i int) [2]int {
	if i%2 == 1 {
		return pairSizes
	}
	return [2]int{pairSizes[1], pairSizes[0]}
}

// checkPairFlags refuses, with --value-pairs, the flags the pairs set themselves.
func checkPairFlags(fs *flag.FlagSet) error {
	var set []string
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "value-size", "value-mix", "scenarios", "baseline":
			set = append(set, "--"+f.Name)
		}
	})
	if len(set) > 0 {
		return fmt.Errorf("--value-pairs runs S1 and S3 with 16-byte and 4 KiB values, without the baseline: %s cannot be set with it", strings.Join(set, ", "))
	}
	return nil
}

// pairArgs are the flags of the bench process that makes one run: the flags this process was
// given, but those that the pairs decide, which they set.
func pairArgs(fs *flag.FlagSet, valueSize int, jsonPath, mdPath string) []string {
	var args []string
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "value-pairs", "value-size", "value-mix", "scenarios", "baseline", "json", "out", "markdown-from":
			return
		}
		args = append(args, "--"+f.Name+"="+f.Value.String())
	})
	return append(args, "--scenarios=S1,S3", "--baseline=false", fmt.Sprintf("--value-size=%d", valueSize),
		"--json="+jsonPath, "--out="+mdPath)
}

// runValuePairs makes the n pairs of runs and writes their report where --json and --out say.
func runValuePairs(ctx context.Context, c config, n int) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "bench-pairs-")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(dir) }()
	r := pairsReport{
		Date:       time.Now().UTC().Format(time.RFC3339),
		Command:    drive.Command("bench", "BENCHFLAGS"),
		Machine:    machine{Cores: runtime.NumCPU(), GoVersion: runtime.Version(), OS: runtime.GOOS + "/" + runtime.GOARCH, MemTotal: drive.MemTotal()},
		Sizes:      pairSizes,
		LoadBefore: drive.LoadAverage(),
	}
	for i := 1; i <= n; i++ {
		for _, size := range pairOrder(i) {
			base := filepath.Join(dir, fmt.Sprintf("pair-%d-%d", i, size))
			drive.Logf("pair %d of %d: %d-byte values", i, n, size)
			cmd := exec.CommandContext(ctx, self, pairArgs(flag.CommandLine, size, base+".json", base+".md")...)
			cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
			if err := cmd.Run(); err != nil {
				return fmt.Errorf("pair %d, %d-byte values: %w", i, size, err)
			}
			run, params, err := readPairRun(base+".json", i, size)
			if err != nil {
				return err
			}
			r.Runs = append(r.Runs, run)
			if r.Parameters == nil {
				r.Parameters = params
			}
		}
	}
	r.LoadAfter = drive.LoadAverage()
	return writePairsReport(c, r)
}

// readPairRun reads one run's report: its S1 and S3, and its parameters but the value size.
func readPairRun(path string, pair, size int) (pairRun, map[string]any, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return pairRun{}, nil, err
	}
	var rep report
	if err := json.Unmarshal(b, &rep); err != nil {
		return pairRun{}, nil, fmt.Errorf("%s: %w", path, err)
	}
	run := pairRun{Pair: pair, ValueSize: size}
	found := 0
	for _, s := range rep.Scenarios {
		switch {
		case strings.HasPrefix(s.Name, "S1 "):
			run.S1, found = s, found+1
		case strings.HasPrefix(s.Name, "S3 "):
			run.S3, found = s, found+1
		}
	}
	if found != 2 {
		return pairRun{}, nil, fmt.Errorf("%s: want S1 and S3, found %d of them", path, found)
	}
	delete(rep.Parameters, "valueSize")
	return run, rep.Parameters, nil
}

func writePairsReport(c config, r pairsReport) error {
	repo, err := filepath.Abs(c.repo)
	if err != nil {
		return err
	}
	return writeReportFiles(repo, c, r, pairsMarkdown(r))
}

// pairStats are the means of each size's runs, and the gaps between them.
type pairStats struct {
	// S1, S3: mean RSS at the scenario's end, KiB, of the smaller and the larger values.
	S1, S3 [2]float64
	// S1Gap, S3Gap: how much more the larger values cost, as a fraction of the smaller's.
	S1Gap, S3Gap float64
	// Runs per size.
	Runs [2]int
}

func pairMeans(r pairsReport) pairStats {
	var st pairStats
	for _, run := range r.Runs {
		k := 0
		if run.ValueSize == r.Sizes[1] {
			k = 1
		}
		st.S1[k] += float64(run.S1.RSSKiB)
		st.S3[k] += float64(run.S3.RSSKiB)
		st.Runs[k]++
	}
	for k := range st.Runs {
		if st.Runs[k] > 0 {
			st.S1[k] /= float64(st.Runs[k])
			st.S3[k] /= float64(st.Runs[k])
		}
	}
	if st.S1[0] > 0 {
		st.S1Gap = st.S1[1]/st.S1[0] - 1
	}
	if st.S3[0] > 0 {
		st.S3Gap = st.S3[1]/st.S3[0] - 1
	}
	return st
}

// pairRunsExact says whether every run made exactly the AWS calls it should (S1 one per
// version, S3 none; the emulator saw only the controller's attempts), S1 wrote each Secret and
// status once, and S3 wrote nothing.
func pairRunsExact(r pairsReport) (string, bool) {
	objects := objectsOf(report{Parameters: r.Parameters})
	var bad []string
	for _, run := range r.Runs {
		_, s1 := awsCallsMet(run.S1)
		_, s3 := awsCallsMet(run.S3)
		wrote := run.S1.Writes["secrets.create"] == float64(objects) && run.S1.Writes["awssecrets.status"] == float64(objects)
		if !s1 || !s3 || !wrote || writes(run.S3.Writes) != "0" {
			bad = append(bad, fmt.Sprintf("pair %d, %d B", run.Pair, run.ValueSize))
		}
	}
	if len(bad) > 0 {
		return "not in " + strings.Join(bad, ", "), false
	}
	return fmt.Sprintf("all %d runs", len(r.Runs)), true
}

func pairsMarkdown(r pairsReport) string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	small, large := sizeText(r.Sizes[0]), sizeText(r.Sizes[1])
	st := pairMeans(r)
	p("# Benchmarks: %s against %s values\n\n", small, large)
	p("Generated by `hack/bench` on %s. Regenerate with:\n\n```sh\n%s\n```\n\n", r.Date, r.Command)
	p("Everything runs on one machine: etcd, kube-apiserver, the kumo emulator, the controller and the\n")
	p("benchmark driver share its %d cores (%s, %s, %s memory). Load average before the runs: %s; after: %s.\n\n",
		r.Machine.Cores, r.Machine.OS, r.Machine.GoVersion, r.Machine.MemTotal, r.LoadBefore, r.LoadAfter)
	p("Parameters of every run: %s; values of %d and %d bytes.\n\n", params(r.Parameters), r.Sizes[0], r.Sizes[1])
	p("Each run is a fresh stack and controller: S1, a cold start, then S3, a restart. RSS is the\n")
	p("controller's `VmRSS` when the scenario ends, with its peak (`VmHWM`) in parentheses; live heap is\n")
	p("`go_gc_heap_live_bytes`. From one run to the next, on the same controller and machine, RSS at the\n")
	p("end of a cold start varies by a few MiB, as much as the difference measured: so the runs come in\n")
	p("pairs, the smaller values first in odd pairs and the larger first in even ones, and the targets\n")
	p("read the means over all pairs. [memory.md](memory.md) says what the difference is made of.\n\n")

	p("| pair | order | S1 RSS MiB, %s / %s | S1 gap | S1 live heap MiB | S3 RSS MiB (peak), %s / %s | S3 gap |\n", small, large, small, large)
	p("| --- | --- | --- | ---: | --- | --- | ---: |\n")
	for i := 0; i+1 < len(r.Runs); i += 2 {
		a, z := r.Runs[i], r.Runs[i+1]
		s, l := a, z
		if a.ValueSize == r.Sizes[1] {
			s, l = z, a
		}
		p("| %d | %s, %s | %.1f / %.1f | %s | %.1f / %.1f | %.1f (%.1f) / %.1f (%.1f) | %s |\n", a.Pair,
			sizeText(a.ValueSize), sizeText(z.ValueSize), mib(s.S1.RSSKiB), mib(l.S1.RSSKiB), gapText(float64(l.S1.RSSKiB)/float64(s.S1.RSSKiB)-1),
			s.S1.HeapLiveMiB, l.S1.HeapLiveMiB, mib(s.S3.RSSKiB), mib(s.S3.PeakRSSKiB), mib(l.S3.RSSKiB), mib(l.S3.PeakRSSKiB),
			gapText(float64(l.S3.RSSKiB)/float64(s.S3.RSSKiB)-1))
	}
	p("| mean | | %.1f / %.1f | %s | | %.1f / %.1f | %s |\n\n", st.S1[0]/1024, st.S1[1]/1024, gapText(st.S1Gap), st.S3[0]/1024, st.S3[1]/1024, gapText(st.S3Gap))

	p("| run | S1 seconds | S1 GetSecretValue (metrics / emulator / expected) | S1 writes | S3 seconds | S3 calls, writes |\n")
	p("| --- | ---: | --- | --- | ---: | --- |\n")
	for _, run := range r.Runs {
		p("| pair %d, %s | %.1f | %d / %d / %d | %s | %.1f | %d, %s |\n", run.Pair, sizeText(run.ValueSize), run.S1.Seconds,
			run.S1.AWSCallsMetrics, run.S1.AWSCallsKumo, run.S1.WantAWSCalls, writes(run.S1.Writes), run.S3.Seconds, run.S3.AWSCallsMetrics, writes(run.S3.Writes))
	}

	exact, exactOK := pairRunsExact(r)
	p("\n## Targets\n\n| target | measured | met |\n| --- | --- | --- |\n")
	p("| S1: RSS with %s values within %.0f %% of RSS with %s values, on the means | %s (%.1f against %.1f MiB) | %s |\n",
		large, pairGapTarget*100, small, gapText(st.S1Gap), st.S1[1]/1024, st.S1[0]/1024, yesNo(st.S1Gap <= pairGapTarget))
	p("| S3: RSS with %s values within %.0f %% of RSS with %s values, on the means | %s (%.1f against %.1f MiB) | %s |\n",
		large, pairGapTarget*100, small, gapText(st.S3Gap), st.S3[1]/1024, st.S3[0]/1024, yesNo(st.S3Gap <= pairGapTarget))
	p("| every run: AWS calls exact (S1 one per version, S3 none), S1 one create and one status per AWSSecret, S3 no write | %s | %s |\n",
		exact, yesNo(exactOK))
	return b.String()
}

// sizeText names a value size: 16 B, 4 KiB.
func sizeText(n int) string {
	if n >= 1024 && n%1024 == 0 {
		return fmt.Sprintf("%d KiB", n/1024)
	}
	return fmt.Sprintf("%d B", n)
}

// gapText writes a fraction as a signed percentage: +9.3 %.
func gapText(f float64) string {
	return fmt.Sprintf("%+.1f %%", f*100)
}
