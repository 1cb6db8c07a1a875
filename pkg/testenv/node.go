package testenv

import (
	"archive/tar"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
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
// environment wins over the Service's). namespace, when set, is the namespaced variant's.
func (e *Env) WriteInstallOverlay(dir, variant, namespace, image string) error {
	base, err := filepath.Rel(dir, variant)
	if err != nil {
		return err
	}
	slash := strings.LastIndex(image, "/")
	colon := strings.LastIndex(image, ":")
	if colon < slash {
		return fmt.Errorf("image %q has no tag", image)
	}
	host, port, err := net.SplitHostPort(strings.TrimPrefix(e.APIServerURL, "https://"))
	if err != nil {
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "resources:\n- %s\n", base)
	if namespace != "" {
		fmt.Fprintf(&b, "namespace: %s\n", namespace)
	}
	fmt.Fprintf(&b, "images:\n- name: %s\n  newName: %s\n  newTag: %q\n", ShippedImage, image[:colon], image[colon+1:])
	b.WriteString("configMapGenerator:\n- name: aws-secret-controller\n  behavior: merge\n  literals:\n")
	for _, kv := range append(e.AWSEnv(), "KUBERNETES_SERVICE_HOST="+host, "KUBERNETES_SERVICE_PORT="+port) {
		fmt.Fprintf(&b, "  - %s\n", kv)
	}
	return os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(b.String()), 0o644)
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
