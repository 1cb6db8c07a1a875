package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"unicode"

	yaml "go.yaml.in/yaml/v3"

	"github.com/mumoshu/aws-secret-controller/test/testutil"
)

// The documentation's pages: the README, docs/ and the chart's README.
func docPages(t *testing.T) []string {
	t.Helper()
	pages, err := filepath.Glob(filepath.Join(repoRoot, "docs", "*.md"))
	if err != nil || len(pages) == 0 {
		t.Fatalf("docs/*.md: %v, %d pages", err, len(pages))
	}
	return append(pages, filepath.Join(repoRoot, "README.md"), filepath.Join(repoRoot, "charts", "aws-secret-controller", "README.md"))
}

// block is a fenced code block of a page.
type block struct {
	page string
	testutil.CodeBlock
}

func (b block) String() string {
	rel, _ := filepath.Rel(repoRoot, b.page)
	return fmt.Sprintf("%s:%d", rel, b.Line)
}

// parsePage splits a page into its fenced blocks and its prose (the lines outside them).
func parsePage(t *testing.T, page string) (blocks []block, prose []string) {
	t.Helper()
	cbs, prose, err := testutil.ParseMarkdown(page)
	if err != nil {
		t.Fatal(err)
	}
	for _, cb := range cbs {
		blocks = append(blocks, block{page, cb})
	}
	return blocks, prose
}

