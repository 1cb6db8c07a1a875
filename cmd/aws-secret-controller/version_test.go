package main

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestVersionFlag builds the binary with the link-time stamp `make build` gives it and runs it
// with --version: it prints the stamp and exits 0.
func TestVersionFlag(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "aws-secret-controller")
	build := exec.Command("go", "build", "-o", bin, "-ldflags", "-X main.version=v1.2.3 -X main.commit=0123abcd", ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		t.Fatalf("--version: %v", err)
	}
	if want := "aws-secret-controller v1.2.3 (commit 0123abcd, " + runtime.Version(); !strings.HasPrefix(string(out), want) {
		t.Errorf("--version printed %q, want it to start with %q", out, want)
	}
}

// TestVersionUnstamped: a binary built without the stamp (this test's) says it is a dev build.
// Its commit may come from the go command's VCS stamp, so only the version is certain.
func TestVersionUnstamped(t *testing.T) {
	if got, want := versionString(), "aws-secret-controller dev (commit "; !strings.HasPrefix(got, want) {
		t.Errorf("versionString() = %q, want it to start with %q", got, want)
	}
}
