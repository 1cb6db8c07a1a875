package testenv

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// The node's network: one bridge on the host, holding the gateway address that kube-apiserver
// and the emulator also listen on, so Pods reach both without kube-proxy or a route off the host.
const (
	// NodeName is the name the node registers as.
	NodeName = "aws-secret-controller-node"
	// NodeGateway is the host's address on the Pods' bridge. In a stack with a node, kube-apiserver
	// and the emulator listen on it (and only on it).
	NodeGateway = "10.244.0.1"
	// PauseImage is the sandbox image containerd runs for every Pod; `make pause-image` builds it
	// into bin/pause-image.tar, which New imports.
	PauseImage = "registry.k8s.io/pause:3.10"

	nodeBridge = "ascbr0"
	nodeSubnet = "10.244.0.0/24"
	// nodeLock is held by the one node that may run on this machine at a time: the bridge, its
	// subnet, kubelet's cgroups and the host's network namespaces are machine-wide.
	nodeLock = "aws-secret-controller-node.lock"
)

// ShippedImage is the image the shipped manifests pin (manifests/base/kustomization.yaml).
const ShippedImage = "ghcr.io/mumoshu/aws-secret-controller"

// WriteInstallOverlay writes to dir a kustomization over a shipped variant (the path of
// manifests/ or manifests/namespaced) that changes only what this stack needs: the image (a
// local build, e.g. from ImageName), the emulator's endpoints and test credentials, and the API
// server's address (without kube-proxy the kubernetes Service's IP does not route; container
// environment wins over the Service's). namespace, when set, is the namespaced variant's. With
// image empty, the overlay leaves the image to the variant (a user's overlay that names it).
func (e *Env) WriteInstallOverlay(dir, variant, namespace, image string) error {
	base, err := filepath.Rel(dir, variant)
	if err != nil {
		return err
	}
	name, tag, env, err := e.install(image)
	if err != nil {
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "resources:\n- %s\n", base)
	if namespace != "" {
		fmt.Fprintf(&b, "namespace: %s\n", namespace)
	}
	if name != "" {
		fmt.Fprintf(&b, "images:\n- name: %s\n  newName: %s\n  newTag: %q\n", ShippedImage, name, tag)
	}
	b.WriteString("configMapGenerator:\n- name: aws-secret-controller\n  behavior: merge\n  literals:\n")
	for _, kv := range env {
		fmt.Fprintf(&b, "  - %s\n", kv)
	}
	return os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(b.String()), 0o644)
}

