// Package e2e tests the aws-secret-controller binary against a real kube-apiserver, etcd and
// Secrets Manager emulator (kumo), with the manifests applied by a real kubectl. Nothing here is
// a fake. `make test` builds what it needs; the tests share one stack and run one after another,
// each in namespaces of its own.
package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/mumoshu/aws-secret-controller/pkg/generated/clientset/versioned"
	"github.com/mumoshu/aws-secret-controller/pkg/testenv"
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

	// secretValues are every secret value the tests stored, to check logs for leaks.
	secretValuesMu sync.Mutex
	secretValues   []string
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

// newValue returns a fresh secret value and remembers it for the leak checks.
func newValue(prefix string) string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	v := prefix + "-" + hex.EncodeToString(b)
	secretValuesMu.Lock()
	defer secretValuesMu.Unlock()
	secretValues = append(secretValues, v)
	return v
}

func allSecretValues() []string {
	secretValuesMu.Lock()
	defer secretValuesMu.Unlock()
	return append([]string(nil), secretValues...)
}

// createSecret creates a secret in the emulator and returns its first version id.
func createSecret(t *testing.T, id, content string) string {
	t.Helper()
	out, err := sm.CreateSecret(context.Background(), &secretsmanager.CreateSecretInput{
		Name: aws.String(id), SecretString: aws.String(content),
	})
	if err != nil {
		t.Fatalf("CreateSecret %s: %v", id, err)
	}
	return aws.ToString(out.VersionId)
}

// putSecretValue adds a version to a secret and returns its id.
func putSecretValue(t *testing.T, id, content string) string {
	t.Helper()
	out, err := sm.PutSecretValue(context.Background(), &secretsmanager.PutSecretValueInput{
		SecretId: aws.String(id), SecretString: aws.String(content),
	})
	if err != nil {
		t.Fatalf("PutSecretValue %s: %v", id, err)
	}
	return aws.ToString(out.VersionId)
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

// eventually polls cond every 100ms until it holds or timeout passes; cond says what it saw.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for {
		ok, seen := cond()
		if ok {
			return
		}
		last = seen
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s; last seen: %s", what, timeout, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
