// Package drive holds what the drivers under hack/ (bench, faults) share: running work in
// parallel, random test values, progress lines and facts about the machine.
package drive

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Parallel runs f for 0..n-1 on workers goroutines and returns the first error.
func Parallel(ctx context.Context, n, workers int, f func(context.Context, int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var next atomic.Int64
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := f(ctx, i); err != nil {
					once.Do(func() { first = err; cancel() })
					return
				}
			}
		}()
	}
	wg.Wait()
	return first
}

// RandomString returns 32 random hex digits: a test secret value.
func RandomString() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Logf prints a progress line with the time to standard error.
func Logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, time.Now().Format("15:04:05 ")+format+"\n", args...)
}

// LoadAverage is the machine's 1, 5 and 15 minute load average.
func LoadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	return strings.Join(strings.Fields(string(b))[:3], " ")
}

// MemTotal is the machine's memory, as /proc/meminfo says it.
func MemTotal() string {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return "unknown"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "MemTotal:") {
			return strings.TrimSpace(strings.TrimPrefix(line, "MemTotal:"))
		}
	}
	return "unknown"
}

// Command is how to repeat a driver's run: `make <target>` with the flags given, but for --repo,
// which the Makefile passes, in the variable the target reads them from.
func Command(target, variable string) string {
	var flags []string
	flag.Visit(func(f *flag.Flag) {
		if f.Name != "repo" {
			flags = append(flags, "--"+f.Name+"="+f.Value.String())
		}
	})
	if len(flags) == 0 {
		return "make " + target
	}
	return "make " + target + " " + variable + "='" + strings.Join(flags, " ") + "'"
}
