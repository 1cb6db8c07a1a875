package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mumoshu/aws-secret-controller/hack/internal/drive"
	"github.com/mumoshu/aws-secret-controller/pkg/testenv"
)

// supervisor runs the controller for the N1 and H1 scenarios as a kubelet runs a container with
// a memory limit: it samples the process's memory every pollInterval, kills it with SIGKILL when
// its resident set passes the limit (an emulated OOM kill: the kernel's cgroup limit counts
// about the same pages), and restarts it after any exit it did not ask for, with kubelet's
// CrashLoopBackOff (10 s doubling to 5 min). A hard address-space limit (RLIMIT_AS) backs the
// sampling up, so that an allocation faster than the sampling cannot take the machine's memory:
// a process that hits it fails an allocation and exits ("fatal error: out of memory").
type supervisor struct {
	b        *bench
	name     string
	limitKiB int64 // 0: no emulated memory limit
	backoff  time.Duration

	mu           sync.Mutex
	cur          *testenv.Controller
	incarnations []incarnation
	stopping     bool
	done         chan struct{}
	quit         chan struct{}
	stopOnce     sync.Once
}

// incarnation is one run of the controller process.
type incarnation struct {
	Name       string    `json:"name"`
	Started    time.Time `json:"started"`
	Ended      time.Time `json:"ended,omitempty"`
	PeakRSSKiB int64     `json:"peakRssKiB"`
	// Exit is how the process ended: "" while running or when the bench stopped it, else
	// "OOMKilled (...)" or the exit status and the log's last telling line.
	Exit    string `json:"exit,omitempty"`
	LogPath string `json:"-"`
	asLimit bool   // RLIMIT_AS is set
}

const pollInterval = 20 * time.Millisecond

func newSupervisor(b *bench, name string) *supervisor {
	return &supervisor{b: b, name: name, limitKiB: int64(b.cfg.memoryLimitMiB) * 1024, backoff: b.cfg.restartBackoff, done: make(chan struct{}), quit: make(chan struct{})}
}

// start starts the first process and supervises it until stop; it returns once the first
// process is ready (or failed to get ready, which is an error).
func (s *supervisor) start(ctx context.Context) error {
	if err := s.launch(ctx); err != nil {
		return err
	}
	go s.loop(ctx)
	return s.waitReady(ctx, 5*time.Minute)
}

// launch starts one process, without waiting for it to become ready: the watchdog must run
// from the first instant.
func (s *supervisor) launch(ctx context.Context) error {
	s.mu.Lock()
	n := len(s.incarnations) + 1
	s.mu.Unlock()
	env, _ := s.b.controllerEnv(true)
	c, err := s.b.env.StartController(ctx, testenv.ControllerOptions{
		Name:   fmt.Sprintf("%s-controller-%d", s.name, n),
		Binary: s.b.controllerBinary(),
		Args:   strings.Fields(s.b.cfg.controllerArgs),
		Env:    env,
		NoWait: true,
	})
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.cur = c
	s.incarnations = append(s.incarnations, incarnation{Name: c.Name, Started: time.Now(), LogPath: c.LogPath})
	s.mu.Unlock()
	return nil
}

// loop watches the running process: memory, exit, restart with backoff.
func (s *supervisor) loop(ctx context.Context) {
	defer close(s.done)
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	backoff := s.backoff
	for {
		s.mu.Lock()
		c := s.cur
		i := len(s.incarnations) - 1
		s.mu.Unlock()
		select {
		case <-c.Done():
			s.mu.Lock()
			stopping := s.stopping
			inc := &s.incarnations[i]
			inc.Ended = time.Now()
			if !stopping && inc.Exit == "" {
				inc.Exit = describeExit(c)
			}
			exit := inc.Exit
			s.mu.Unlock()
			if stopping {
				return
			}
			drive.Logf("%s: controller %s exited: %s; restarting in %s", s.name, c.Name, exit, backoff)
			select {
			case <-ctx.Done():
				return
			case <-s.quit:
				return
			case <-time.After(backoff):
			}
			// kubelet's CrashLoopBackOff: doubling, at most five minutes (reset after ten minutes
			// of running, longer than any run here).
			backoff = min(2*backoff, 5*time.Minute)
			s.mu.Lock()
			stopping = s.stopping
			s.mu.Unlock()
			if stopping {
				return
			}
			if err := s.launch(ctx); err != nil {
				drive.Logf("%s: restart failed: %v", s.name, err)
				return
			}
		case <-tick.C:
			rss, peak := procStatusKiB(c.PID(), "VmRSS:"), procStatusKiB(c.PID(), "VmHWM:")
			s.mu.Lock()
			inc := &s.incarnations[i]
			inc.PeakRSSKiB = max(inc.PeakRSSKiB, peak, rss)
			if s.limitKiB > 0 && !inc.asLimit && time.Since(inc.Started) > time.Second {
				// The backstop, once the Go runtime has made its reservations: the address space
				// the process has then, plus four times the limit (at least 2 GiB). Go reserves
				// address space it does not touch, so this is far above the resident limit.
				inc.asLimit = true
				if vm := procStatusKiB(c.PID(), "VmSize:"); vm > 0 {
					if err := setAddressSpaceLimit(c.PID(), (vm+max(4*s.limitKiB, 2<<20))*1024); err != nil {
						drive.Logf("%s: RLIMIT_AS not set: %v", s.name, err)
					}
				}
			}
			if s.limitKiB > 0 && rss > s.limitKiB && inc.Exit == "" && !s.stopping {
				inc.Exit = fmt.Sprintf("OOMKilled (emulated: RSS %.0f MiB > limit %d MiB)", mib(rss), s.b.cfg.memoryLimitMiB)
				_ = c.Signal(syscall.SIGKILL)
			}
			s.mu.Unlock()
		case <-ctx.Done():
			return
		}
	}
}

