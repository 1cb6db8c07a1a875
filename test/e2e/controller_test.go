package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// controllerProcess is the aws-secret-controller binary running against the stack.
type controllerProcess struct {
	name        string
	cmd         *exec.Cmd
	logPath     string
	metricsAddr string
	healthAddr  string
	done        chan struct{}
	exitErr     error
}

// startController runs the binary with a kubeconfig and extra flags, at -v=4 so that its log
// says as much as it can for the leak check. The test's cleanup stops it and scans its log.
func startController(t *testing.T, name, kubeconfig string, extraEnv []string, args ...string) *controllerProcess {
	t.Helper()
	bin := filepath.Join(env.BinDir, "aws-secret-controller")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("%s missing: run `make build`", bin)
	}
	p := &controllerProcess{
		name:        name,
		logPath:     filepath.Join(t.TempDir(), name+".log"),
		metricsAddr: freeAddr(t),
		healthAddr:  freeAddr(t),
		done:        make(chan struct{}),
	}
	log, err := os.Create(p.logPath)
	if err != nil {
		t.Fatal(err)
	}
	// Flags given later win, so the caller's args can be a Deployment's and still get
	// this test's ports.
	args = append(args,
		"--kubeconfig", kubeconfig,
		"--metrics-bind-address", p.metricsAddr,
		"--health-probe-bind-address", p.healthAddr,
		"-v", "4",
	)
	p.cmd = exec.Command(bin, args...)
	p.cmd.Stdout, p.cmd.Stderr = log, log
	p.cmd.Env = append(append(os.Environ(), env.AWSEnv()...), extraEnv...)
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.exitErr = p.cmd.Wait()
		log.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stop(t)
		if t.Failed() {
			t.Logf("--- last lines of %s's log:\n%s", name, tail(p.log(t), 30))
		}
		p.assertNoLeak(t)
	})
	eventually(t, 30*time.Second, name+" ready", func() (bool, string) {
		select {
		case <-p.done:
			t.Fatalf("%s exited: %v\n%s", name, p.exitErr, tail(p.log(t), 30))
		default:
		}
		status, body := httpGet("http://" + p.healthAddr + "/readyz")
		return status == http.StatusOK, fmt.Sprintf("%d %s", status, body)
	})
	return p
}

// stop sends SIGTERM and returns how long the process took to exit; it fails the test if it
// does not exit cleanly within 10 seconds.
func (p *controllerProcess) stop(t *testing.T) time.Duration {
	t.Helper()
	select {
	case <-p.done:
		return 0
	default:
	}
	start := time.Now()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
		t.Errorf("%s did not exit within 10s of SIGTERM", p.name)
	}
	if p.exitErr != nil {
		t.Errorf("%s exited with %v after SIGTERM", p.name, p.exitErr)
	}
	return time.Since(start)
}

func (p *controllerProcess) log(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// assertNoLeak fails when any secret value the tests stored shows up in the controller's log.
func (p *controllerProcess) assertNoLeak(t *testing.T) {
	t.Helper()
	log := p.log(t)
	if len(log) == 0 {
		t.Errorf("%s logged nothing: the leak check would prove nothing", p.name)
	}
	for _, v := range allSecretValues() {
		if strings.Contains(log, v) {
			t.Errorf("%s's log contains the secret value %q", p.name, v)
		}
	}
}

// metric returns the sum of a metric's samples whose labels include the given ones.
func (p *controllerProcess) metric(t *testing.T, name string, labels map[string]string) float64 {
	t.Helper()
	status, body := httpGet("http://" + p.metricsAddr + "/metrics")
	if status != http.StatusOK {
		t.Fatalf("GET /metrics: %d", status)
	}
	var parser expfmt.TextParser
	families, err := parser.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	family, ok := families[name]
	if !ok {
		return 0
	}
	vector, err := expfmt.ExtractSamples(&expfmt.DecodeOptions{Timestamp: model.Now()}, family)
	if err != nil {
		t.Fatal(err)
	}
next:
	for _, s := range vector {
		for k, v := range labels {
			if string(s.Metric[model.LabelName(k)]) != v {
				continue next
			}
		}
		sum += float64(s.Value)
	}
	return sum
}

// awsCalls is how many GetSecretValue calls the controller made, by its own metrics.
func (p *controllerProcess) awsCalls(t *testing.T) int {
	t.Helper()
	return int(p.metric(t, "aws_secret_controller_aws_api_calls_total", map[string]string{"operation": "GetSecretValue"}))
}

// emulatorCalls is how many GetSecretValue requests from the controller the emulator logged.
func emulatorCalls(t *testing.T) int {
	t.Helper()
	n, err := env.EmulatorRequests("GetSecretValue", "app/aws-secret-controller")
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func httpGet(url string) (int, string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err.Error()
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
