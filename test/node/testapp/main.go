// Command testapp is the application the node tests run next to the controller: it reports what
// it sees of a Secret, as a file (a Secret volume) and as an environment variable, so a test can
// tell which version reached the Pod. It prints digests, never the values, one line per change:
//
//	file=<sha256 of FILE's content, 16 hex digits> env=<sha256 of the variable VAR names, 16 hex digits>
//
// FILE names the file; VAR names the variable (VALUE when unset). "-" stands for a file or
// variable that is not there. It exits at SIGTERM.
package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	last := ""
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		if seen := observe(); seen != last {
			fmt.Println(seen)
			last = seen
		}
		select {
		case <-stop:
			return
		case <-tick.C:
		}
	}
}

func observe() string {
	file := "-"
	if path := os.Getenv("FILE"); path != "" {
		if b, err := os.ReadFile(path); err == nil {
			file = Digest(string(b))
		}
	}
	env := "-"
	name := os.Getenv("VAR")
	if name == "" {
		name = "VALUE"
	}
	if v, ok := os.LookupEnv(name); ok {
		env = Digest(v)
	}
	return fmt.Sprintf("file=%s env=%s", file, env)
}

// Digest is how the app names a value: the first 16 hex digits of its SHA-256.
func Digest(v string) string {
	sum := sha256.Sum256([]byte(v))
	return hex.EncodeToString(sum[:8])
}
