package main

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mumoshu/aws-secret-controller/pkg/testenv"
)

// TestDemo runs `make demo` without waiting for Ctrl-C and checks what it shows a user.
func TestDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a control plane")
	}
	shown := demo(t, options{repo: "../..", once: true}, 3*time.Minute)
	for _, want := range []string{"foo: bar", "foo: baz", "Synced", "prod/mysecret", "export KUBECONFIG=", "AWS_ENDPOINT_URL_SECRETS_MANAGER=http://127.0.0.1:"} {
		if !strings.Contains(shown, want) {
			t.Errorf("the demo does not show %q:\n%s", want, shown)
		}
	}
	inOrder(t, shown, "foo: bar", "foo: baz")
}

// TestDemoCluster runs `make demo-cluster` without waiting for Ctrl-C: the same story with the
// controller's image installed by the shipped manifests as two Pods on a local node. It needs
// root and, in bin/, what `make node-tools pause-image image` builds; without them it fails.
func TestDemoCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a control plane and a node")
	}
	// The node waits for any other node on the machine (a node test) to stop first.
	shown := demo(t, options{repo: "../..", once: true, cluster: true}, 15*time.Minute)
	for _, want := range []string{
		"foo: bar", "foo: baz", "Synced", "prod/mysecret", "export KUBECONFIG=",
		"AWS_ENDPOINT_URL_SECRETS_MANAGER=http://" + testenv.NodeGateway + ":",
		"customresourcedefinition.apiextensions.k8s.io/awssecrets.mumoshu.github.io serverside-applied",
		"deployment.apps/aws-secret-controller created",
		"ownerReference AWSSecret example (controller: true, blockOwnerDeletion: true)",
		`awssecret.mumoshu.github.io "example" deleted`,
		`secrets "example" not found`,
	} {
		if !strings.Contains(shown, want) {
			t.Errorf("the demo does not show %q:\n%s", want, shown)
		}
	}
	inOrder(t, shown, "foo: bar", "foo: baz", `secrets "example" not found`)

	// `kubectl get pods -o wide`: both replicas Running and Ready on the node, one the leader.
	var pods []string
	for _, line := range strings.Split(shown, "\n") {
		f := strings.Fields(line)
		if len(f) > 2 && strings.HasPrefix(f[0], "aws-secret-controller-") && f[1] == "1/1" && f[2] == "Running" && strings.Contains(line, testenv.NodeName) {
			pods = append(pods, f[0])
		}
	}
	if len(pods) != 2 {
		t.Errorf("the demo shows %d controller Pods Ready on %s, want 2:\n%s", len(pods), testenv.NodeName, shown)
	}
	_, after, _ := strings.Cut(shown, "\nleader: ")
	if leader, _, _ := strings.Cut(after, " "); leader == "" || !slices.Contains(pods, leader) {
		t.Errorf("the demo shows leader %q, not one of the Pods %v:\n%s", leader, pods, shown)
	}
}

// demo runs the demo once, within timeout (and the test binary's deadline, less a minute to
// stop the stack and report), and returns what it printed.
func demo(t *testing.T, o options, timeout time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	if d, ok := t.Deadline(); ok && d.Add(-time.Minute).Before(deadline) {
		deadline = d.Add(-time.Minute)
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	var out bytes.Buffer
	if err := run(ctx, o, &out); err != nil {
		t.Fatalf("demo failed: %v\n%s", err, out.String())
	}
	return out.String()
}

// inOrder checks that shown shows each of wants, in that order.
func inOrder(t *testing.T, shown string, wants ...string) {
	t.Helper()
	for i := 1; i < len(wants); i++ {
		if strings.Index(shown, wants[i-1]) > strings.Index(shown, wants[i]) {
			t.Errorf("%q is shown before %q:\n%s", wants[i], wants[i-1], shown)
		}
	}
}
