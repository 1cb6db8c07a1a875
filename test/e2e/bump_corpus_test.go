package e2e

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mumoshu/aws-secret-controller/pkg/bump"
)

// TestBumpCorpus runs the real tool against kumo over every manifest the project renders: its
// kustomize builds, the chart rendered with several values files, and its files as written.
// Each is written three times: as it is, which the tool must leave byte for byte; with an
// AWSSecret appended, in block style with comments; and the same with CRLF line ends and a BOM.
// In the last two, exactly the appended versionId changes.
func TestBumpCorpus(t *testing.T) {
	id := "e2e/bump/corpus"
	old := createSecret(t, id, fmt.Sprintf(`{"k":%q}`, newValue("corpus-old")))
	cur := putSecretValue(t, id, fmt.Sprintf(`{"k":%q}`, newValue("corpus-new")))

	corpus := map[string]string{}
	for _, dir := range []string{"manifests", "manifests/namespaced", "manifests/crd", "manifests/base"} {
		corpus["kustomize "+dir] = kubectl(t, "", "kustomize", filepath.Join(repoRoot, dir))
	}
	for name, values := range map[string]string{
		"default":         "",
		"namespaced":      "namespaceScoped: true\nnamespacePolicy: allow-list\n",
		"open":            "namespacePolicy: open\n",
		"service monitor": "serviceMonitor: {enabled: true, labels: {release: prom}}\n",
		"minimal":         "podDisruptionBudget: {enabled: false}\nmetrics: {service: {enabled: false}}\nreplicaCount: 1\nleaderElect: false\n",
	} {
		out, err := helm(t, "template", "corpus", chartDir(), "--namespace", "apps", "--values", valuesFile(t, values))
		if err != nil {
			t.Fatalf("helm template (%s): %v", name, err)
		}
		corpus["chart "+name] = out
	}
	err := filepath.WalkDir(filepath.Join(repoRoot, "manifests"), func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".yaml") {
			return err
		}
		b, err := os.ReadFile(path)
		rel, _ := filepath.Rel(repoRoot, path)
		corpus[rel] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}

	appended := "---\n# appended by the corpus test\napiVersion: mumoshu.github.io/v1alpha1\nkind: AWSSecret\nmetadata:\n  name: corpus # a comment\nspec:\n" +
		"  stringDataFrom:\n    secretsManagerSecretRef:\n      secretId: " + id + "\n      versionId: %s   # pinned\n"
	dir := t.TempDir()
	want := map[string]string{}
	skipped := 0
	i := 0
	for name, content := range corpus {
		if refs, err := bump.Find([]byte(content)); err != nil || len(refs) > 0 {
			// The examples pin secrets kumo does not hold; TestUpdateAWSSecretIDs bumps them.
			skipped++
			continue
		}
		i++
		if content != "" && !strings.HasSuffix(content, "\n") {
			content += "\n"
		}
		crlf := func(s string) string { return strings.ReplaceAll(s, "\n", "\r\n") }
		for suffix, pair := range map[string][2]string{
			"as-is":        {content, content},
			"appended":     {content + fmt.Sprintf(appended, old), content + fmt.Sprintf(appended, cur)},
			"appended-bom": {"\ufeff" + crlf(content+fmt.Sprintf(appended, old)), "\ufeff" + crlf(content+fmt.Sprintf(appended, cur))},
		} {
			file := fmt.Sprintf("%02d-%s.yaml", i, suffix)
			if err := os.WriteFile(filepath.Join(dir, file), []byte(pair[0]), 0o644); err != nil {
				t.Fatal(err)
			}
			want[file] = pair[1]
			t.Logf("%s: %s", file, name)
		}
	}
	if i < 10 {
		t.Fatalf("only %d corpus files (%d skipped)", i, skipped)
	}
	code, stdout, stderr := updateAWSSecretIDs(t, dir)
	if code != 0 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	if n := strings.Count(stdout, " -> "+cur); n != 2*i {
		t.Errorf("%d change lines, want %d:\n%s", n, 2*i, stdout)
	}
	for file, w := range want {
		got, err := os.ReadFile(filepath.Join(dir, file))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, []byte(w)) {
			t.Errorf("%s differs from what was expected", file)
		}
	}
}
