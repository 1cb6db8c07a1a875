package testenv

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
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
}

// Controller is a running aws-secret-controller process.
type Controller struct {
	Name        string
	LogPath     string
	MetricsAddr string
	HealthAddr  string
	cmd         *exec.Cmd
	done        chan struct{}
	exitErr     error
}

// StartController runs the controller binary and waits until it reports ready (its informer
// caches have synced).
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
	log, err := os.Create(opts.LogPath)
	if err != nil {
		return nil, err
	}
	args := append(append([]string(nil), opts.Args...),
		"--kubeconfig", opts.Kubeconfig,
		"--metrics-bind-address", metricsAddr,
		"--health-probe-bind-address", healthAddr)
	cmd := exec.Command(opts.Binary, args...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.Env = append(append(os.Environ(), e.AWSEnv()...), opts.Env...)
	// Its own process group keeps a terminal's Ctrl-C for the parent, which stops it in order.
	cmd.SysProcAttr = sysProcAttr()
	if err := startLocked(cmd); err != nil {
		log.Close()
		return nil, fmt.Errorf("starting %s: %w", opts.Name, err)
	}
	c := &Controller{Name: opts.Name, LogPath: opts.LogPath, MetricsAddr: metricsAddr, HealthAddr: healthAddr, cmd: cmd, done: make(chan struct{})}
	go func() {
		c.exitErr = cmd.Wait()
		log.Close()
		close(c.done)
	}()

	ctx, cancel := context.WithTimeout(ctx, opts.ReadyTimeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if _, status := get(ctx, http.DefaultClient, "http://"+healthAddr+"/readyz", ""); status == http.StatusOK {
			return c, nil
		}
		select {
		case <-c.done:
			return nil, fmt.Errorf("%s exited before it was ready (%v):\n%s", opts.Name, c.exitErr, c.LogTail(20))
		case <-ctx.Done():
			_, _ = c.Stop(5 * time.Second)
			return nil, fmt.Errorf("%s not ready within %s:\n%s", opts.Name, opts.ReadyTimeout, c.LogTail(20))
		case <-tick.C:
		}
	}
}

// Stop sends SIGTERM and waits up to grace for the process to exit, then kills it. It returns
// how long the exit took, and an error if the exit was not clean.
func (c *Controller) Stop(grace time.Duration) (time.Duration, error) {
	start := time.Now()
	select {
	case <-c.done:
		return 0, c.exitErr
	default:
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
		return time.Since(start), c.exitErr
	case <-time.After(grace):
	}
	_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
	<-c.done
	return time.Since(start), fmt.Errorf("%s did not exit within %s of SIGTERM and was killed", c.Name, grace)
}

// Done is closed when the process has exited.
func (c *Controller) Done() <-chan struct{} { return c.done }

// PID is the process id.
func (c *Controller) PID() int { return c.cmd.Process.Pid }

// Log returns everything the controller wrote so far.
func (c *Controller) Log() (string, error) {
	b, err := os.ReadFile(c.LogPath)
	return string(b), err
}

// LogTail returns the last n lines of the controller's log.
func (c *Controller) LogTail(n int) string {
	log, err := c.Log()
	if err != nil {
		return err.Error()
	}
	return lastLines(log, n)
}

// Metric returns the sum of the samples of a metric whose labels include the given ones, from
// the controller's /metrics; 0 when there are none.
func (c *Controller) Metric(name string, labels map[string]string) (float64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	body, status := get(ctx, http.DefaultClient, "http://"+c.MetricsAddr+"/metrics", "")
	if status != http.StatusOK {
		return 0, fmt.Errorf("GET %s/metrics: status %d", c.MetricsAddr, status)
	}
	return sumSamples(bytes.NewReader(body), name, labels)
}

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

// APIServerMetric returns the sum of a kube-apiserver metric's samples whose labels include
// the given ones, e.g. apiserver_request_total{verb="POST",resource="secrets"}.
func (e *Env) APIServerMetric(ctx context.Context, name string, labels map[string]string) (float64, error) {
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsConfig(e.caData)}}
	body, status := get(ctx, client, e.APIServerURL+"/metrics", e.tokens["admin"])
	if status != http.StatusOK {
		return 0, fmt.Errorf("GET kube-apiserver /metrics: status %d", status)
	}
	return sumSamples(bytes.NewReader(body), name, labels)
}

func sumSamples(r io.Reader, name string, labels map[string]string) (float64, error) {
	var parser expfmt.TextParser
	families, err := parser.TextToMetricFamilies(r)
	if err != nil {
		return 0, err
	}
	family, ok := families[name]
	if !ok {
		return 0, nil
	}
	samples, err := expfmt.ExtractSamples(&expfmt.DecodeOptions{Timestamp: model.Now()}, family)
	if err != nil {
		return 0, err
	}
	var sum float64
next:
	for _, s := range samples {
		for k, v := range labels {
			if string(s.Metric[model.LabelName(k)]) != v {
				continue next
			}
		}
		sum += float64(s.Value)
	}
	return sum, nil
}

// freeAddr returns a loopback address nothing listens on now, or "".
func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return ""
	}
	defer l.Close()
	return l.Addr().String()
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
