// Package tools holds no code: its folders are the modules that pin the tools the tests, the
// benchmarks and the demo build into bin/. This test keeps the modules whose builds share
// packages on the same versions (see STATIC_BUILD in the Makefile).
package tools

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestSharedModulesHaveOneVersion: a package is compiled once for every build that asks for it
// with the same flags, at the same version, against dependencies compiled the same way. The
// Kubernetes modules the controller and kube-apiserver, kubectl, etcd and the node's binaries
// are built from, and those Helm and promtool are built from, then compile once in a cold
// `make test` instead of twice. A version that drifts (a dependency bump in one module only)
// costs minutes of every cold run and fails nothing else: it fails here.
func TestSharedModulesHaveOneVersion(t *testing.T) {
	for _, pair := range [][2]string{
		{"../../go.mod", "kube/go.mod"},
		{"helm/go.mod", "prometheus/go.mod"},
	} {
		a, b := modules(t, pair[0]), modules(t, pair[1])
		shared := 0
		for path, va := range a {
			vb, ok := b[path]
			if !ok {
				continue
			}
			shared++
			if va != vb && !exempt[path] {
				t.Errorf("%s requires %s %s, %s requires %s: raise the older to the newer (go get %s@...) so that both builds share its packages",
					pair[0], path, va, pair[1], vb, path)
			}
		}
		// Both pairs share Kubernetes' client modules and dozens more; a parse that found none
		// would pass vacuously.
		if shared < 20 {
			t.Errorf("%s and %s share %d modules; want the Kubernetes client modules among them at least", pair[0], pair[1], shared)
		}
	}
}

// exempt are modules the two builds of a pair do not both compile.
var exempt = map[string]bool{
	// The controller's module compiles it only into controller-gen (hack/update-codegen.sh),
	// with `go run`'s flags, which share nothing with the static builds.
	"k8s.io/apiextensions-apiserver": true,
}

// modules returns the version of every module a go.mod requires, after its replacements.
func modules(t *testing.T, gomod string) map[string]string {
	t.Helper()
	out, err := exec.Command("go", "mod", "edit", "-json", filepath.FromSlash(gomod)).Output()
	if err != nil {
		t.Fatalf("go mod edit -json %s: %v", gomod, err)
	}
	type module struct{ Path, Version string }
	var f struct {
		Require []module
		Replace []struct{ Old, New module }
	}
	if err := json.Unmarshal(out, &f); err != nil {
		t.Fatalf("%s: %v", gomod, err)
	}
	m := map[string]string{}
	for _, r := range f.Require {
		m[r.Path] = r.Version
	}
	for _, r := range f.Replace {
		if _, ok := m[r.Old.Path]; ok && r.New.Version != "" {
			m[r.Old.Path] = r.New.Version
		}
	}
	return m
}
