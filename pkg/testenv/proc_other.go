//go:build !linux

package testenv

import (
	"os/exec"
	"syscall"
)

// sysProcAttr puts a component in a process group of its own, so Stop reaches its children.
func sysProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }

func startLocked(cmd *exec.Cmd) error { return cmd.Start() }
