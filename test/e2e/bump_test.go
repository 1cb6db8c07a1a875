package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mumoshu/aws-secret-controller/test/testutil"
)

// recipeVersionID is the versionId manifests/example/rollout pins.
const recipeVersionID = "c43e66cb-d0fe-44c5-9b7e-d450441a04be"

// toolAgent is how the emulator's log names the tool's requests (its User-Agent's app id).
const toolAgent = "app/update-aws-secret-ids"

func updateAWSSecretIDs(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	return testutil.UpdateAWSSecretIDs(t, env.BinDir, env.AWSEnv(), args...)
}

func emulatorToolCalls(t *testing.T, operation string) int {
	t.Helper()
	n, err := env.EmulatorRequests(operation, toolAgent)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// readTree returns every file under dir by its relative path.
func readTree(t *testing.T, dir string) map[string]string {
	t.Helper()
	files := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		rel, _ := filepath.Rel(dir, path)
		files[rel] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// TestUpdateAWSSecretIDs runs the tool against kumo over a copy of the rollout recipe and a
// second AWSSecret that is already current: --check fails, a run rewrites exactly one line,
// --check passes; the tool only ever called DescribeSecret, once per distinct secret id per run;
// and the recipe renders the new versionId into the names of the AWSSecret and of the Secret the
// Deployment's Pods read.
func TestUpdateAWSSecretIDs(t *testing.T) {
	appID, tokenID := "e2e/bump/app", "e2e/bump/token"
	old := createSecret(t, appID, fmt.Sprintf(`{"password":%q}`, newValue("bump-old")))
	current := putSecretValue(t, appID, fmt.Sprintf(`{"password":%q}`, newValue("bump-new")))
	token := createSecret(t, tokenID, newValue("bump-token"))

	dir := t.TempDir()
	testutil.CopyDir(t, filepath.Join(repoRoot, "manifests", "example", "rollout"), filepath.Join(dir, "rollout"),
		"prod/app", appID, recipeVersionID, old)
	// The second file: data entries in flow style, CRLF line ends, a comment, already current.
	tokenYAML := strings.ReplaceAll(fmt.Sprintf(`apiVersion: mumoshu.github.io/v1alpha1
kind: AWSSecret
metadata: {name: token}
spec:
  data:
  - {key: token, secretsManagerSecretRef: {secretId: %s, versionId: '%s'}}  # current
`, tokenID, token), "\n", "\r\n")
	if err := os.WriteFile(filepath.Join(dir, "token.yaml"), []byte(tokenYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	before := readTree(t, dir)
	describes, reads := emulatorToolCalls(t, "DescribeSecret"), emulatorToolCalls(t, "GetSecretValue")

	awsSecretFile := filepath.Join(dir, "rollout", "awssecret.yaml")
	change := fmt.Sprintf("%s:10 %s %s -> %s\n", awsSecretFile, appID, old, current)
	code, stdout, stderr := updateAWSSecretIDs(t, "--check", dir)
	if code != 1 || stdout != change {
		t.Errorf("--check: exit %d, stdout %q, want 1 and %q (stderr %q)", code, stdout, change, stderr)
	}
	if got := readTree(t, dir); fmt.Sprint(got) != fmt.Sprint(before) {
		t.Error("--check wrote files")
	}

	code, stdout, stderr = updateAWSSecretIDs(t, dir)
	if code != 0 || stdout != change {
		t.Errorf("bump: exit %d, stdout %q, want 0 and %q (stderr %q)", code, stdout, change, stderr)
	}
	after := readTree(t, dir)
	for name, content := range before {
		if name == "rollout/awssecret.yaml" {
			continue
		}
		if after[name] != content {
			t.Errorf("%s changed", name)
		}
	}
	wantLines := strings.Split(before["rollout/awssecret.yaml"], "\n")
	gotLines := strings.Split(after["rollout/awssecret.yaml"], "\n")
	changed := 0
	for i := range wantLines {
		if i < len(gotLines) && gotLines[i] != wantLines[i] {
			changed++
			if gotLines[i] != strings.Replace(wantLines[i], old, current, 1) {
				t.Errorf("line %d became %q", i+1, gotLines[i])
			}
		}
	}
	if changed != 1 || len(gotLines) != len(wantLines) {
		t.Errorf("%d lines changed of %d (now %d), want exactly 1", changed, len(wantLines), len(gotLines))
	}

	if code, stdout, stderr = updateAWSSecretIDs(t, "--check", dir); code != 0 || stdout != "" {
		t.Errorf("--check after the bump: exit %d, stdout %q (stderr %q)", code, stdout, stderr)
	}
	// Three runs over two distinct secret ids; never a read of a value.
	if got := emulatorToolCalls(t, "DescribeSecret") - describes; got != 6 {
		t.Errorf("DescribeSecret calls = %d, want 6: one per distinct secret id per run", got)
	}
	if got := emulatorToolCalls(t, "GetSecretValue") - reads; got != 0 {
		t.Errorf("GetSecretValue calls by the tool = %d, want 0", got)
	}

	// The recipe names the AWSSecret, and the Secret the Deployment's Pods read, after the
	// bumped versionId.
	rendered := kubectl(t, "", "kustomize", filepath.Join(dir, "rollout"))
	if want := "name: app." + current + "\n"; strings.Count(rendered, want) != 2 {
		t.Errorf("the rendered recipe does not name both the AWSSecret and the Pods' Secret %q:\n%s", want, rendered)
	}
	if strings.Contains(rendered, old) {
		t.Errorf("the rendered recipe still names the old version:\n%s", rendered)
	}
}

// TestUpdateAWSSecretIDsErrors: an unknown secret and a file that is not YAML are reported with
// their file (and line), the exit status is 2, and the other files are still bumped.
func TestUpdateAWSSecretIDsErrors(t *testing.T) {
	id := "e2e/bump-errors/app"
	old := createSecret(t, id, fmt.Sprintf(`{"password":%q}`, newValue("bump-errors-old")))
	current := putSecretValue(t, id, fmt.Sprintf(`{"password":%q}`, newValue("bump-errors-new")))
	dir := t.TempDir()
	testutil.CopyDir(t, filepath.Join(repoRoot, "manifests", "example", "rollout"), filepath.Join(dir, "good"), "prod/app", id, recipeVersionID, old)
	testutil.CopyDir(t, filepath.Join(repoRoot, "manifests", "example", "rollout"), filepath.Join(dir, "gone"), "prod/app", "e2e/bump-errors/gone")
	if err := os.WriteFile(filepath.Join(dir, "broken.yaml"), []byte("kind: [\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := updateAWSSecretIDs(t, dir)
	if code != 2 {
		t.Errorf("exit %d, want 2", code)
	}
	for _, want := range []string{
		filepath.Join(dir, "gone", "awssecret.yaml") + ":10: SecretNotFound",
		filepath.Join(dir, "broken.yaml") + ": not valid YAML",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr does not say %q:\n%s", want, stderr)
		}
	}
	if got := readTree(t, dir)["good/awssecret.yaml"]; !strings.Contains(got, "versionId: "+current) {
		t.Errorf("the good file was not bumped:\n%s", got)
	}
}
