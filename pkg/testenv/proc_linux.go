package testenv

import (
	"os/exec"
	"runtime"
	"syscall"
)

// sysProcAttr puts a component in a process group of its own, so Stop reaches its children,
// and has the kernel kill it if the test process dies without cleaning up (a panic, a go test
// -timeout).
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// startLocked starts cmd from a locked OS thread: Pdeathsig fires when the thread that forked
// the child exits, and the Go runtime never retires a thread that was not left locked.
func startLocked(cmd *exec.Cmd) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	return cmd.Start()
}
