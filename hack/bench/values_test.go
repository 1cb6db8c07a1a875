package main

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestRandomValueHasExactLength(t *testing.T) {
	for _, n := range []int{0, 1, 2, 3, 4, 5, 6, 7, 15, 16, 17, 255, 256, 1000, 1023, 1024, 4096, 16384, maxValueSize} {
		v := randomValue(n)
		if len(v) != n {
			t.Errorf("randomValue(%d) has %d bytes", n, len(v))
		}
		if i := strings.IndexFunc(v, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_')
		}); i >= 0 {
			t.Errorf("randomValue(%d): byte %d is not base64url", n, i)
		}
	}
}

func TestRandomValuesAreDistinct(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		v := randomValue(16)
		if seen[v] {
			t.Fatal("randomValue(16) returned the same value twice")
		}
		seen[v] = true
	}
	// Not a repeated pattern: a large value's halves differ, and it uses most of the alphabet.
	v := randomValue(16 << 10)
	if v[:8<<10] == v[8<<10:] {
		t.Error("randomValue(16 KiB) repeats itself")
	}
	chars := map[rune]bool{}
	for _, r := range v {
		chars[r] = true
	}
	if len(chars) < 60 {
		t.Errorf("randomValue(16 KiB) uses %d distinct characters, want nearly 64", len(chars))
	}
}

// mixClass is the class of a --value-mix size.
func mixClass(t *testing.T, k int) string {
	t.Helper()
	switch n := mixSize(k); {
	case n == mixBundle:
		return "bundle"
	case n == mixCertificate:
		return "certificate"
	case n >= mixSmallMin && n <= mixSmallMax:
		return "small"
	default:
		t.Fatalf("mixSize(%d) = %d: in no class", k, n)
		return ""
	}
}

func TestValueMixProportions(t *testing.T) {
	counts := map[string]int{}
	smallSizes := map[int]bool{}
	for k := range 1000 {
		c := mixClass(t, k)
		counts[c]++
		if c == "small" {
			smallSizes[mixSize(k)] = true
		}
	}
	if want := map[string]int{"small": 800, "certificate": 150, "bundle": 50}; counts["small"] != want["small"] || counts["certificate"] != want["certificate"] || counts["bundle"] != want["bundle"] {
		t.Errorf("classes over versions 0-999: %v, want %v", counts, want)
	}
	if len(smallSizes) < 400 {
		t.Errorf("small values take only %d distinct sizes over 800 versions", len(smallSizes))
	}
	// Any 1000 consecutive versions hold the split to within one block of 20.
	counts = map[string]int{}
	for k := 7; k < 1007; k++ {
		counts[mixClass(t, k)]++
	}
	if counts["bundle"] < 49 || counts["bundle"] > 51 || counts["certificate"] < 147 || counts["certificate"] > 153 {
		t.Errorf("classes over versions 7-1006: %v", counts)
	}
	// The classes do not line up with the namespaces: with 20 namespaces and K=2000 (the
	// defaults), namespace n holds the AWSSecrets pinning versions n, n+20, ...; each gets a mix.
	for n := range 20 {
		classes := map[string]int{}
		for k := n; k < 2000; k += 20 {
			classes[mixClass(t, k)]++
		}
		if len(classes) < 2 {
			t.Errorf("namespace %d pins only %v", n, classes)
		}
	}
}

func TestCheckValueFlags(t *testing.T) {
	for _, c := range []struct {
		size int
		mix  bool
		ok   bool
	}{
		{defaultValueSize, false, true},
		{4096, false, true},
		{0, false, true},
		{defaultValueSize, true, true},
		{4096, true, false},
		{-1, false, false},
		{maxValueSize + 1, false, false},
	} {
		if err := checkValueFlags(c.size, c.mix); (err == nil) != c.ok {
			t.Errorf("checkValueFlags(%d, %v) = %v", c.size, c.mix, err)
		}
	}
}

func TestSecretStringShape(t *testing.T) {
	for _, cfg := range []config{{valueSize: 300}, {valueSize: defaultValueSize, valueMix: true}} {
		b := &bench{cfg: cfg}
		for _, k := range []int{0, 1, 19, 1234} {
			value, dataBytes := b.secretString(k)
			var m map[string]string
			if err := json.Unmarshal([]byte(value), &m); err != nil {
				t.Fatalf("version %d: not a JSON object of strings: %v", k, err)
			}
			want := cfg.valueSize
			if cfg.valueMix {
				want = mixSize(k)
			}
			if len(m) != 2 || len(m["password"]) != want || m["username"] == "" {
				t.Errorf("version %d: keys %d, username %q, password of %d bytes (want %d)", k, len(m), m["username"], len(m["password"]), want)
			}
			if dataBytes != len(m["username"])+len(m["password"]) {
				t.Errorf("version %d: dataBytes %d, want %d", k, dataBytes, len(m["username"])+len(m["password"]))
			}
		}
	}
}

