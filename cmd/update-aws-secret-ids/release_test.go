package main

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// buildRelease runs `make bump-binaries` for the host's platform into a temporary bin directory
// and returns its release directory and the binary's name.
func buildRelease(t *testing.T) (dir, name string) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the release binaries")
	}
	bin := t.TempDir()
	platform := runtime.GOOS + "/" + runtime.GOARCH
	if out, err := exec.Command("make", "-C", "../..", "bump-binaries", "BUMP_PLATFORMS="+platform, "BIN="+bin).CombinedOutput(); err != nil {
		t.Fatalf("make bump-binaries: %v\n%s", err, out)
	}
	name = "update-aws-secret-ids_" + runtime.GOOS + "_" + runtime.GOARCH
	if runtime.GOOS == "windows" {
		name += ".exe"
	}
	return filepath.Join(bin, "release"), name
}

// TestReleaseBinaries: `make bump-binaries` writes the binary under its platform's name and a
// SHA256SUMS line that matches it, and the binary runs.
func TestReleaseBinaries(t *testing.T) {
	dir, name := buildRelease(t)
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	sums, err := os.Open(filepath.Join(dir, "SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}
	defer sums.Close()
	var lines []string
	for sc := bufio.NewScanner(sums); sc.Scan(); {
		lines = append(lines, sc.Text())
	}
	if want := hex.EncodeToString(sum[:]) + "  " + name; len(lines) != 1 || lines[0] != want {
		t.Errorf("SHA256SUMS %q, want %q", lines, want)
	}
	out, _ := exec.Command(filepath.Join(dir, name), "-h").CombinedOutput()
	if !strings.Contains(string(out), "Usage: update-aws-secret-ids") {
		t.Errorf("%s -h printed %q", name, out)
	}
}

// TestTheActionInstallsAndRuns runs the composite action's script against a local copy of a
// release: it installs the runner's binary, checks it against SHA256SUMS, and runs it with the
// action's args; a binary that does not match SHA256SUMS is refused.
func TestTheActionInstallsAndRuns(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the script's runner names are tested on linux")
	}
	dir, name := buildRelease(t)
	releases := t.TempDir()
	if err := os.Symlink(dir, filepath.Join(releases, "v9.9.9")); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.FileServer(http.Dir(releases)))
	defer srv.Close()
	arch := map[string]string{"amd64": "X64", "arm64": "ARM64"}[runtime.GOARCH]
	work := t.TempDir() // no YAML: the tool runs, finds nothing, needs no AWS call
	run := func() (string, error) {
		cmd := exec.Command("../../actions/update-aws-secret-ids/run.sh")
		cmd.Env = append(os.Environ(), "RUNNER_OS=Linux", "RUNNER_ARCH="+arch, "AWS_REGION=us-east-1",
			"UPDATE_AWS_SECRET_IDS_VERSION=v9.9.9", "UPDATE_AWS_SECRET_IDS_BASE_URL="+srv.URL,
			"UPDATE_AWS_SECRET_IDS_ARGS=--check "+work)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := run(); err != nil {
		t.Fatalf("the action's script: %v\n%s", err, out)
	}
	// A tampered binary is refused before it runs.
	if err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\necho tampered\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := run()
	if err == nil || !strings.Contains(out, "does not match the release's SHA256SUMS") || strings.Contains(out, "tampered") {
		t.Errorf("a tampered binary: err %v, output %q", err, out)
	}
}
