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
	corev1 "k8s.io/api/core/v1"
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

// TestKillRestart kills etcd and kube-apiserver and starts them again: the same address serves
// the same data, the audit log goes on across the API server's restart, and Restart refuses a
// component that still runs.
func TestKillRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a control plane")
	}
	ctx := context.Background()
	env, err := testenv.New(ctx, testenv.Options{AuditPolicy: "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\nrules:\n- level: Metadata\n  resources: [{group: \"\", resources: [configmaps]}]\n- level: None\n"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	kube := kubernetes.NewForConfigOrDie(env.Config)
	create := func(name string) {
		t.Helper()
		if _, err := kube.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
			t.Fatalf("creating %s: %v", name, err)
		}
	}
	create("before")
	if err := env.Restart(ctx, "etcd"); err == nil {
		t.Error("Restart of a running etcd: no error")
	}
	for _, c := range []string{"etcd", "kube-apiserver"} {
		pid := pidOf(t, env, c)
		if err := env.Kill(c, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		if err := env.Restart(ctx, c); err != nil {
			t.Fatal(err)
		}
		if got := pidOf(t, env, c); got == pid {
			t.Errorf("%s: same pid %d after Restart", c, got)
		}
	}
	// kube-apiserver is ready (Restart waited for /readyz); etcd behind it may take a moment more
	// to answer a write: poll.
	deadline := time.Now().Add(time.Minute)
	for {
		_, err := kube.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "after"}}, metav1.CreateOptions{})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("creating a ConfigMap after the restarts: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, err := kube.CoreV1().ConfigMaps("default").Get(ctx, "before", metav1.GetOptions{}); err != nil {
		t.Errorf("the ConfigMap written before the kills: %v", err)
	}
	events, err := env.AuditEvents()
	if err != nil {
		t.Fatal(err)
	}
	created := map[string]bool{}
	for _, ev := range events {
		if ev.Verb == "create" && ev.Resource() == "configmaps" && ev.Code() == 201 {
			created[ev.ObjectRef.Name] = true
		}
	}
	if !created["before"] || !created["after"] {
		t.Errorf("audited creates %v, want before and after (the log goes on across the restart)", created)
	}
}
