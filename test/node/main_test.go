//go:build linux

// Package node tests the controller as users run it: the image `make image` builds, installed
// with the shipped manifests through an overlay that only sets the image, the emulator's endpoint
// and what this machine needs, running as Pods on a real node (kubelet and containerd) with
// kube-controller-manager and kube-scheduler. Nothing here is a fake. The tests share one stack
// and one install and run one after another.
package node

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"k8s.io/client-go/kubernetes"

	"github.com/mumoshu/aws-secret-controller/pkg/generated/clientset/versioned"
	"github.com/mumoshu/aws-secret-controller/pkg/testenv"
	"github.com/mumoshu/aws-secret-controller/test/testutil"
)

var (
	env    *testenv.Env
	kube   kubernetes.Interface
	client versioned.Interface
	sm     *secretsmanager.Client
	// repoRoot is the repository, for manifests.
	repoRoot string
	// controllerImage and appImage are the names the image archives carry.
	controllerImage, appImage string
	// values are every secret value the tests stored, to check logs for leaks.
	values testutil.Values
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	var err error
	if repoRoot, err = filepath.Abs(filepath.Join("..", "..")); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	binDir := os.Getenv(testenv.BinDirEnv)
	if binDir == "" {
		binDir = filepath.Join(repoRoot, "bin")
	}
	archives := []string{filepath.Join(binDir, "aws-secret-controller-image.tar"), filepath.Join(binDir, "testapp-image.tar")}
	for i, name := range []*string{&controllerImage, &appImage} {
		if *name, err = testenv.ImageName(archives[i]); err != nil {
			fmt.Fprintf(os.Stderr, "%v (run `make image testapp-image`)\n", err)
			return 1
		}
	}
	ctx := context.Background()
	env, err = testenv.New(ctx, testenv.Options{Node: true, NodeImages: archives, Timeout: 3 * time.Minute})
	if err != nil {
		fmt.Fprintf(os.Stderr, "starting the stack with a node (run `make node-tools image testapp-image`): %v\n", err)
		return 1
	}
	kube = kubernetes.NewForConfigOrDie(env.Config)
	client = versioned.NewForConfigOrDie(env.Config)
	sm = env.SecretsManager()
	code := m.Run()
	if err := env.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "stopping the stack: %v\n", err)
		code = 1
	}
	if left := env.NodeLeftovers(); len(left) > 0 {
		fmt.Fprintf(os.Stderr, "the node left behind:\n%s\n", strings.Join(left, "\n"))
		code = 1
	}
	return code
}

// The suite's bindings of testutil to its stack.
func newValue(prefix string) string { return values.New(prefix) }
func createSecret(t *testing.T, id, content string) string {
	return testutil.CreateSecret(t, sm, id, content)
}
func putSecretValue(t *testing.T, id, content string) string {
	return testutil.PutSecretValue(t, sm, id, content)
}
func awsSecret(t *testing.T, ns, name, secretID, versionID string) {
	testutil.CreateAWSSecret(t, client, ns, name, secretID, versionID)
}
func eventually(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	testutil.Eventually(t, timeout, what, cond)
}

// kubectl runs the real kubectl as admin, with stdin, and returns its output.
func kubectl(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	out, err := env.Kubectl(context.Background(), stdin, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
