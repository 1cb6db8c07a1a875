// Command pause is the Kubernetes sandbox ("pause") container for the local test node, which
// cannot pull registry.k8s.io/pause: it holds the Pod's namespaces open by doing nothing until
// SIGTERM or SIGINT, then exits 0. As PID 1 of a Pod that shares its process namespace it also
// reaps the orphans that get reparented to it, as the upstream pause does.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	signals := make(chan os.Signal, 8)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	for s := range signals {
		if s != syscall.SIGCHLD {
			return
		}
		// Signals coalesce: one SIGCHLD may stand for many exited children.
		for {
			pid, err := syscall.Wait4(-1, nil, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
