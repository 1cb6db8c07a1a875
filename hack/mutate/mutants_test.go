package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
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
