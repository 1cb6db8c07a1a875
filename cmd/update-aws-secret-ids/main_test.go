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

	"github.com/mumoshu/aws-secret-controller/pkg/bump"
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

func runTool(t *testing.T, api bump.Describer, args ...string) (int, string, string) {
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
		filepath.Join(dir, "broken.yaml") + ": not valid YAML",
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

// staged answers DescribeSecret from a table of each secret's versions and their stages.
type staged map[string]map[string][]string

func (s staged) DescribeSecret(_ context.Context, in *secretsmanager.DescribeSecretInput, _ ...func(*secretsmanager.Options)) (*secretsmanager.DescribeSecretOutput, error) {
	versions, ok := s[aws.ToString(in.SecretId)]
	if !ok {
		return nil, &smtypes.ResourceNotFoundException{Message: aws.String("Secrets Manager can't find the specified secret.")}
	}
	return &secretsmanager.DescribeSecretOutput{Name: in.SecretId, VersionIdsToStages: versions}, nil
}

// TestStage pins the version that holds --stage, AWSCURRENT when it is not given: a file pinned
// at AWSCURRENT is current without the flag and behind for another stage, AWS's own or a custom
// label, and is bumped to that stage's version; a stage no version holds is an error.
func TestStage(t *testing.T) {
	const pending, labelled = "dddddddd-1111-4111-8111-111111111111", "eeeeeeee-1111-4111-8111-111111111111"
	api := staged{"prod/db": {old: {"AWSPREVIOUS"}, cur: {"AWSCURRENT"}, pending: {"AWSPENDING"}, labelled: {"release-2024"}}}
	for _, tc := range []struct {
		name       string
		args       []string
		code       int
		stdout     string // with FILE for the file's path
		stderr     string // a part of it, with FILE for the file's path
		pinnedThen string // the versionId in the file afterwards
	}{
		{"no --stage is AWSCURRENT", []string{"--check"}, exitCurrent, "", "", cur},
		{"--stage AWSCURRENT", []string{"--check", "--stage", "AWSCURRENT"}, exitCurrent, "", "", cur},
		{"--stage AWSPENDING", []string{"--check", "--stage", "AWSPENDING"}, exitBehind, "FILE:9 prod/db " + cur + " -> " + pending + "\n", "", cur},
		{"--stage AWSPREVIOUS", []string{"--check", "--stage", "AWSPREVIOUS"}, exitBehind, "FILE:9 prod/db " + cur + " -> " + old + "\n", "", cur},
		{"a custom label", []string{"--check", "--stage", "release-2024"}, exitBehind, "FILE:9 prod/db " + cur + " -> " + labelled + "\n", "", cur},
		{"a stage no version holds", []string{"--check", "--stage", "green"}, exitError, "", "FILE:9: no version of secret prod/db has the stage green", cur},
		{"bump to AWSPENDING", []string{"--stage", "AWSPENDING"}, exitCurrent, "FILE:9 prod/db " + cur + " -> " + pending + "\n", "", pending},
		{"bump to a custom label", []string{"--stage", "release-2024"}, exitCurrent, "FILE:9 prod/db " + cur + " -> " + labelled + "\n", "", labelled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(tree(t, map[string]string{"db.yaml": awsSecret("db", "prod/db", cur)}), "db.yaml")
			code, stdout, stderr := runTool(t, api, append(tc.args, path)...)
			if code != tc.code {
				t.Errorf("exit %d, want %d (stderr %q)", code, tc.code, stderr)
			}
			if want := strings.ReplaceAll(tc.stdout, "FILE", path); stdout != want {
				t.Errorf("printed %q, want %q", stdout, want)
			}
			if want := strings.ReplaceAll(tc.stderr, "FILE", path); !strings.Contains(stderr, want) || (want == "") != (stderr == "") {
				t.Errorf("stderr %q, want it to say %q", stderr, want)
			}
			if got, want := read(t, path), awsSecret("db", "prod/db", tc.pinnedThen); got != want {
				t.Errorf("the file afterwards:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

// problemYAML is an AWSSecret with a reference that can be bumped (prod/token, line 10) and
// one (prod/db, line 14) whose versionId is written as %[1]s, pinned at `old`, which its anchor
// holds too.
const problemYAML = `apiVersion: mumoshu.github.io/v1alpha1
kind: AWSSecret
metadata:
  name: app
  annotations: {pinned: &pinned ` + old + `}
spec:
  dataFrom:
    secretsManagerSecretRef:
      secretId: prod/token
      versionId: %[2]s
  stringDataFrom:
    secretsManagerSecretRef:
      secretId: prod/db
      versionId: %[1]s
`

// TestReferencesThatCannotBeBumpedFail: a reference that is behind but written so that it cannot
// be rewritten in place (a block scalar, an alias, a tag, an escape sequence) is an error in every
// mode, not skipped: exit 2 (not 1 or 0), its file, line and reason on stderr, and it stays as
// written. The file's other reference, behind or current, is handled as ever: shown as behind,
// diffed or bumped.
func TestReferencesThatCannotBeBumpedFail(t *testing.T) {
	const tokNew = "55555555-5555-4555-8555-555555555555"
	api := &current{versions: map[string]string{"prod/db": cur, "prod/token": tokNew}}
	const blockOrTag, notScalar, escaped = "versionId is written as a block scalar or with a tag", "versionId is not a plain or quoted scalar", "not its value as written"
	for _, ref := range []struct{ name, yaml, reason string }{
		{"literal block scalar", "|\n        " + old, blockOrTag},
		{"literal block scalar, stripped", "|-\n        " + old, blockOrTag},
		{"folded block scalar", ">-\n        " + old, blockOrTag},
		{"alias", "*pinned", notScalar},
		{"tag", "!!str " + old, blockOrTag},
		{"escape sequence", `"\x31` + old[1:] + `"`, escaped},
	} {
		for _, other := range []struct{ name, pinned string }{{"other behind", tok1}, {"other current", tokNew}} {
			for _, mode := range []string{"--check", "--diff", "bump"} {
				t.Run(ref.name+"/"+other.name+"/"+mode, func(t *testing.T) {
					before := fmt.Sprintf(problemYAML, ref.yaml, other.pinned)
					// Find, in its field order (stringDataFrom, dataFrom), reports prod/db's problem.
					refs, err := bump.Find([]byte(before))
					reason := ref.reason
					if err != nil || len(refs) != 2 || refs[0].SecretID != "prod/db" || refs[0].Line != 14 || !strings.Contains(refs[0].Problem, ref.reason) {
						t.Errorf("bump.Find: %+v, err %v; want prod/db's reference at line 14 reported as %q, then prod/token's", refs, err, ref.reason)
					} else {
						reason = refs[0].Problem // in full
					}
					path := filepath.Join(tree(t, map[string]string{"app.yaml": before}), "app.yaml")
					args := []string{mode, path}
					if mode == "bump" {
						args = args[1:]
					}
					code, stdout, stderr := runTool(t, api, args...)

					if code != exitError {
						t.Errorf("exit %d, want %d (stderr %q)", code, exitError, stderr)
					}
					problem := fmt.Sprintf("%s:14: prod/db is behind (%s) but cannot be bumped: %s\n", path, cur, reason)
					change, after := "", other.pinned
					if other.pinned != tokNew {
						change = path + ":10 prod/token " + tok1 + " -> " + tokNew + "\n"
					}
					wantStdout, wantStderr := change, problem
					switch mode {
					case "--diff":
						wantStdout, wantStderr = "", problem+change // the diff is checked below
					case "bump":
						after = tokNew
					}
					if mode == "--diff" && change != "" {
						if d := "-      versionId: " + tok1 + "\n+      versionId: " + tokNew + "\n"; !strings.Contains(stdout, d) || strings.Count(stdout, "\n+ ") != 1 {
							t.Errorf("--diff printed %q, want only prod/token's change", stdout)
						}
					} else if stdout != wantStdout {
						t.Errorf("stdout %q, want %q", stdout, wantStdout)
					}
					if stderr != wantStderr {
						t.Errorf("stderr %q, want %q", stderr, wantStderr)
					}
					if got, want := read(t, path), fmt.Sprintf(problemYAML, ref.yaml, after); got != want {
						t.Errorf("the file afterwards:\n%s\nwant:\n%s", got, want)
					}
				})
			}
		}
	}
}

func TestConcurrencyFlag(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want int
	}{
		{[]string{"x"}, 8}, // the documented default (docs/bumping.md)
		{[]string{"--concurrency", "3", "x"}, 3},
		{[]string{"--concurrency", "1", "x"}, 1},
	} {
		var stderr bytes.Buffer
		if o, err := parseFlags(tc.args, &stderr); err != nil || o.concurrency != tc.want {
			t.Errorf("%v: concurrency %d (err %v), want %d", tc.args, o.concurrency, err, tc.want)
		}
	}
}
