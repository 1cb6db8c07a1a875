// Package e2e tests the aws-secret-controller binary against a real kube-apiserver, etcd and
// Secrets Manager emulator (kumo), with the manifests applied by a real kubectl. Nothing here is
// a fake. `make test` builds what it needs; the tests share one stack and run one after another,
// each in namespaces of its own.
package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/mumoshu/aws-secret-controller/pkg/generated/clientset/versioned"
	"github.com/mumoshu/aws-secret-controller/pkg/testenv"
	"github.com/mumoshu/aws-secret-controller/test/testutil"
)

var (
	// env is the stack every test shares.
	env *testenv.Env
	// kube and client are admin clients.
	kube   kubernetes.Interface
	client versioned.Interface
	// sm writes secrets into the emulator; the tests never read values through it.
	sm *secretsmanager.Client
	// repoRoot is the repository, for manifests.
	repoRoot string

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
	ctx := context.Background()
	env, err = testenv.New(ctx, testenv.Options{
		CRDs: []string{filepath.Join(repoRoot, "manifests", "crd", "mumoshu.github.io_awssecrets.yaml")},
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "starting the local stack (run `make tools`): %v\n", err)
		return 1
	}
	defer env.Stop()
	kube = kubernetes.NewForConfigOrDie(env.Config)
	client = versioned.NewForConfigOrDie(env.Config)
	sm = env.SecretsManager()
	return m.Run()
}

// The suite's bindings of testutil to its stack.
func newValue(prefix string) string { return values.New(prefix) }
func allSecretValues() []string     { return values.All() }
func createSecret(t *testing.T, id, content string) string {
	return testutil.CreateSecret(t, sm, id, content)
}
func putSecretValue(t *testing.T, id, content string) string {
	return testutil.PutSecretValue(t, sm, id, content)
}
func createAWSSecret(t *testing.T, ns, name, secretID, versionID string) {
	testutil.CreateAWSSecret(t, client, ns, name, secretID, versionID)
}
func eventually(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	testutil.Eventually(t, timeout, what, cond)
}

// newNamespace creates a namespace named after the test.
func newNamespace(t *testing.T, name string) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if _, err := kube.CoreV1().Namespaces().Create(context.Background(), ns, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating namespace %s: %v", name, err)
	}
	// No namespace controller runs, so deleting the namespace would not remove its objects:
	// remove the AWSSecrets so that later tests' controllers do not see them.
	t.Cleanup(func() {
		_ = client.MumoshuV1alpha1().AWSSecrets(name).DeleteCollection(context.Background(), metav1.DeleteOptions{}, metav1.ListOptions{})
	})
	return name
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
