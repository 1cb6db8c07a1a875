package capacity

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// run is what a committed benchmark report says: its parameters and each scenario's memory.
type run struct {
	Parameters struct {
		Objects        int    `json:"objects"`
		ControllerArgs string `json:"controllerArgs"`
	} `json:"parameters"`
	Scenarios []scenario `json:"scenarios"`
	// Runs are the runs of a --value-pairs report, each its S1 and S3.
	Runs []struct {
		S1 scenario `json:"s1"`
		S3 scenario `json:"s3"`
	} `json:"runs"`
	Noisy *struct {
		Objects int `json:"objects"`
	} `json:"noisyNeighbour"`
	Hostile *struct {
		Objects int `json:"objects"`
	} `json:"hostileTenant"`
}

type scenario struct {
	Name          string  `json:"name"`
	PeakRSSKiB    int64   `json:"peakRssKiB"`
	GoMemLimitMiB int64   `json:"goMemLimitMiB"`
	HeapLiveMiB   float64 `json:"heapLiveMiB"`
}

// GCRoom is the share of GOMEMLIMIT the formula leaves above every live heap measured: room for
// the garbage between two collections, so that the GC does not run without pause near the limit.
const GCRoom = 0.10

// TestEveryBenchmarkIsWithinTheFormula: every committed benchmark report (docs/benchmarks*.json)
// stays within the formula for its number of AWSSecrets and version cache:
//   - a controller run with a GOMEMLIMIT peaked within PeakWithGoMemLimit of it;
//   - one run without peaked within the container limit the formula gives;
//   - the formula's GOMEMLIMIT leaves at least GCRoom above every live heap measured.
func TestEveryBenchmarkIsWithinTheFormula(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "..", "docs", "benchmarks*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no docs/benchmarks*.json (%v)", err)
	}
	checked, limited := 0, 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var r run
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		cache := CacheBytesInArgs(r.Parameters.ControllerArgs)
		scenarios := r.Scenarios
		for _, pair := range r.Runs {
			scenarios = append(scenarios, pair.S1, pair.S3)
		}
		for _, s := range scenarios {
			objects := r.Parameters.Objects
			switch {
			case s.Name[:2] == "N1" && r.Noisy != nil:
				objects = r.Noisy.Objects + 1 // and the quiet namespace's
			case s.Name[:2] == "H1" && r.Hostile != nil:
				objects = r.Hostile.Objects + 1
			}
			where := fmt.Sprintf("%s: %s at %d AWSSecrets", filepath.Base(f), s.Name, objects)
			peak := float64(s.PeakRSSKiB) / 1024
			if s.GoMemLimitMiB > 0 {
				if bound := PeakWithGoMemLimit(float64(s.GoMemLimitMiB)); peak > bound {
					t.Errorf("%s: peak RSS %.1f MiB is above PeakWithGoMemLimit(%d MiB) = %.1f MiB", where, peak, s.GoMemLimitMiB, bound)
				}
				limited++
			} else if limit := ResourcesFor(objects, cache).LimitMiB; peak > float64(limit) {
				t.Errorf("%s (no GOMEMLIMIT): peak RSS %.1f MiB is above the formula's limit %d MiB", where, peak, limit)
			}
			if room := GoMemLimitMiB(objects, cache) * (1 - GCRoom); s.HeapLiveMiB > room {
				t.Errorf("%s: live heap %.1f MiB leaves the formula's GOMEMLIMIT %.1f MiB less than %.0f%% for the GC", where, s.HeapLiveMiB, GoMemLimitMiB(objects, cache), 100*GCRoom)
			}
			checked++
		}
	}
	if checked == 0 || limited == 0 {
		t.Fatalf("docs/benchmarks*.json: %d scenarios with a peak RSS, %d of them run with a GOMEMLIMIT; want some of each", checked, limited)
	}
}

