// pause: the sandbox ("infra") container of every pod in the local cluster. containerd
// starts it first in each pod to hold the pod's namespaces; kubelet's own default image
// (registry.k8s.io/pause) cannot be pulled on machines without a registry.
//
// It does what a pod sandbox needs of PID 1: sleep, reap orphaned children that end up
// with it, and exit 0 on SIGINT or SIGTERM.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	signals := make(chan os.Signal, 8)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for sig := range signals {
		if sig != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			pid, err := syscall.Wait4(-1, nil, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
