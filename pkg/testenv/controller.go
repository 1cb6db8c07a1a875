package testenv

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ControllerOptions say how to run the aws-secret-controller binary against the stack.
type ControllerOptions struct {
	// Binary is the controller; empty means aws-secret-controller in the Env's BinDir.
	Binary string
	// Kubeconfig is the identity it runs as; empty means the admin kubeconfig.
	Kubeconfig string
	// Args are flags; --kubeconfig and the metrics and probe addresses are appended (later
	// flags win), so Args may be a Deployment's.
	Args []string
	// Env is added to the environment, after the emulator's (AWSEnv).
	Env []string
	// LogPath receives the controller's output; empty means Env.Dir/<Name>.log.
	LogPath string
	// Name names the process in errors and the default log file.
	Name string
	// ReadyTimeout bounds the wait for /readyz. Zero means a minute.
	ReadyTimeout time.Duration
	// NoWait returns as soon as the process has started, without waiting for /readyz: for a
	// process started while the API server is down, or a standby replica.
	NoWait bool
}

// Controller is a running aws-secret-controller process.
type Controller struct {
	// Name names the process in errors.
	Name string
	// LogPath is the file that receives its output.
	LogPath string
	// MetricsAddr serves /metrics and HealthAddr /healthz and /readyz, on loopback.
	MetricsAddr string
	HealthAddr  string

	proc *process
}

// StartController runs the controller binary and waits until it reports ready (its informer
// caches have synced). A controller that does not get ready in time is stopped.
func (e *Env) StartController(ctx context.Context, opts ControllerOptions) (*Controller, error) {
	if opts.Name == "" {
		opts.Name = "aws-secret-controller"
	}
	if opts.Binary == "" {
		opts.Binary = filepath.Join(e.BinDir, "aws-secret-controller")
	}
	if opts.Kubeconfig == "" {
		opts.Kubeconfig = e.Kubeconfig
	}
	if opts.LogPath == "" {
		opts.LogPath = filepath.Join(e.Dir, opts.Name+".log")
	}
	if opts.ReadyTimeout == 0 {
		opts.ReadyTimeout = time.Minute
	}
	metricsAddr, healthAddr := freeAddr(), freeAddr()
	if metricsAddr == "" || healthAddr == "" {
		return nil, fmt.Errorf("no free port for %s", opts.Name)
	}
	args := append(append([]string(nil), opts.Args...),
		"--kubeconfig", opts.Kubeconfig,
		"--metrics-bind-address", metricsAddr,
		"--health-probe-bind-address", healthAddr)
	p, err := startProcess(opts.Name, opts.Binary, opts.LogPath, args, append(e.AWSEnv(), opts.Env...))
	if err != nil {
		return nil, err
	}
	c := &Controller{Name: opts.Name, LogPath: opts.LogPath, MetricsAddr: metricsAddr, HealthAddr: healthAddr, proc: p}
	if opts.NoWait {
		return c, nil
	}
	if err := p.waitReady(ctx, opts.ReadyTimeout, func(ctx context.Context) bool {
		_, status := get(ctx, http.DefaultClient, "http://"+healthAddr+"/readyz", "")
		return status == http.StatusOK
	}); err != nil {
		_, _ = p.stop(5 * time.Second)
		return nil, err
	}
	return c, nil
}

// Signal sends sig to the process (its process group), e.g. SIGTERM or SIGKILL, without
// waiting: see Done and ExitError.
func (c *Controller) Signal(sig syscall.Signal) error { return c.proc.signal(sig) }

// ExitError is how the process exited: nil for a clean exit. Call it once Done is closed.
func (c *Controller) ExitError() error { return c.proc.exitError() }

// Stop sends SIGTERM and waits up to grace for the process to exit, then kills it. It returns
// how long the exit took, and an error if the exit was not clean: killed, or a non-zero status.
func (c *Controller) Stop(grace time.Duration) (time.Duration, error) {
	took, err := c.proc.stop(grace)
	if err != nil {
		return took, err
	}
	return took, c.proc.exitError()
}

// Done is closed when the process has exited.
func (c *Controller) Done() <-chan struct{} { return c.proc.done }

// PID is the process id.
func (c *Controller) PID() int { return c.proc.pid() }

// Log returns everything the controller wrote so far.
func (c *Controller) Log() (string, error) {
	b, err := os.ReadFile(c.LogPath)
	return string(b), err
}

// LogTail returns the last n lines of the controller's log.
func (c *Controller) LogTail(n int) string { return c.proc.logTail(n) }

// MemoryKiB returns the process's resident set now and its peak so far, from /proc (Linux).
func (c *Controller) MemoryKiB() (rss, peak int64, err error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", c.PID()))
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	scanner := bufio.NewScanner(f)
	for scanner.Scan() {
		fields := strings.Fields(scanner.Text())
		if len(fields) < 2 {
			continue
		}
		switch fields[0] {
		case "VmRSS:":
			rss, _ = strconv.ParseInt(fields[1], 10, 64)
		case "VmHWM:":
			peak, _ = strconv.ParseInt(fields[1], 10, 64)
		}
	}
	return rss, peak, scanner.Err()
}