// TestFor: the resources follow the formula, in the steps the manifests use: GOMEMLIMIT the
// formula's, below the request, which covers the peak; the limit the peak with Headroom. The
// objects a limit serves are the ones For sizes it for.
func TestFor(t *testing.T) {
	for _, n := range []int{0, 1000, DefaultObjects, 50000, 100000} {
		r := For(n)
		peak, gml := PeakMiB(n, 0), GoMemLimitMiB(n, 0)
		if float64(r.GoMemLimitMiB) < gml || float64(r.GoMemLimitMiB) >= gml+1 || r.GoMemLimitMiB >= r.RequestMiB {
			t.Errorf("For(%d).GoMemLimitMiB = %d, want %.1f rounded up, below the request %d", n, r.GoMemLimitMiB, gml, r.RequestMiB)
		}
		if float64(r.RequestMiB) < peak || float64(r.RequestMiB) >= peak+16 {
			t.Errorf("For(%d).RequestMiB = %d, want the peak %.1f rounded up to 16", n, r.RequestMiB, peak)
		}
		if float64(r.LimitMiB) < peak*Headroom || r.LimitMiB%32 != 0 {
			t.Errorf("For(%d).LimitMiB = %d, want the peak × %.2f rounded up to 32", n, r.LimitMiB, Headroom)
		}
		if got := Objects(r.LimitMiB); got < n {
			t.Errorf("Objects(%d) = %d, want at least %d", r.LimitMiB, got, n)
		}
		// And no more than the limit serves: the objects Objects names need no larger limit.
		if got := Objects(r.LimitMiB); For(got).LimitMiB > r.LimitMiB || PeakMiB(got, 0)*Headroom > float64(r.LimitMiB) {
			t.Errorf("Objects(%d) = %d, but For(%d).LimitMiB = %d (peak × %.2f = %.1f MiB)", r.LimitMiB, got, got, For(got).LimitMiB, Headroom, PeakMiB(got, 0)*Headroom)
		}
	}
	if perObject := ResidentMiB(100000, 0) * 1024 / 100000; perObject > 4 {
		t.Errorf("the formula lets a synced controller hold %.2f KiB per AWSSecret at 100,000, more than the 4 KiB target", perObject)
	}
}

// TestCapacityTable: the capacity tables of README.md and docs/operations.md give, for the shipped
// default and for 50,000 and 100,000 AWSSecrets, the settings For computes, and name how many
// AWSSecrets the shipped limit serves.
func TestCapacityTable(t *testing.T) {
	for _, page := range []string{"README.md", filepath.Join("docs", "operations.md")} {
		t.Run(page, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("..", "..", page))
			if err != nil {
				t.Fatal(err)
			}
			text := string(b)
			for _, n := range []int{DefaultObjects, 50000, 100000} {
				r := For(n)
				row := regexp.MustCompile(`(?m)^\| ` + regexp.QuoteMeta(thousands(n)) + `\b[^|]*\| ([^|]+) \| ([^|]+) \| ([^|]+) \|$`).FindStringSubmatch(text)
				if row == nil {
					t.Errorf("%s: no capacity table row for %s AWSSecrets", page, thousands(n))
					continue
				}
				want := []string{fmt.Sprintf("%dMi", r.RequestMiB), fmt.Sprintf("%dMi", r.LimitMiB), fmt.Sprintf("%dMiB", r.GoMemLimitMiB)}
				for i, w := range want {
					if got := strings.Trim(strings.TrimSpace(row[i+1]), "`"); got != w {
						t.Errorf("%s: %s AWSSecrets: column %d is %q, want %q (internal/capacity)", page, thousands(n), i+2, got, w)
					}
				}
			}
			served := thousands(Objects(For(DefaultObjects).LimitMiB) / 1000 * 1000)
			if !strings.Contains(strings.Join(strings.Fields(text), " "), "serves about "+served+" AWSSecrets") {
				t.Errorf("%s does not say the shipped limit serves about %s AWSSecrets", page, served)
			}
		})
	}
}

// thousands writes n with commas: 100000 is 100,000.
func thousands(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
