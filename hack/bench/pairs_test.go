package main

import (
	"flag"
	"slices"
	"strings"
	"testing"
)

// TestPairOrder: odd pairs run the smaller values first, even pairs the larger.
func TestPairOrder(t *testing.T) {
	for i, want := range map[int][2]int{1: {16, 4096}, 2: {4096, 16}, 3: {16, 4096}, 4: {4096, 16}} {
		if got := pairOrder(i); got != want {
			t.Errorf("pairOrder(%d) = %v, want %v", i, got, want)
		}
	}
}

// TestPairArgs: a run gets the flags the pairs were given, but the ones the pairs set.
func TestPairArgs(t *testing.T) {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	var c config
	var pairs int
	fs.StringVar(&c.repo, "repo", ".", "")
	fs.IntVar(&c.objects, "objects", 10000, "")
	fs.IntVar(&c.versions, "versions", 2000, "")
	fs.IntVar(&c.valueSize, "value-size", 16, "")
	fs.StringVar(&c.scenarios, "scenarios", "S1,S2", "")
	fs.StringVar(&c.jsonPath, "json", "a.json", "")
	fs.StringVar(&c.markdown, "out", "a.md", "")
	fs.StringVar(&c.controllerArgs, "controller-args", "", "")
	fs.IntVar(&pairs, "value-pairs", 0, "")
	if err := fs.Parse([]string{"--repo=/r", "--objects=500", "--value-size=99", "--scenarios=S4", "--json=docs/x.json",
		"--out=docs/x.md", "--value-pairs=4", "--controller-args=--workers 4"}); err != nil {
		t.Fatal(err)
	}
	got := pairArgs(fs, 4096, "/tmp/p.json", "/tmp/p.md")
	want := []string{"--controller-args=--workers 4", "--objects=500", "--repo=/r",
		"--scenarios=S1,S3", "--baseline=false", "--value-size=4096", "--json=/tmp/p.json", "--out=/tmp/p.md"}
	if !slices.Equal(got, want) {
		t.Errorf("pairArgs = %q\nwant %q", got, want)
	}
}

// pairRunOf is a run whose S1 ended at s1 KiB and S3 at s3 KiB, with exact calls and writes.
func pairRunOf(pair, size int, s1, s3 int64) pairRun {
	return pairRun{Pair: pair, ValueSize: size,
		S1: scenario{Name: "S1 cold start", RSSKiB: s1, PeakRSSKiB: s1, WantAWSCalls: 20, AWSCallsMetrics: 20, AWSCallsKumo: 20,
			Writes: map[string]float64{"secrets.create": 100, "awssecrets.status": 100, "events.create": 37}},
		S3: scenario{Name: "S3 restart", RSSKiB: s3, PeakRSSKiB: s3},
	}
}

// TestPairTargets: the gap is read on the means of all pairs, not pair by pair, and the report
// says whether each target is met.
func TestPairTargets(t *testing.T) {
	r := pairsReport{Sizes: pairSizes, Parameters: map[string]any{"objects": float64(100)}, Runs: []pairRun{
		// S1: +12 % in pair 1, +6 % in pair 2: +9 % on the means (109,000 against 100,000).
		pairRunOf(1, 16, 100000, 90000), pairRunOf(1, 4096, 112000, 90000),
		pairRunOf(2, 4096, 106000, 99000), pairRunOf(2, 16, 100000, 90000),
	}}
	st := pairMeans(r)
	if st.S1 != [2]float64{100000, 109000} || st.Runs != [2]int{2, 2} {
		t.Fatalf("means = %+v", st)
	}
	if d := st.S1Gap - 0.09; d > 1e-9 || d < -1e-9 {
		t.Errorf("S1 gap = %v, want 0.09", st.S1Gap)
	}
	if d := st.S3Gap - 0.05; d > 1e-9 || d < -1e-9 {
		t.Errorf("S3 gap = %v, want 0.05", st.S3Gap)
	}
	md := pairsMarkdown(r)
	for _, want := range []string{
		"| 1 | 16 B, 4 KiB | 97.7 / 109.4 | +12.0 % |",
		"| 2 | 4 KiB, 16 B | 97.7 / 103.5 | +6.0 % |",
		"| S1: RSS with 4 KiB values within 10 % of RSS with 16 B values, on the means | +9.0 % (106.4 against 97.7 MiB) | yes |",
		"| S3: RSS with 4 KiB values within 10 % of RSS with 16 B values, on the means | +5.0 % (92.3 against 87.9 MiB) | yes |",
		"| every run: AWS calls exact (S1 one per version, S3 none), S1 one create and one status per AWSSecret, S3 no write | all 4 runs | yes |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("the report lacks %q:\n%s", want, md)
		}
	}

	// Over the target on the means: missed.
	r.Runs[2].S1.RSSKiB = 110000
	if md := pairsMarkdown(r); !strings.Contains(md, "| +11.0 % (108.4 against 97.7 MiB) | **no** |") {
		t.Errorf("a gap of 11 %% on the means is not marked missed:\n%s", md)
	}
}

// TestPairRunsExact: one run with a call too many, a write too many or a missing write fails it.
func TestPairRunsExact(t *testing.T) {
	for name, spoil := range map[string]func(*pairRun){
		"S1 call too many":  func(r *pairRun) { r.S1.AWSCallsMetrics, r.S1.AWSCallsKumo = 21, 21 },
		"S3 call":           func(r *pairRun) { r.S3.AWSCallsMetrics, r.S3.AWSCallsKumo = 1, 1 },
		"S3 write":          func(r *pairRun) { r.S3.Writes = map[string]float64{"secrets.update": 1} },
		"S1 Secret missing": func(r *pairRun) { r.S1.Writes["secrets.create"] = 99 },
	} {
		t.Run(name, func(t *testing.T) {
			r := pairsReport{Sizes: pairSizes, Parameters: map[string]any{"objects": float64(100)}, Runs: []pairRun{
				pairRunOf(1, 16, 1, 1), pairRunOf(1, 4096, 1, 1)}}
			if _, ok := pairRunsExact(r); !ok {
				t.Fatal("exact runs are not exact")
			}
			spoil(&r.Runs[1])
			if measured, ok := pairRunsExact(r); ok || measured != "not in pair 1, 4096 B" {
				t.Errorf("pairRunsExact = %q, %v; want pair 1, 4096 B named", measured, ok)
			}
		})
	}
}
