// Package workflows checks the GitHub workflows and the composite action against the
// supply-chain rules actionlint (run by `make lint-workflows`) does not check: every action pinned
// by a full commit, no expression inside a script, and permissions granted per job only.
package workflows

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	yaml "go.yaml.in/yaml/v3"
)

type step struct {
	Uses string `yaml:"uses"`
	Run  string `yaml:"run"`
}

type workflow struct {
	Permissions any `yaml:"permissions"`
	Jobs        map[string]struct {
		Permissions any    `yaml:"permissions"`
		Steps       []step `yaml:"steps"`
	} `yaml:"jobs"`
	Runs struct {
		Steps []step `yaml:"steps"`
	} `yaml:"runs"`
}

var pinned = regexp.MustCompile(`^[\w.-]+/[\w./-]+@[0-9a-f]{40}$`)

func TestWorkflowsFollowTheSupplyChainRules(t *testing.T) {
	files, _ := filepath.Glob("../../.github/workflows/*.yml")
	actions, _ := filepath.Glob("../../actions/*/action.yml")
	if len(files) == 0 || len(actions) == 0 {
		t.Fatalf("workflows %v, actions %v: want some of each", files, actions)
	}
	for _, f := range append(files, actions...) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var w workflow
		if err := yaml.Unmarshal(b, &w); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		steps := w.Runs.Steps
		if strings.Contains(f, "workflows") {
			if p, ok := w.Permissions.(map[string]any); !ok || len(p) != 0 {
				t.Errorf("%s: top-level permissions %v, want {} (each job asks for its own)", f, w.Permissions)
			}
		}
		for name, j := range w.Jobs {
			if j.Permissions == nil {
				t.Errorf("%s: job %s has no permissions of its own", f, name)
			}
			steps = append(steps, j.Steps...)
		}
		for _, s := range steps {
			if s.Uses != "" && !strings.HasPrefix(s.Uses, "./") && !pinned.MatchString(s.Uses) {
				t.Errorf("%s: %s is not pinned by a full commit", f, s.Uses)
			}
			if strings.Contains(s.Run, "${{") {
				t.Errorf("%s: a script holds an expression (pass it through env:): %q", f, s.Run)
			}
		}
	}
}
