package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
)

const (
	old  = "11111111-1111-4111-8111-111111111111"
	cur  = "aaaaaaaa-1111-4111-8111-111111111111"
	tok1 = "44444444-4444-4444-8444-444444444444"
)

// current answers DescribeSecret with the version holding AWSCURRENT for each secret id, and
// counts the calls.
type current struct {
	mu       sync.Mutex
	versions map[string]string
	calls    int
}

func (c *current) DescribeSecret(_ context.Context, in *secretsmanager.DescribeSecretInput, _ ...func(*secretsmanager.Options)) (*secretsmanager.DescribeSecretOutput, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls++
	v, ok := c.versions[aws.ToString(in.SecretId)]
	if !ok {
		return nil, &smtypes.ResourceNotFoundException{Message: aws.String("Secrets Manager can't find the specified secret.")}
	}
	return &secretsmanager.DescribeSecretOutput{VersionIdsToStages: map[string][]string{v: {"AWSCURRENT"}, "prev-" + v: {"AWSPREVIOUS"}}}, nil
}

const awsSecretYAML = `apiVersion: mumoshu.github.io/v1alpha1
kind: AWSSecret
metadata:
  name: %s
spec:
  stringDataFrom:
    secretsManagerSecretRef:
      secretId: %s
      versionId: %s # pinned
`

// tree writes files under a temporary directory and returns it.
func tree(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func awsSecret(name, secretID, versionID string) string {
	return fmt.Sprintf(awsSecretYAML, name, secretID, versionID)
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func runTool(t *testing.T, api *current, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	opts, err := parseFlags(args, &stderr)
	if err != nil {
		t.Fatalf("flags %v: %v", args, err)
	}
	code := run(context.Background(), opts, api, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func TestCheckBumpCheck(t *testing.T) {
	dir := tree(t, map[string]string{
		"app/db.yaml":       awsSecret("db", "prod/db", old),
		"app/token.yml":     awsSecret("token", "prod/token", tok1) + "---\n" + awsSecret("token2", "prod/token", tok1),
		"app/notes.txt":     awsSecret("ignored", "prod/db", old),
		".git/x.yaml":       awsSecret("ignored", "prod/db", old),
		"app/kustomization": "resources: [db.yaml]\n",
	})
	api := &current{versions: map[string]string{"prod/db": cur, "prod/token": tok1}}

	code, stdout, stderr := runTool(t, api, "--check", dir)
	if code != exitBehind {
		t.Errorf("--check: exit %d, want %d (stderr %q)", code, exitBehind, stderr)
	}
	want := filepath.Join(dir, "app/db.yaml") + ":9 prod/db " + old + " -> " + cur + "\n"
	if stdout != want {
		t.Errorf("--check printed %q, want %q", stdout, want)
	}
	if api.calls != 2 {
		t.Errorf("DescribeSecret calls = %d, want 2: one per distinct secret id", api.calls)
	}
	if got := read(t, filepath.Join(dir, "app/db.yaml")); got != awsSecret("db", "prod/db", old) {
		t.Error("--check wrote the file")
	}

	code, stdout, _ = runTool(t, api, "--diff", dir)
	if code != exitCurrent || !strings.Contains(stdout, "-      versionId: "+old+" # pinned\n+      versionId: "+cur+" # pinned\n") {
		t.Errorf("--diff: exit %d, printed %q", code, stdout)
	}
	if got := read(t, filepath.Join(dir, "app/db.yaml")); got != awsSecret("db", "prod/db", old) {
		t.Error("--diff wrote the file")
	}

	code, stdout, stderr = runTool(t, api, dir)
	if code != exitCurrent || stdout != want {
		t.Errorf("bump: exit %d, printed %q (stderr %q)", code, stdout, stderr)
	}
	if got := read(t, filepath.Join(dir, "app/db.yaml")); got != awsSecret("db", "prod/db", cur) {
		t.Errorf("bumped file:\n%s", got)
	}
	if info, err := os.Stat(filepath.Join(dir, "app/db.yaml")); err != nil || info.Mode().Perm() != 0o640 {
		t.Errorf("the file's mode changed: %v %v", info.Mode(), err)
	}
	for _, untouched := range []string{"app/notes.txt", ".git/x.yaml"} {
		if got := read(t, filepath.Join(dir, untouched)); got != awsSecret("ignored", "prod/db", old) {
			t.Errorf("%s was rewritten", untouched)
		}
	}
	entries, _ := os.ReadDir(filepath.Join(dir, "app"))
	if len(entries) != 4 {
		t.Errorf("app/ holds %d entries, want the 4 files: a temporary file was left", len(entries))
	}

	code, stdout, _ = runTool(t, api, "--check", dir)
	if code != exitCurrent || stdout != "" {
		t.Errorf("--check after the bump: exit %d, printed %q", code, stdout)
	}
}

func TestErrors(t *testing.T) {
	dir := tree(t, map[string]string{
		"a.yaml":      awsSecret("db", "prod/db", old),
		"b.yaml":      awsSecret("gone", "prod/gone", old),
		"broken.yaml": "kind: [\n",
	})
	api := &current{versions: map[string]string{"prod/db": cur}}
	code, stdout, stderr := runTool(t, api, dir)
	if code != exitError {
		t.Errorf("exit %d, want %d", code, exitError)
	}
	for _, want := range []string{
		filepath.Join(dir, "b.yaml") + ":9: SecretNotFound",
		filepath.Join(dir, "broken.yaml") + ": not valid YAML, skipped",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr %q does not say %q", stderr, want)
		}
	}
	// What could be resolved is still bumped.
	if !strings.Contains(stdout, "a.yaml:9 prod/db") || read(t, filepath.Join(dir, "a.yaml")) != awsSecret("db", "prod/db", cur) {
		t.Errorf("a.yaml was not bumped: stdout %q", stdout)
	}
	if code, _, _ := runTool(t, api, filepath.Join(dir, "missing.yaml")); code != exitError {
		t.Errorf("a missing path: exit %d", code)
	}
}

func TestFlags(t *testing.T) {
	var stderr bytes.Buffer
	if _, err := parseFlags(nil, &stderr); err == nil || !strings.Contains(stderr.String(), "Usage") {
		t.Errorf("no PATH: err %v, stderr %q", err, stderr.String())
	}
	if _, err := parseFlags([]string{"--stage", "", "x"}, &stderr); err == nil {
		t.Error("an empty stage was accepted")
	}
	o, err := parseFlags([]string{"--stage", "blue", "--aws-endpoint", "http://localhost:1", "--aws-region", "eu-west-1", "a", "b"}, &stderr)
	if err != nil || o.stage != "blue" || o.aws.Endpoint != "http://localhost:1" || o.aws.Region != "eu-west-1" || len(o.paths) != 2 {
		t.Errorf("parsed %+v, %v", o, err)
	}
}
