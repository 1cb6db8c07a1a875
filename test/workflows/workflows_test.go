// Package workflows checks the GitHub workflows and the composite action against the
// supply-chain rules actionlint (run by `make lint-workflows`) does not check: every action pinned
// by a full commit, no expression inside a script, and permissions granted per job only.
package workflows

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	yaml "go.yaml.in/yaml/v3"
)

type step struct {
	Uses string            `yaml:"uses"`
	Run  string            `yaml:"run"`
	With map[string]string `yaml:"with"`
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

// readWorkflow reads and parses a workflow or an action's action.yml; it returns its bytes too.
func readWorkflow(t *testing.T, f string) (workflow, []byte) {
	t.Helper()
	b, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	var w workflow
	if err := yaml.Unmarshal(b, &w); err != nil {
		t.Fatalf("%s: %v", f, err)
	}
	return w, b
}

var pinned = regexp.MustCompile(`^[\w.-]+/[\w./-]+@[0-9a-f]{40}$`)

func TestWorkflowsFollowTheSupplyChainRules(t *testing.T) {
	files, _ := filepath.Glob("../../.github/workflows/*.yml")
	actions, _ := filepath.Glob("../../actions/*/action.yml")
	if len(files) == 0 || len(actions) == 0 {
		t.Fatalf("workflows %v, actions %v: want some of each", files, actions)
	}
	for _, f := range append(files, actions...) {
		w, b := readWorkflow(t, f)
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
			if s.Uses != "" && !strings.HasPrefix(s.Uses, "./") && !regexp.MustCompile(`(?m)uses: `+regexp.QuoteMeta(s.Uses)+` # v\d+\.\d+\.\d+$`).Match(b) {
				t.Errorf("%s: %s has no `# vX.Y.Z` comment naming the release it pins", f, s.Uses)
			}
			if strings.Contains(s.Run, "${{") {
				t.Errorf("%s: a script holds an expression (pass it through env:): %q", f, s.Run)
			}
		}
	}
}

// TestReleaseSignsWhatItShips: the release workflow signs each artifact it publishes after
// publishing it (the image and the chart by digest, the bump tool's SHA256SUMS as a blob), and
// attests provenance for each and an SBOM for the image and the bump tool. What these steps do
// on GitHub (OIDC, Fulcio, Rekor, the registry) cannot run here; `make image-push` and
// `make chart-push` writing the digests they sign are tested in hack/tools/image, `make sbom` by
// TestSBOMListsTheBinarysModules.
func TestReleaseSignsWhatItShips(t *testing.T) {
	w, _ := readWorkflow(t, "../../.github/workflows/release.yml")
	job, ok := w.Jobs["release"]
	if !ok {
		t.Fatal("no release job")
	}
	if p, _ := job.Permissions.(map[string]any); p["id-token"] != "write" || p["attestations"] != "write" {
		t.Errorf("release job permissions %v: want id-token: write and attestations: write", job.Permissions)
	}
	// index of the first step at or after from that matches, or -1.
	find := func(from int, match func(step) bool) int {
		for i := from; i >= 0 && i < len(job.Steps); i++ {
			if match(job.Steps[i]) {
				return i
			}
		}
		return -1
	}
	runs := func(sub string) func(step) bool {
		return func(s step) bool { return strings.Contains(s.Run, sub) }
	}
	attests := func(action, subject string) func(step) bool {
		return func(s step) bool {
			return strings.HasPrefix(s.Uses, "actions/"+action+"@") &&
				(s.With["subject-name"] == subject || s.With["subject-checksums"] == subject)
		}
	}
	for _, a := range []struct {
		what, push, sign string
		attest           []string
		subject          string
	}{
		{"image", "make image-push", `cosign sign --yes "$IMAGE@$DIGEST"`, []string{"attest-build-provenance", "attest-sbom"}, "${{ env.IMAGE }}"},
		{"chart", "make chart-push", `cosign sign --yes "$CHART@$DIGEST"`, []string{"attest-build-provenance"}, "${{ env.CHART }}"},
		{"bump tool", "make bump-binaries", "cosign sign-blob --yes --bundle bin/release/SHA256SUMS.sigstore.json bin/release/SHA256SUMS", []string{"attest-build-provenance", "attest-sbom"}, "bin/release/SHA256SUMS"},
	} {
		pushed := find(0, runs(a.push))
		if pushed < 0 {
			t.Errorf("%s: no step runs %q", a.what, a.push)
			continue
		}
		if find(pushed+1, runs(a.sign)) < 0 {
			t.Errorf("%s: no step after %q runs %s", a.what, a.push, a.sign)
		}
		for _, action := range a.attest {
			if find(pushed+1, attests(action, a.subject)) < 0 {
				t.Errorf("%s: no actions/%s step for %s after %q", a.what, action, a.subject, a.push)
			}
		}
	}
	if find(0, func(s step) bool { return strings.HasPrefix(s.Uses, "sigstore/cosign-installer@") }) < 0 {
		t.Error("cosign is never installed")
	}
}

// TestWorkflowsSetUpTheNewestGo: a job that builds the project's modules sets up Go from the
// go.mod whose `go` line is the newest of them all (the controller's and every tool's under
// hack/tools), so that none of them needs a toolchain the runner does not have.
func TestWorkflowsSetUpTheNewestGo(t *testing.T) {
	mods, _ := filepath.Glob("../../hack/tools/*/go.mod")
	mods = append(mods, "../../go.mod")
	goLine := regexp.MustCompile(`(?m)^go (\d+)\.(\d+)(?:\.(\d+))?$`)
	version := func(f string) [3]int {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		m := goLine.FindSubmatch(b)
		if m == nil {
			t.Fatalf("%s has no go line", f)
		}
		var v [3]int
		for i := range v {
			v[i], _ = strconv.Atoi(string(m[i+1]))
		}
		return v
	}
	var newest [3]int
	for _, f := range mods {
		if v := version(f); slices.Compare(v[:], newest[:]) > 0 {
			newest = v
		}
	}
	files, _ := filepath.Glob("../../.github/workflows/*.yml")
	found := 0
	for _, f := range files {
		w, _ := readWorkflow(t, f)
		for name, j := range w.Jobs {
			for _, s := range j.Steps {
				if !strings.HasPrefix(s.Uses, "actions/setup-go@") {
					continue
				}
				found++
				file := s.With["go-version-file"]
				if file == "" {
					t.Errorf("%s: job %s sets up Go without go-version-file", f, name)
					continue
				}
				if v := version(filepath.Join("../..", file)); v != newest {
					t.Errorf("%s: job %s sets up Go %d.%d.%d from %s; the newest go line of the project's modules is %d.%d.%d",
						f, name, v[0], v[1], v[2], file, newest[0], newest[1], newest[2])
				}
			}
		}
	}
	if found == 0 {
		t.Fatal("no workflow sets up Go")
	}
}