// describeExit tells how a process that the bench did not stop ended, with the log's most
// telling line (a Go fatal error or panic).
func describeExit(c *testenv.Controller) string {
	status := "exited cleanly"
	if err := c.ExitError(); err != nil {
		status = err.Error()
	}
	tail := c.LogTail(200)
	for _, marker := range []string{"fatal error:", "panic:", "runtime: out of memory", "Controller failed"} {
		if i := strings.Index(tail, marker); i >= 0 {
			line := tail[i:]
			if j := strings.IndexByte(line, '\n'); j >= 0 {
				line = line[:j]
			}
			return status + ": " + truncateString(line, 200)
		}
	}
	return status
}

// waitReady waits until the current process serves /readyz.
func (s *supervisor) waitReady(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		c := s.current()
		if c != nil {
			ctx2, cancel := context.WithTimeout(ctx, 2*time.Second)
			req, _ := http.NewRequestWithContext(ctx2, http.MethodGet, "http://"+c.HealthAddr+"/readyz", nil)
			resp, err := http.DefaultClient.Do(req)
			cancel()
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					return nil
				}
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: controller not ready within %s:\n%s", s.name, timeout, c.LogTail(20))
		}
		s.mu.Lock()
		first := len(s.incarnations) == 1
		s.mu.Unlock()
		if c != nil && stopped(c) && first {
			return fmt.Errorf("%s: controller exited before it was ready (%v):\n%s", s.name, c.ExitError(), c.LogTail(20))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (s *supervisor) current() *testenv.Controller {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur
}

// stop stops the running process and the supervision; it may be called more than once.
func (s *supervisor) stop() {
	s.stopOnce.Do(func() {
		s.mu.Lock()
		s.stopping = true
		c := s.cur
		s.mu.Unlock()
		close(s.quit)
		if c != nil {
			_, _ = c.Stop(30 * time.Second)
		}
		select {
		case <-s.done:
		case <-time.After(time.Minute):
		}
	})
}

// summary returns the incarnations so far, the number of unplanned exits, and the peak RSS over
// all incarnations.
func (s *supervisor) summary() (incs []incarnation, restarts int, peakKiB int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	incs = append(incs, s.incarnations...)
	for _, inc := range incs {
		if inc.Exit != "" {
			restarts++
		}
		peakKiB = max(peakKiB, inc.PeakRSSKiB)
	}
	return incs, restarts, peakKiB
}

// logs returns the concatenated logs of every incarnation.
func (s *supervisor) logs() string {
	s.mu.Lock()
	incs := append([]incarnation(nil), s.incarnations...)
	s.mu.Unlock()
	var b strings.Builder
	for _, inc := range incs {
		data, err := os.ReadFile(inc.LogPath)
		if err != nil {
			continue
		}
		b.Write(data)
	}
	return b.String()
}

// keepLogs copies the incarnations' logs to dir, when one is given.
func (s *supervisor) keepLogs(dir string) {
	if dir == "" {
		return
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		drive.Logf("keep logs: %v", err)
		return
	}
	s.mu.Lock()
	incs := append([]incarnation(nil), s.incarnations...)
	s.mu.Unlock()
	for _, inc := range incs {
		data, err := os.ReadFile(inc.LogPath)
		if err == nil {
			err = os.WriteFile(dir+"/"+inc.Name+".log", data, 0o644)
		}
		if err != nil {
			drive.Logf("keep logs: %v", err)
		}
	}
}

// metric reads a metric of the running process; 0 when none runs.
func (s *supervisor) metric(name string, labels map[string]string) float64 {
	c := s.current()
	if c == nil || stopped(c) {
		return 0
	}
	v, err := c.Metric(name, labels)
	if err != nil {
		return 0
	}
	return v
}

// procStatusKiB reads one "Name: N kB" field of /proc/<pid>/status; 0 when it cannot.
func procStatusKiB(pid int, field string) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	scanner := bufio.NewScanner(f)
	for scanner.Scan() {
		fields := strings.Fields(scanner.Text())
		if len(fields) >= 2 && fields[0] == field {
			v, _ := strconv.ParseInt(fields[1], 10, 64)
			return v
		}
	}
	return 0
}

func truncateString(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
