package main

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestMutantsApply: every project mutant still applies to the tree (each edit's old text
// appears exactly once in its file), so a refactor that moves the code cannot quietly turn a
// mutant into nothing. Whether the named test kills it is make mutate's job.
func TestMutantsApply(t *testing.T) {
	seen := map[string]bool{}
	for _, m := range mutants {
		if seen[m.name] {
			t.Errorf("two mutants are named %q", m.name)
		}
		seen[m.name] = true
		data, err := os.ReadFile(filepath.Join("..", "..", m.file))
		if err != nil {
			t.Errorf("%s: %v", m.name, err)
			continue
		}
		for i, e := range m.edits {
			if n := strings.Count(string(data), e.old); n != 1 {
				t.Errorf("%s: edit %d's text appears %d times in %s, want once", m.name, i, n, m.file)
			}
		}
		if m.pkg == "" || m.test == "" {
			t.Errorf("%s names no test", m.name)
		}
	}
}

// TestReadRuns: an earlier run's gremlins lines are read back with every figure.
func TestReadRuns(t *testing.T) {
	log := filepath.Join(t.TempDir(), "log")
	text := "killed   the policy check removed (./pkg/controller -run TestTenancy, 7s)\n" +
		"gremlins ./pkg/tenancy: killed 13, lived 0, not covered 5, timed out 0, not viable 0 (15s) \n" +
		"gremlins ./pkg/bump: killed 83, lived 1, not covered 2, timed out 7, not viable 3 (7m2s) stopped after 20m0s\n"
	if err := os.WriteFile(log, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	runs, err := readRuns(log)
	if err != nil {
		t.Fatal(err)
	}
	want := []gremlinsRun{
		{pkg: "./pkg/tenancy", killed: 13, notCovered: 5, took: 15 * time.Second},
		{pkg: "./pkg/bump", killed: 83, lived: 1, notCovered: 2, timedOut: 7, notViable: 3, took: 7*time.Minute + 2*time.Second, err: "stopped after 20m0s"},
	}
	if len(runs) != len(want) {
		t.Fatalf("read %d runs, want %d", len(runs), len(want))
	}
	for i := range want {
		if !reflect.DeepEqual(runs[i], want[i]) {
			t.Errorf("run %d = %+v, want %+v", i, runs[i], want[i])
		}
	}
}
