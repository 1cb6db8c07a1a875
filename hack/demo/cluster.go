package main

// The --cluster mode's parts of the story: installing the controller as users do, and the
// garbage collector (kube-controller-manager) removing a deleted AWSSecret's Secret.

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/mumoshu/aws-secret-controller/pkg/testenv"
)

// The cluster-wide install's (manifests/).
const (
	controllerNamespace = "aws-secret-controller"
	controllerReplicas  = 2
)

// install applies the CRD and the shipped manifests, through an overlay that sets the local
// image and what the local stack needs, waits for both replicas to be Ready and one to hold the
// Lease, and shows the Pods and the leader.
func install(ctx context.Context, out io.Writer, step func(string, ...any), env *testenv.Env, repo, image string) error {
	kubectl := func(stdin string, args ...string) (string, error) { return env.Kubectl(ctx, stdin, args...) }
	step("Installing the CRD, then the controller with the shipped manifests (kubectl apply -k), through an\n    overlay that sets only the local image %s, the emulator's endpoint and the API server's address", image)
	dir := filepath.Join(env.Dir, "install")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := env.WriteInstallOverlay(dir, filepath.Join(repo, "manifests"), "", image); err != nil {
		return err
	}
	overlay, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "$ cat %s\n%s", filepath.Join(dir, "kustomization.yaml"), overlay)
	var applied time.Time
	for _, c := range []struct {
		shown string
		args  []string
	}{
		{"apply --server-side -k manifests/crd", []string{"apply", "--server-side", "-k", filepath.Join(repo, "manifests", "crd")}},
		{"wait --for=condition=Established crd/awssecrets.mumoshu.github.io", []string{"wait", "--for=condition=Established", "crd/awssecrets.mumoshu.github.io"}},
		{"apply -k " + dir, []string{"apply", "-k", dir}},
	} {
		applied = time.Now()
		shown, err := kubectl("", c.args...)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "$ kubectl %s\n%s", c.shown, shown)
	}

	step("Waiting for the Deployment's %d replicas to be Ready and one of them to take the Lease", controllerReplicas)
	leader, err := testenv.WaitControllerReady(ctx, kubernetes.NewForConfigOrDie(env.Config), controllerNamespace, controllerReplicas, 3*time.Minute)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "Ready %s after kubectl apply\n", time.Since(applied).Round(100*time.Millisecond))
	for _, c := range []string{"get pods -n " + controllerNamespace + " -o wide", "get lease -n " + controllerNamespace} {
		shown, err := kubectl("", strings.Fields(c)...)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "$ kubectl %s\n%s", c, shown)
	}
	fmt.Fprintf(out, "leader: %s (it syncs; the other replica stands by to take the Lease over)\n", leader)
	return nil
}

// collectGarbage deletes the example AWSSecret in the foreground: it stays, marked for deletion,
// until the garbage collector has deleted the Secret it owns (the controller's ownerReference
// blocks the owner's deletion), and kubectl waits for that.
func collectGarbage(ctx context.Context, out io.Writer, step func(string, ...any), kube kubernetes.Interface,
	kubectl func(string, ...string) (string, error)) error {
	step("Deleting the AWSSecret: the garbage collector (kube-controller-manager) deletes the Secret it owns.\n" +
		"    On a new cluster it first discovers the new CRD: this can take up to 30s")
	secret, err := kube.CoreV1().Secrets("default").Get(ctx, "example", metav1.GetOptions{})
	if err != nil {
		return err
	}
	for _, ref := range secret.OwnerReferences {
		fmt.Fprintf(out, "Secret example: ownerReference %s %s (controller: %t, blockOwnerDeletion: %t)\n",
			ref.Kind, ref.Name, ref.Controller != nil && *ref.Controller, ref.BlockOwnerDeletion != nil && *ref.BlockOwnerDeletion)
	}
	began := time.Now()
	deleted, err := kubectl("", "delete", "awssecret", "example", "-n", "default", "--cascade=foreground", "--timeout=2m")
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "$ kubectl delete awssecret example --cascade=foreground   # returns once the Secret is gone too\n%s(%s)\n",
		deleted, time.Since(began).Round(100*time.Millisecond))
	// What a user sees now: kubectl fails, saying so.
	shown, err := kubectl("", "get", "secret", "example", "-n", "default")
	if err == nil {
		return fmt.Errorf("the Secret example is still there after its AWSSecret was deleted:\n%s", shown)
	}
	if !strings.Contains(shown, "NotFound") {
		return err
	}
	fmt.Fprintf(out, "$ kubectl get secret example\n%s", shown)
	return nil
}
