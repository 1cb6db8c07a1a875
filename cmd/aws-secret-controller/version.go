package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Stamped at link time by `make build` and `make image`:
//
//	go build -ldflags "-X main.version=v0.1.0 -X main.commit=$(git rev-parse HEAD)"
var (
	version = "dev"
	commit  = "unknown"
)

// versionString is what --version prints and the startup log shows. An unstamped binary built
// from a Git checkout still names its commit, from the VCS stamp the go command embeds.
func versionString() string {
	c := commit
	if info, ok := debug.ReadBuildInfo(); ok && c == "unknown" {
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" {
				c = s.Value
			}
		}
	}
	return fmt.Sprintf("aws-secret-controller %s (commit %s, %s %s/%s)", version, c, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