// TestDocs checks the documentation against the real components: every YAML example that is a
// Kubernetes object is sent to the API server (with the CRD installed) as a server-side dry run,
// so a field renamed in the API fails here; every `update-aws-secret-ids` command in a shell
// example runs against the emulator over files it names; every relative link leads to a file,
// and every anchor to a heading of its page.
func TestDocs(t *testing.T) {
	pages := docPages(t)
	var blocks []block
	prose := map[string][]string{}
	for _, p := range pages {
		b, lines := parsePage(t, p)
		blocks = append(blocks, b...)
		prose[p] = lines
	}

	t.Run("YAML examples", func(t *testing.T) {
		ns := newNamespace(t, "docs-examples")
		objects := 0
		for _, b := range blocks {
			if b.Lang != "yaml" {
				continue
			}
			dec := yaml.NewDecoder(strings.NewReader(b.Text))
			for {
				var doc map[string]any
				err := dec.Decode(&doc)
				if err != nil {
					if !errors.Is(err, io.EOF) {
						t.Errorf("%s: not YAML: %v", b, err)
					}
					break
				}
				kind, _ := doc["kind"].(string)
				if _, ok := doc["apiVersion"]; !ok || kind == "" || kind == "Kustomization" {
					continue // a kustomization, values or a workflow: not an object of the API
				}
				objects++
				if meta, ok := doc["metadata"].(map[string]any); ok {
					delete(meta, "namespace")
				}
				out, err := yaml.Marshal(doc)
				if err != nil {
					t.Fatal(err)
				}
				if res, err := env.Kubectl(context.Background(), string(out), "apply", "--dry-run=server", "-n", ns, "-f", "-"); err != nil {
					t.Errorf("%s: %s refused by the API server (server-side dry run): %v\n%s", b, kind, err, res)
				}
			}
		}
		if objects < 5 {
			t.Errorf("%d Kubernetes objects in the docs' YAML examples: the extraction is broken", objects)
		}
	})

	t.Run("update-aws-secret-ids examples", func(t *testing.T) {
		secretID := "docs/bump"
		old := createSecret(t, secretID, `{"k":"v1"}`)
		current := putSecretValue(t, secretID, `{"k":"v2"}`)
		ran := 0
		for _, b := range blocks {
			if b.Lang != "sh" {
				continue
			}
			for _, line := range strings.Split(b.Text, "\n") {
				if !strings.HasPrefix(line, "update-aws-secret-ids ") {
					continue
				}
				cmd, _, _ := strings.Cut(line, "#")
				args := strings.Fields(cmd)[1:]
				ran++
				t.Run(fmt.Sprintf("%s %s", b, strings.Join(args, " ")), func(t *testing.T) {
					// The paths the command names are made under a temporary folder, each with an
					// AWSSecret that pins the old version.
					dir := t.TempDir()
					var paths []string
					for i, a := range args {
						a = strings.Trim(a, "'\"")
						args[i] = a
						if strings.HasPrefix(a, "-") || (i > 0 && valueFlags[args[i-1]]) {
							continue
						}
						paths = append(paths, a)
						args[i] = filepath.Join(dir, a)
						writeFile(t, filepath.Join(dir, a, "app.yaml"), awsSecretYAML(secretID, old))
					}
					if len(paths) == 0 {
						t.Fatalf("no path in %q", cmd)
					}
					code, stdout, stderr := updateAWSSecretIDs(t, args...)
					want := current
					if strings.Contains(cmd, "--check") {
						want = old
						if code != 1 {
							t.Errorf("exit %d, want 1 (a reference is behind)\n%s%s", code, stdout, stderr)
						}
					} else if strings.Contains(cmd, "--diff") {
						want = old // a diff, nothing written
						if code != 0 || !strings.Contains(stdout, "+      versionId: "+current) {
							t.Errorf("exit %d, want 0 and a diff to %s\n%s%s", code, current, stdout, stderr)
						}
					} else if code != 0 {
						t.Errorf("exit %d, want 0\n%s%s", code, stdout, stderr)
					}
					for _, p := range paths {
						if b, _ := os.ReadFile(filepath.Join(dir, p, "app.yaml")); !strings.Contains(string(b), "versionId: "+want) {
							t.Errorf("%s/app.yaml after the command:\n%s\nwant versionId %s", p, b, want)
						}
					}
				})
			}
		}
		if ran < 4 {
			t.Errorf("%d update-aws-secret-ids examples found: the extraction is broken", ran)
		}
	})

	t.Run("links", func(t *testing.T) {
		anchors := map[string]map[string]bool{}
		headings := func(page string) map[string]bool {
			if a, ok := anchors[page]; ok {
				return a
			}
			a := map[string]bool{}
			_, lines := parsePage(t, page)
			seen := map[string]int{}
			for _, l := range lines {
				if !strings.HasPrefix(l, "#") {
					continue
				}
				s := slug(strings.TrimLeft(l, "#"))
				if n := seen[s]; n > 0 {
					a[fmt.Sprintf("%s-%d", s, n)] = true
				} else {
					a[s] = true
				}
				seen[s]++
			}
			anchors[page] = a
			return a
		}
		link := regexp.MustCompile(`\]\(([^)\s]+)\)`)
		checked := 0
		for _, page := range pages {
			rel, _ := filepath.Rel(repoRoot, page)
			for _, l := range prose[page] {
				for _, m := range link.FindAllStringSubmatch(stripCode(l), -1) {
					target := m[1]
					if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
						continue
					}
					checked++
					file, anchor, _ := strings.Cut(target, "#")
					dest := page
					if file != "" {
						dest = filepath.Join(filepath.Dir(page), file)
						if _, err := os.Stat(dest); err != nil {
							t.Errorf("%s: link %s: no such file", rel, target)
							continue
						}
					}
					if anchor != "" && strings.HasSuffix(dest, ".md") && !headings(dest)[anchor] {
						t.Errorf("%s: link %s: no heading with that anchor", rel, target)
					}
				}
			}
		}
		if checked < 20 {
			t.Errorf("%d relative links checked: the extraction is broken", checked)
		}
	})
}

// valueFlags are the bump tool's flags that take a value.
var valueFlags = map[string]bool{"--stage": true, "--exclude": true, "--aws-region": true, "--aws-endpoint": true, "--concurrency": true}

func awsSecretYAML(secretID, versionID string) string {
	return fmt.Sprintf(`apiVersion: mumoshu.github.io/v1alpha1
kind: AWSSecret
metadata:
  name: app
spec:
  stringDataFrom:
    secretsManagerSecretRef:
      secretId: %s
      versionId: %s
`, secretID, versionID)
}

// stripCode removes inline code spans, whose brackets are not links.
func stripCode(line string) string {
	var b bytes.Buffer
	in := false
	for _, r := range line {
		if r == '`' {
			in = !in
			continue
		}
		if !in {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// slug is the anchor GitHub gives a heading: lower case, letters, digits, spaces, hyphens and
// underscores kept, spaces made hyphens.
func slug(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(heading)) {
		switch {
		case unicode.IsLetter(r) || unicode.IsDigit(r) || r == '-' || r == '_':
			b.WriteRune(r)
		case r == ' ':
			b.WriteRune('-')
		}
	}
	return b.String()
}
