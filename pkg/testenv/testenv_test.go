package testenv_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/mumoshu/aws-secret-controller/pkg/generated/clientset/versioned"
	"github.com/mumoshu/aws-secret-controller/pkg/testenv"
)

// TestStack starts the whole stack, uses each part through its real client, and checks that Stop
// leaves no process, port or folder behind.
func TestStack(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a control plane")
	}
	ctx := context.Background()
	env, err := testenv.New(ctx, testenv.Options{
		Users: []string{"nobody"},
		CRDs:  []string{filepath.Join("..", "..", "manifests", "crd", "mumoshu.github.io_awssecrets.yaml")},
	})
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = env.Stop()
		}
	})

	admin := kubernetes.NewForConfigOrDie(env.Config)
	if _, err := admin.CoreV1().Namespaces().Get(ctx, "default", metav1.GetOptions{}); err != nil {
		t.Errorf("admin cannot read namespace default: %v", err)
	}
	if _, err := versioned.NewForConfigOrDie(env.Config).MumoshuV1alpha1().AWSSecrets("default").List(ctx, metav1.ListOptions{}); err != nil {
		t.Errorf("the CRD is not served: %v", err)
	}
	nobody := kubernetes.NewForConfigOrDie(env.UserConfig("nobody"))
	if _, err := nobody.CoreV1().Secrets("default").List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("user without bindings listing Secrets: err = %v, want Forbidden", err)
	}

	sm := env.SecretsManager()
	out, err := sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("t/s"), SecretString: aws.String(`{"a":"b"}`)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("t/s"), VersionId: out.VersionId}); err != nil {
		t.Fatal(err)
	}
	if n, err := env.EmulatorRequests("GetSecretValue", ""); err != nil || n != 1 {
		t.Errorf("emulator logged %d GetSecretValue (err %v), want 1", n, err)
	}

	var pids []int
	for _, name := range []string{"etcd", "kube-apiserver", "kumo"} {
		pids = append(pids, pidOf(t, env, name))
	}
	apiServer := env.APIServerURL[len("https://"):]
	dir := env.Dir
	if err := env.Stop(); err != nil {
		t.Fatal(err)
	}
	stopped = true
	for _, pid := range pids {
		if syscall.Kill(pid, 0) == nil {
			t.Errorf("process %d still runs after Stop", pid)
		}
	}
	if conn, err := net.DialTimeout("tcp", apiServer, time.Second); err == nil {
		conn.Close()
		t.Errorf("kube-apiserver still listens on %s after Stop", apiServer)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("%s still exists after Stop", dir)
	}
}

func pidOf(t *testing.T, env *testenv.Env, name string) int {
	t.Helper()
	pid, ok := env.PID(name)
	if !ok {
		t.Fatalf("no %s process", name)
	}
	return pid
}
