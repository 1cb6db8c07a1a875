package main

// The --cluster mode's parts of the story: installing the controller as users do, and the
// garbage collector (kube-controller-manager) removing a deleted AWSSecret's Secret.

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/mumoshu/aws-secret-controller/pkg/testenv"
)

// The cluster-wide install's (manifests/).
const (
	controllerNamespace = "aws-secret-controller"
	controllerName      = "aws-secret-controller"
	controllerSelector  = "app.kubernetes.io/name=aws-secret-controller"
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
	kube := kubernetes.NewForConfigOrDie(env.Config)
	var leader, last string
	const timeout = 3 * time.Minute
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		d, err := kube.AppsV1().Deployments(controllerNamespace).Get(ctx, controllerName, metav1.GetOptions{})
		if err != nil {
			last = err.Error()
			return false, nil
		}
		pods, err := kube.CoreV1().Pods(controllerNamespace).List(ctx, metav1.ListOptions{LabelSelector: controllerSelector})
		if err != nil {
			last = err.Error()
			return false, nil
		}
		var names []string
		for _, pod := range pods.Items {
			names = append(names, pod.Name)
		}
		leader = leaseHolder(ctx, kube)
		s := d.Status
		last = fmt.Sprintf("Deployment status %+v; Pods %v; Lease holder %q", s, names, leader)
		return d.Status.ObservedGeneration >= d.Generation && s.Replicas == controllerReplicas &&
			s.UpdatedReplicas == controllerReplicas && s.ReadyReplicas == controllerReplicas &&
			len(names) == controllerReplicas && slices.Contains(names, leader), nil
	})
	if err != nil {
		return fmt.Errorf("the controller's %d replicas Ready with one holding the Lease: not within %s (%v); last seen: %s; warnings: %s",
			controllerReplicas, timeout, err, last, warnings(ctx, kube))
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

// leaseHolder returns the name of the Pod holding the controller's Lease, or "".
func leaseHolder(ctx context.Context, kube kubernetes.Interface) string {
	lease, err := kube.CoordinationV1().Leases(controllerNamespace).Get(ctx, controllerName, metav1.GetOptions{})
	if err != nil || lease.Spec.HolderIdentity == nil {
		return ""
	}
	// The identity is <hostname>_<uuid>, and a Pod's hostname is its name.
	pod, _, _ := strings.Cut(*lease.Spec.HolderIdentity, "_")
	return pod
}

// warnings summarises the controller namespace's Warning events, for errors.
func warnings(ctx context.Context, kube kubernetes.Interface) string {
	list, err := kube.CoreV1().Events(controllerNamespace).List(ctx, metav1.ListOptions{FieldSelector: "type=Warning"})
	if err != nil {
		return err.Error()
	}
	var out []string
	for _, e := range list.Items {
		out = append(out, fmt.Sprintf("%s/%s %s: %s", e.InvolvedObject.Kind, e.InvolvedObject.Name, e.Reason, e.Message))
	}
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, "; ")
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