// WriteHelmValues writes a values file for charts/aws-secret-controller that runs image (as
// ImageName names it) and reaches this stack, as WriteInstallOverlay does for the kustomize
// install: only the image and the environment change.
func (e *Env) WriteHelmValues(path, image string) error {
	name, tag, env, err := e.install(image)
	if err != nil {
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "image:\n  repository: %s\n  tag: %q\naws:\n  region: %q\nextraEnv:\n", name, tag, Region)
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		if k != "AWS_REGION" { // the chart's aws.region sets it
			fmt.Fprintf(&b, "- name: %s\n  value: %q\n", k, v)
		}
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

// install splits image into its repository and tag, and returns what a controller Pod needs to
// reach this stack: the emulator's endpoint and credentials, and the API server's address (the
// node's Pods cannot route to the kubernetes Service).
func (e *Env) install(image string) (name, tag string, env []string, err error) {
	host, port, err := net.SplitHostPort(strings.TrimPrefix(e.APIServerURL, "https://"))
	if err != nil {
		return "", "", nil, err
	}
	env = append(e.AWSEnv(), "KUBERNETES_SERVICE_HOST="+host, "KUBERNETES_SERVICE_PORT="+port)
	if image == "" {
		return "", "", env, nil
	}
	slash := strings.LastIndex(image, "/")
	colon := strings.LastIndex(image, ":")
	if colon < slash {
		return "", "", nil, fmt.Errorf("image %q has no tag", image)
	}
	return image[:colon], image[colon+1:], env, nil
}

// ImageName returns the name an OCI image archive gives its image: the index's
// io.containerd.image.name annotation, which `ctr images import` names it by.
func ImageName(archive string) (string, error) {
	f, err := os.Open(archive)
	if err != nil {
		return "", err
	}
	defer f.Close()
	r := tar.NewReader(f)
	for {
		h, err := r.Next()
		if errors.Is(err, io.EOF) {
			return "", fmt.Errorf("%s has no index.json", archive)
		}
		if err != nil {
			return "", err
		}
		if filepath.Clean(h.Name) != "index.json" {
			continue
		}
		var index struct {
			Manifests []struct {
				Annotations map[string]string `json:"annotations"`
			} `json:"manifests"`
		}
		if err := json.NewDecoder(r).Decode(&index); err != nil {
			return "", fmt.Errorf("%s: index.json: %w", archive, err)
		}
		for _, m := range index.Manifests {
			if name := m.Annotations["io.containerd.image.name"]; name != "" {
				return name, nil
			}
		}
		return "", fmt.Errorf("%s: index.json names no image", archive)
	}
}

// The shipped install's names (manifests/): its Deployment, Lease and Pod label.
const (
	ControllerName     = "aws-secret-controller"
	ControllerSelector = "app.kubernetes.io/name=aws-secret-controller"
)

// ControllerLeader returns the name of the Pod holding the controller's Lease in namespace, or
// "" when none does.
func ControllerLeader(ctx context.Context, kube kubernetes.Interface, namespace string) string {
	lease, err := kube.CoordinationV1().Leases(namespace).Get(ctx, ControllerName, metav1.GetOptions{})
	if err != nil || lease.Spec.HolderIdentity == nil {
		return ""
	}
	// The identity is <hostname>_<uuid>, and a Pod's hostname is its name.
	pod, _, _ := strings.Cut(*lease.Spec.HolderIdentity, "_")
	return pod
}

// WaitControllerReady waits until the installed controller's Deployment in namespace has exactly
// replicas Pods, all of its current template and Ready, and (with any Pods) one of them holds the
// Lease; it returns that leader. On timeout the error says what was seen last, with the
// namespace's Warning events.
func WaitControllerReady(ctx context.Context, kube kubernetes.Interface, namespace string, replicas int32, timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	for {
		leader, seen, ready := controllerReady(ctx, kube, namespace, replicas)
		if ready {
			return leader, nil
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("%d controller replicas Ready in %s with one holding the Lease: not within %s; last seen: %s; warnings: %s",
				replicas, namespace, timeout, seen, warningEvents(ctx, kube, namespace))
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func controllerReady(ctx context.Context, kube kubernetes.Interface, namespace string, replicas int32) (leader, seen string, ready bool) {
	d, err := kube.AppsV1().Deployments(namespace).Get(ctx, ControllerName, metav1.GetOptions{})
	if err != nil {
		return "", err.Error(), false
	}
	pods, err := kube.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: ControllerSelector})
	if err != nil {
		return "", err.Error(), false
	}
	var names []string
	for _, pod := range pods.Items {
		names = append(names, pod.Name)
	}
	leader = ControllerLeader(ctx, kube, namespace)
	s := d.Status
	seen = fmt.Sprintf("Deployment status %+v; Pods %v; Lease holder %q", s, names, leader)
	ready = s.ObservedGeneration >= d.Generation && s.Replicas == replicas && s.UpdatedReplicas == replicas &&
		s.ReadyReplicas == replicas && len(names) == int(replicas) && (replicas == 0 || slices.Contains(names, leader))
	return leader, seen, ready
}

// warningEvents summarises a namespace's Warning events, for failure messages.
func warningEvents(ctx context.Context, kube kubernetes.Interface, namespace string) string {
	list, err := kube.CoreV1().Events(namespace).List(ctx, metav1.ListOptions{FieldSelector: "type=Warning"})
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
