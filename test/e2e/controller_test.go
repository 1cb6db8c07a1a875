package e2e

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mumoshu/aws-secret-controller/pkg/testenv"
)

// controllerProcess is the aws-secret-controller binary running against the stack, with the
// test's failure handling.
type controllerProcess struct {
	*testenv.Controller
}

// startController runs the binary with a kubeconfig and extra flags, at -v=4 unless args set
// -v, so that its log says as much as it can for the leak check. The test's cleanup stops it and
// scans its log.
func startController(t *testing.T, name, kubeconfig string, extraEnv []string, args ...string) *controllerProcess {
	t.Helper()
	if !slices.Contains(args, "-v") {
		args = append(args, "-v", "4")
	}
	c, err := env.StartController(context.Background(), testenv.ControllerOptions{
		Name:       name,
		Kubeconfig: kubeconfig,
		Args:       args,
		Env:        extraEnv,
		LogPath:    filepath.Join(t.TempDir(), name+".log"),
	})
	if err != nil {
		t.Fatal(err)
	}
	p := &controllerProcess{c}
	t.Cleanup(func() {
		p.stop(t)
		if t.Failed() {
			t.Logf("--- last lines of %s's log:\n%s", name, p.LogTail(30))
		}
		p.assertNoLeak(t)
	})
	return p
}

// stop sends SIGTERM and returns how long the process took to exit; it fails the test if it
// does not exit cleanly within 10 seconds.
func (p *controllerProcess) stop(t *testing.T) time.Duration {
	t.Helper()
	took, err := p.Stop(10 * time.Second)
	if err != nil {
		t.Errorf("%s: %v", p.Name, err)
	}
	return took
}

func (p *controllerProcess) log(t *testing.T) string {
	t.Helper()
	log, err := p.Log()
	if err != nil {
		t.Fatal(err)
	}
	return log
}

// assertNoLeak fails when any secret value the tests stored shows up in the controller's log.
func (p *controllerProcess) assertNoLeak(t *testing.T) {
	t.Helper()
	log := p.log(t)
	if len(log) == 0 {
		t.Errorf("%s logged nothing: the leak check would prove nothing", p.Name)
	}
	for i, v := range allSecretValues() {
		if strings.Contains(log, v) {
			// Named by its place, not printed: test output is output too.
			t.Errorf("%s's log contains secret value %d (%d bytes)", p.Name, i, len(v))
		}
	}
}

// metric returns the sum of a metric's samples whose labels include the given ones.
func (p *controllerProcess) metric(t *testing.T, name string, labels map[string]string) float64 {
	t.Helper()
	v, err := p.Metric(name, labels)
	if err != nil {
		t.Fatal(err)
	}
	return v
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
