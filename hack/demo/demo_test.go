package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

// TestDemo runs `make demo` without waiting for Ctrl-C and checks what it shows a user.
func TestDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a control plane")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var out bytes.Buffer
	if err := run(ctx, options{repo: "../..", once: true}, &out); err != nil {
		t.Fatalf("demo failed: %v\n%s", err, out.String())
	}
	shown := out.String()
	for _, want := range []string{"foo: bar", "foo: baz", "Synced", "prod/mysecret", "export KUBECONFIG=", "AWS_ENDPOINT_URL_SECRETS_MANAGER=http://127.0.0.1:"} {
		if !strings.Contains(shown, want) {
			t.Errorf("the demo does not show %q:\n%s", want, shown)
		}
	}
	if strings.Index(shown, "foo: bar") > strings.Index(shown, "foo: baz") {
		t.Errorf("the rollout is shown before the first sync:\n%s", shown)
	}
}
