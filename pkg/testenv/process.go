package testenv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// process drives one binary the package runs, a stack component or the controller: it starts it
// with its output in a log file, waits for it to become ready, and stops it.
type process struct {
	name    string
	logPath string
	cmd     *exec.Cmd
	// ready tells whether the component serves, for waitReady after a restart; nil for the
	// controller.
	ready func(context.Context) bool
	// done is closed once the process has exited and exitErr holds cmd.Wait's result.
	done    chan struct{}
	exitErr error
}

// startProcess runs binary with args, its environment extended by env, its stdout and stderr
// written to a new file at logPath. The process gets a process group of its own, so stop
// reaches its children and a terminal's Ctrl-C reaches only the parent, which stops it in order;
// on Linux the kernel also kills it when the test process dies without cleaning up.
func startProcess(name, binary, logPath string, args, env []string) (*process, error) {
	return startCmd(name, logPath, os.O_TRUNC, exec.Command(binary, args...), append(os.Environ(), env...))
}

// restart runs the same command again, appending to the same log, once the process has exited.
func (p *process) restart() (*process, error) {
	<-p.done
	np, err := startCmd(p.name, p.logPath, os.O_APPEND, exec.Command(p.cmd.Path, p.cmd.Args[1:]...), p.cmd.Env)
	if err != nil {
		return nil, err
	}
	np.ready = p.ready
	return np, nil
}

// startCmd starts cmd with env, its output going to logPath, opened with flag (os.O_TRUNC or
// os.O_APPEND).
func startCmd(name, logPath string, flag int, cmd *exec.Cmd, env []string) (*process, error) {
	log, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|flag, 0o644)
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = log, log
	cmd.Env = env
	cmd.SysProcAttr = sysProcAttr()
	if err := startLocked(cmd); err != nil {
		log.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &process{name: name, logPath: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.exitErr = cmd.Wait()
		log.Close()
		close(p.done)
	}()
	return p, nil
}

// waitReady polls ready until it holds, the process exits, or timeout passes; the error of the
// last two carries the tail of the log. Each poll gets a context of a few seconds. A process
// that is not ready in time keeps running: the caller stops it.
func (p *process) waitReady(ctx context.Context, timeout time.Duration, ready func(context.Context) bool) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		attempt, cancelAttempt := context.WithTimeout(ctx, 2*time.Second)
		ok := ready(attempt)
		cancelAttempt()
		if ok {
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("%s exited before it was ready (%v):\n%s", p.name, p.exitErr, p.logTail(20))
		case <-ctx.Done():
			return fmt.Errorf("%s not ready within %s (%w):\n%s", p.name, timeout, context.Cause(ctx), p.logTail(20))
		case <-tick.C:
		}
	}
}

// stop sends SIGTERM to the process group and, if the process has not exited after grace,
// SIGKILL. It returns how long the exit took (zero when it had exited before), and an error if
// SIGKILL was needed. How the process exited is exitError's.
func (p *process) stop(grace time.Duration) (time.Duration, error) {
	start := time.Now()
	select {
	case <-p.done:
		return 0, nil
	default:
	}
	_ = syscall.Kill(-p.pid(), syscall.SIGTERM)
	select {
	case <-p.done:
		return time.Since(start), nil
	case <-time.After(grace):
	}
	_ = syscall.Kill(-p.pid(), syscall.SIGKILL)
	select {
	case <-p.done:
		return time.Since(start), fmt.Errorf("%s did not exit within %s of SIGTERM and was killed", p.name, grace)
	case <-time.After(grace):
		return time.Since(start), fmt.Errorf("%s did not exit within %s of SIGKILL either", p.name, grace)
	}
}

// exitError is cmd.Wait's result: nil for a clean exit. Call it once done is closed.
func (p *process) exitError() error { return p.exitErr }

func (p *process) pid() int { return p.cmd.Process.Pid }

// signal sends sig to the process group.
func (p *process) signal(sig syscall.Signal) error { return syscall.Kill(-p.pid(), sig) }

// logTail returns the last n lines of the process's log.
func (p *process) logTail(n int) string { return fileTail(p.logPath, n) }

func fileTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	return lastLines(string(b), n)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
