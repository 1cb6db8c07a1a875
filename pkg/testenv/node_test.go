//go:build linux

package testenv_test

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/mumoshu/aws-secret-controller/pkg/testenv"
)

// TestNode starts a stack with a real node, runs a Pod that has a network, a Secret volume and a
// ServiceAccount token (the mounts and devices a controller Pod has), and checks that Stop leaves
// no process, mount, network namespace or network device behind.
func TestNode(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a control plane and a node")
	}
	ctx := context.Background()
	env, err := testenv.New(ctx, testenv.Options{Node: true})
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = env.Stop()
		}
	})
	kube := kubernetes.NewForConfigOrDie(env.Config)
	if _, err := kube.CoreV1().Secrets("default").Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "mounted"},
		StringData: map[string]string{"k": "v"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pod, err := kube.CoreV1().Pods("default").Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "sleeper"},
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{{
				Name: "pause", Image: testenv.PauseImage, ImagePullPolicy: corev1.PullNever,
				VolumeMounts: []corev1.VolumeMount{{Name: "secret", MountPath: "/secret"}},
			}},
			Volumes: []corev1.Volume{{Name: "secret", VolumeSource: corev1.VolumeSource{
				Secret: &corev1.SecretVolumeSource{SecretName: "mounted"},
			}}},
			TerminationGracePeriodSeconds: ptr.To[int64](30),
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var seen *corev1.Pod
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if seen, err = kube.CoreV1().Pods("default").Get(ctx, pod.Name, metav1.GetOptions{}); err == nil && seen.Status.Phase == corev1.PodRunning {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Pod not Running within 2m: %+v (err %v)\nkubelet:\n%s", seen.Status, err, env.LogTail("kubelet", 30))
		}
		time.Sleep(200 * time.Millisecond)
	}
	_, subnet, _ := net.ParseCIDR("10.244.0.0/24")
	if ip := net.ParseIP(seen.Status.PodIP); !subnet.Contains(ip) {
		t.Errorf("Pod IP %q, want one in %s", seen.Status.PodIP, subnet)
	}
	if len(seen.Spec.Volumes) < 2 {
		t.Errorf("Pod volumes %v: want the Secret and the projected ServiceAccount token", seen.Spec.Volumes)
	}

	// The Pod's end of its veth pair is on the node's bridge: Stop must remove it.
	if out, err := exec.Command("ip", "-o", "link", "show", "master", "ascbr0").CombinedOutput(); err != nil || !strings.Contains(string(out), "veth") {
		t.Errorf("no veth on the node's bridge while a Pod runs (err %v): %s", err, out)
	}

	if cgroups, _ := filepath.Glob("/sys/fs/cgroup/*/kubepods"); len(cgroups) == 0 {
		t.Error("no kubepods cgroup while a Pod runs")
	}

	dir := env.Dir
	if err := env.Stop(); err != nil {
		t.Fatal(err)
	}
	stopped = true
	for _, left := range env.NodeLeftovers() {
		t.Errorf("left after Stop: %s", left)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("%s still exists after Stop", dir)
	}
}