func TestValueBytesPerObject(t *testing.T) {
	// AWSSecret i pins version i mod K: 5 objects over 2 versions pin 0, 1, 0, 1, 0.
	b := &bench{cfg: config{objects: 5}, valueBytes: []int{100, 200}}
	if got := b.valueBytesPerObject(); got != 140 {
		t.Errorf("valueBytesPerObject = %v, want 140", got)
	}
}

func TestMarkdownWithoutBaseline(t *testing.T) {
	r := report{
		Parameters: map[string]any{"baseline": false, "valueMix": valueMixText},
		Scenarios: []scenario{{Name: "S1 cold start", Seconds: 30, RSSKiB: 102400, PeakRSSKiB: 120000, HeapInuseMiB: 50,
			ValueBytesPerObject: 1950, RSSKiBPerObject: 10.24, HeapKiBPerObject: 5.12}},
	}
	md := markdown(r)
	for _, want := range []string{
		"| S1: within 1.5x of the plain client-go loop | not measured (--baseline=false) | n/a |",
		"| S1 cold start | 1950 | 10.24 | 5.12 |",
		`valueMix=80% of versions 256 B-1 KiB, 15% a 4 KiB "certificate", 5% a 16 KiB "bundle"`,
		"RSS MiB (peak)",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	if strings.Contains(md, "Inf") || strings.Contains(md, "NaN") {
		t.Errorf("markdown has a division by zero:\n%s", md)
	}
}

// TestMemoryTargets: the report holds each S scenario's peak to what internal/capacity bounds it
// by (GOMEMLIMIT plus the binary when the controller ran with one, the formula's container limit
// otherwise), and at 100,000 AWSSecrets or more its RSS per AWSSecret, at the end and at the
// peak, to 4 KiB, saying no when they are missed.
func TestMemoryTargets(t *testing.T) {
	r := report{
		Parameters: map[string]any{"objects": 100000},
		Scenarios: []scenario{
			{Name: "S1 cold start", RSSKiB: 380 << 10, PeakRSSKiB: 420 << 10, GoMemLimitMiB: 340, RSSKiBPerObject: 3.89},
			{Name: "S3 restart", RSSKiB: 390000, PeakRSSKiB: 700 << 10, RSSKiBPerObject: 4.2},
			{Name: "S4 rollout", RSSKiB: 390000, PeakRSSKiB: 390 << 10, GoMemLimitMiB: 350, RSSKiBPerObject: 3.9},
		},
	}
	md := markdown(r)
	for _, want := range []string{
		"| S1: peak RSS within 1.1 × its GOMEMLIMIT (340 MiB) + the binary (44 MiB): 418.0 MiB | 420.0 MiB | **no** |",
		"| S1: RSS per AWSSecret <= 4 KiB once synced (at the scenario's end) | 3.89 KiB (peak while syncing: 4.30 KiB) | yes |",
		"| S3: peak RSS within internal/capacity's limit for 100000 AWSSecrets (no GOMEMLIMIT): 544.0 MiB | 700.0 MiB | **no** |",
		"| S3: RSS per AWSSecret <= 4 KiB once synced (at the scenario's end) | 4.20 KiB (peak while syncing: 7.17 KiB) | **no** |",
		"| S4: peak RSS within 1.1 × its GOMEMLIMIT (350 MiB) + the binary (44 MiB): 429.0 MiB | 390.0 MiB | yes |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("the report lacks %q", want)
		}
	}
	r.Parameters["objects"] = 10000
	if strings.Contains(markdown(r), "<= 4 KiB") {
		t.Error("the 4 KiB target is reported below 100,000 AWSSecrets")
	}
	// A smaller version cache bounds the limit lower.
	r.Parameters["controllerArgs"] = "--version-cache-bytes 1048576"
	if want := "(no GOMEMLIMIT): 160.0 MiB"; !strings.Contains(markdown(r), want) {
		t.Errorf("with a 1 MiB version cache at 10,000 AWSSecrets the report lacks %q", want)
	}
}
