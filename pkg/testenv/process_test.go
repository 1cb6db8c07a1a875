package testenv

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// sh runs a shell script through the process driver, logging to a temporary file.
func sh(t *testing.T, script string) *process {
	t.Helper()
	p, err := startProcess("sh", "/bin/sh", filepath.Join(t.TempDir(), "sh.log"), []string{"-c", script}, []string{"GREETING=hello"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = p.stop(time.Second) })
	return p
}

func fileExists(path string) func(context.Context) bool {
	return func(context.Context) bool {
		_, err := os.Stat(path)
		return err == nil
	}
}

func TestProcessWaitReady(t *testing.T) {
	ready := filepath.Join(t.TempDir(), "ready")
	tests := map[string]struct {
		script string
		// wantErr is a substring of the error; empty means ready.
		wantErr string
	}{
		"ready": {
			script: `echo "$GREETING"; sleep 0.2; touch ` + ready + `; exec sleep 60`,
		},
		"exits first": {
			script:  `echo "last words"; exit 3`,
			wantErr: "sh exited before it was ready (exit status 3):\nlast words",
		},
		"never ready": {
			script:  `echo "still starting"; exec sleep 60`,
			wantErr: "sh not ready within 500ms (context deadline exceeded):\nstill starting",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_ = os.Remove(ready)
			p := sh(t, tc.script)
			err := p.waitReady(context.Background(), 500*time.Millisecond, fileExists(ready))
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("waitReady: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("waitReady: err = %v, want one containing %q", err, tc.wantErr)
			}
			if tc.wantErr == "" && !strings.Contains(p.logTail(5), "hello") {
				t.Errorf("log = %q, want the output with the extra environment", p.logTail(5))
			}
		})
	}
}

func TestProcessStop(t *testing.T) {
	tests := map[string]struct {
		script string
		// exitErr is what exitError says afterwards; killed says that stop needed SIGKILL.
		exitErr string
		killed  bool
	}{
		"exits on SIGTERM": {script: `trap 'exit 0' TERM; while :; do sleep 0.05; done`},
		"exits non-zero":   {script: `trap 'exit 4' TERM; while :; do sleep 0.05; done`, exitErr: "exit status 4"},
		"ignores SIGTERM":  {script: `trap '' TERM; while :; do sleep 0.05; done`, exitErr: "signal: killed", killed: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			// The trap must be set before the signal comes: the script says so with a file.
			trapped := filepath.Join(t.TempDir(), "trapped")
			p := sh(t, strings.Replace(tc.script, "; ", "; touch "+trapped+"; ", 1))
			if err := p.waitReady(context.Background(), 5*time.Second, fileExists(trapped)); err != nil {
				t.Fatal(err)
			}
			took, err := p.stop(300 * time.Millisecond)
			if (err != nil) != tc.killed {
				t.Fatalf("stop: err = %v, killed = %v", err, tc.killed)
			}
			if tc.killed && took < 300*time.Millisecond {
				t.Errorf("killed after %s, before the grace period", took)
			}
			select {
			case <-p.done:
			default:
				t.Fatal("stop returned before the process exited")
			}
			if got := errString(p.exitError()); got != tc.exitErr {
				t.Errorf("exitError = %q, want %q", got, tc.exitErr)
			}
			if took, err := p.stop(time.Second); took != 0 || err != nil {
				t.Errorf("second stop = %s, %v; want 0, nil", took, err)
			}
			// The shell's killed children are reaped by init, soon after.
			for deadline := time.Now().Add(5 * time.Second); syscall.Kill(-p.pid(), 0) == nil; time.Sleep(10 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("process group %d still has members", p.pid())
				}
			}
		})
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
