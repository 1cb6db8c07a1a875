package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestFindings runs the tool over each finding of issue 23 as files on disk: what it exits
// with, what it says, and every file's exact bytes afterwards.
func TestFindings(t *testing.T) {
	const (
		numeric = "12345678901234567890123456789012"
		x       = "apiVersion: mumoshu.github.io/v1alpha1\nkind: AWSSecret\nmetadata:\n  name: a\nspec:\n  stringDataFrom:\n    secretsManagerSecretRef:\n"
	)
	pinned := func(secretID, version string) string {
		return x + "      secretId: " + secretID + "\n      versionId: " + version + "\n"
	}
	for _, tc := range []struct {
		name     string
		versions map[string]string
		files    map[string]string
		args     []string // before the directory; nil means the directory alone
		want     map[string]string
		code     int
		stderr   []string // each must appear
		stdout   []string
	}{
		{
			name:     "1 a numeric new versionId is quoted",
			versions: map[string]string{"prod/db": numeric},
			files:    map[string]string{"a.yaml": pinned("prod/db", old)},
			want:     map[string]string{"a.yaml": pinned("prod/db", `"`+numeric+`"`)},
			stdout:   []string{"a.yaml:9 prod/db " + old + " -> " + numeric},
		},
		{
			name:     "1 a new versionId with a control character is refused",
			versions: map[string]string{"prod/db": "aaaa\x01aaaa-1111-4111-8111-111111111111"},
			files:    map[string]string{"a.yaml": pinned("prod/db", old)},
			want:     map[string]string{"a.yaml": pinned("prod/db", old)},
			code:     exitError,
			stderr:   []string{"does not look like a version id; it is not written"},
		},
		{
			name:     "2 a lone \\r in a comment: refused, nothing written",
			versions: map[string]string{"prod/db": cur},
			files:    map[string]string{"a.yaml": "# one\r\r\n# two " + old + "\n" + pinned("prod/db", old)},
			want:     map[string]string{"a.yaml": "# one\r\r\n# two " + old + "\n" + pinned("prod/db", old)},
			code:     exitError,
			stderr:   []string{`a.yaml: line 1: a line break other than \n and \r\n (a \r alone)`},
		},
		{
			name:     "2 U+2028 in a comment: refused",
			versions: map[string]string{"prod/db": cur},
			files:    map[string]string{"a.yaml": "# one\u2028two\n" + pinned("prod/db", old)},
			want:     map[string]string{"a.yaml": "# one\u2028two\n" + pinned("prod/db", old)},
			code:     exitError,
			stderr:   []string{"(U+2028)"},
		},
		{
			name:     "4 a Helm expression is never replaced",
			versions: map[string]string{"prod/db": cur},
			files:    map[string]string{"a.yaml": pinned("prod/db", `"{{ .Values.versionId }}"`)},
			want:     map[string]string{"a.yaml": pinned("prod/db", `"{{ .Values.versionId }}"`)},
			code:     exitError,
			stderr:   []string{`does not look like a version id`},
		},
		{
			name:     "5 AWSSecrets in a List are bumped",
			versions: map[string]string{"prod/db": cur},
			files: map[string]string{"list.yaml": "apiVersion: v1\nkind: List\nitems:\n- apiVersion: mumoshu.github.io/v1alpha1\n  kind: AWSSecret\n  metadata: {name: a}\n" +
				"  spec:\n    stringDataFrom:\n      secretsManagerSecretRef: {secretId: prod/db, versionId: " + old + "}\n"},
			want: map[string]string{"list.yaml": "apiVersion: v1\nkind: List\nitems:\n- apiVersion: mumoshu.github.io/v1alpha1\n  kind: AWSSecret\n  metadata: {name: a}\n" +
				"  spec:\n    stringDataFrom:\n      secretsManagerSecretRef: {secretId: prod/db, versionId: " + cur + "}\n"},
			stdout: []string{"list.yaml:9 prod/db " + old + " -> " + cur},
		},
		{
			name:     "7 a merge key is refused, naming its line",
			versions: map[string]string{"prod/db": cur},
			files: map[string]string{"a.yaml": "base: &ref {secretId: prod/db, versionId: " + old + "}\n---\n" + x +
				"      <<: *ref\n      versionId: " + old + "\n"},
			want: map[string]string{"a.yaml": "base: &ref {secretId: prod/db, versionId: " + old + "}\n---\n" + x +
				"      <<: *ref\n      versionId: " + old + "\n"},
			code:   exitError,
			stderr: []string{"line 10: a merge key (<<) in an AWSSecret"},
		},
		{
			name:     "8 a strategic-merge patch with a versionId alone is skipped with a warning",
			versions: map[string]string{"prod/db": cur},
			files:    map[string]string{"patch.yaml": x + "      versionId: " + old + "\n"},
			want:     map[string]string{"patch.yaml": x + "      versionId: " + old + "\n"},
			stderr:   []string{"warning: ", "patch.yaml:8: skipped: a versionId without its secretId"},
		},
		{
			name:     "8 an inline literal patch in a Kustomization is bumped",
			versions: map[string]string{"prod/db": cur},
			files: map[string]string{"kustomization.yaml": "kind: Kustomization\nresources: [base.yaml]\npatches:\n- target: {kind: AWSSecret, name: a}\n  patch: |-\n" +
				"    - op: replace\n      path: /spec/stringDataFrom/secretsManagerSecretRef\n      value: {secretId: prod/db, versionId: " + old + "}\r\n"},
			want: map[string]string{"kustomization.yaml": "kind: Kustomization\nresources: [base.yaml]\npatches:\n- target: {kind: AWSSecret, name: a}\n  patch: |-\n" +
				"    - op: replace\n      path: /spec/stringDataFrom/secretsManagerSecretRef\n      value: {secretId: prod/db, versionId: " + cur + "}\r\n"},
			stdout: []string{"kustomization.yaml:8 prod/db " + old + " -> " + cur},
		},
		{
			name:     "9 a duplicate key is refused, naming both lines",
			versions: map[string]string{"prod/db": cur},
			files:    map[string]string{"a.yaml": pinned("prod/db", old) + "      versionId: " + tok1 + "\n"},
			want:     map[string]string{"a.yaml": pinned("prod/db", old) + "      versionId: " + tok1 + "\n"},
			code:     exitError,
			stderr:   []string{`line 10: the key "versionId" appears twice in one mapping (first on line 9)`},
		},
		{
			name:     "10 a BOM before a one-line document",
			versions: map[string]string{"prod/db": cur},
			files: map[string]string{"a.yaml": "\ufeff{apiVersion: mumoshu.github.io/v1alpha1, kind: AWSSecret, spec: {stringDataFrom: {secretsManagerSecretRef: {secretId: prod/db, versionId: " +
				old + "}}}}\n"},
			want: map[string]string{"a.yaml": "\ufeff{apiVersion: mumoshu.github.io/v1alpha1, kind: AWSSecret, spec: {stringDataFrom: {secretsManagerSecretRef: {secretId: prod/db, versionId: " +
				cur + "}}}}\n"},
			stdout: []string{"a.yaml:1 prod/db " + old + " -> " + cur},
		},
		{
			name:     "11 a Helm chart's templates are skipped with a warning; --exclude skips a tree",
			versions: map[string]string{"prod/db": cur},
			files: map[string]string{
				"chart/Chart.yaml":            "apiVersion: v2\nname: chart\nversion: 0.1.0\n",
				"chart/templates/parses.yaml": pinned("{{ .Values.secretId }}", "{{ .Values.versionId }}"),
				"other/secret.yaml":           "{{- if .Values.enabled }}\n" + pinned("prod/db", "{{ .Values.versionId }}") + "{{- end }}\n",
				"chart/templates/secret.yaml": "{{- if .Values.enabled }}\n" + pinned("prod/db", "{{ .Values.versionId }}") + "{{- end }}\n",
				"vendor/a.yaml":               pinned("prod/db", old),
				"app/a.yaml":                  pinned("prod/db", old),
			},
			args: []string{"--exclude", "vendor"},
			want: map[string]string{
				"chart/templates/secret.yaml": "{{- if .Values.enabled }}\n" + pinned("prod/db", "{{ .Values.versionId }}") + "{{- end }}\n",
				"vendor/a.yaml":               pinned("prod/db", old),
				"app/a.yaml":                  pinned("prod/db", cur),
			},
			stderr: []string{"other/secret.yaml: skipped: a template, not YAML", "parses.yaml: skipped: a Helm chart's template"},
			stdout: []string{"a.yaml:9 prod/db " + old + " -> " + cur},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := tree(t, tc.files)
			var stdout, stderr bytes.Buffer
			opts, err := parseFlags(append(tc.args, dir), &stderr)
			if err != nil {
				t.Fatal(err)
			}
			code := run(context.Background(), opts, &current{versions: tc.versions}, &stdout, &stderr)
			if code != tc.code {
				t.Errorf("exit %d, want %d (stderr %q)", code, tc.code, stderr.String())
			}
			for _, s := range tc.stderr {
				if !strings.Contains(stderr.String(), s) {
					t.Errorf("stderr %q does not say %q", stderr.String(), s)
				}
			}
			if len(tc.stdout) != strings.Count(stdout.String(), "\n") {
				t.Errorf("stdout %q, want %d lines", stdout.String(), len(tc.stdout))
			}
			for _, s := range tc.stdout {
				if !strings.Contains(stdout.String(), s) {
					t.Errorf("stdout %q does not say %q", stdout.String(), s)
				}
			}
			for name, want := range tc.want {
				if diff := cmp.Diff(want, read(t, filepath.Join(dir, name))); diff != "" {
					t.Errorf("%s (-want +got):\n%s", name, diff)
				}
			}
		})
	}
}

// TestSymlinksAreWrittenThrough: a link is never replaced; its target is bumped, once however
// many links lead to it.
func TestSymlinksAreWrittenThrough(t *testing.T) {
	dir := tree(t, map[string]string{"base/a.yaml": awsSecret("a", "prod/db", old)})
	for _, link := range []string{"overlay-1.yaml", "overlay-2.yaml"} {
		if err := os.Symlink(filepath.Join("base", "a.yaml"), filepath.Join(dir, link)); err != nil {
			t.Fatal(err)
		}
	}
	var stdout, stderr bytes.Buffer
	opts, _ := parseFlags([]string{dir}, &stderr)
	if code := run(context.Background(), opts, &current{versions: map[string]string{"prod/db": cur}}, &stdout, &stderr); code != exitCurrent {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if got := read(t, filepath.Join(dir, "base", "a.yaml")); got != awsSecret("a", "prod/db", cur) {
		t.Errorf("target:\n%s", got)
	}
	for _, link := range []string{"overlay-1.yaml", "overlay-2.yaml"} {
		if fi, err := os.Lstat(filepath.Join(dir, link)); err != nil || fi.Mode()&os.ModeSymlink == 0 {
			t.Errorf("%s is no longer a symlink (%v)", link, err)
		}
	}
	if n := strings.Count(stdout.String(), " -> "); n != 1 {
		t.Errorf("change lines = %d, want 1: %q", n, stdout.String())
	}
}

// TestWritesKeepWhatTheFileWas: mode, owner and group are kept; a file with two hard links is
// not split; a file edited after it was read is not overwritten.
func TestWritesKeepWhatTheFileWas(t *testing.T) {
	dir := tree(t, map[string]string{"a.yaml": awsSecret("a", "prod/db", old), "linked.yaml": awsSecret("b", "prod/db", old)})
	if err := os.Chmod(filepath.Join(dir, "a.yaml"), 0o604); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(dir, "linked.yaml"), filepath.Join(dir, "..", filepath.Base(dir)+"-hardlink.yaml")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(filepath.Join(dir, "..", filepath.Base(dir)+"-hardlink.yaml")) })
	if os.Getuid() == 0 {
		// As root the temporary file is root's: the original's owner and group must be put back.
		if err := os.Chown(filepath.Join(dir, "a.yaml"), 1234, 5678); err != nil {
			t.Fatal(err)
		}
	}
	before, _ := os.Stat(filepath.Join(dir, "a.yaml"))
	var stdout, stderr bytes.Buffer
	opts, _ := parseFlags([]string{dir}, &stderr)
	code := run(context.Background(), opts, &current{versions: map[string]string{"prod/db": cur}}, &stdout, &stderr)
	if code != exitError || !strings.Contains(stderr.String(), "linked.yaml: not written: it has 2 hard links") {
		t.Errorf("exit %d, stderr %q: want the hard-linked file refused", code, stderr.String())
	}
	after, _ := os.Stat(filepath.Join(dir, "a.yaml"))
	if after.Mode() != before.Mode() {
		t.Errorf("mode %v, want %v", after.Mode(), before.Mode())
	}
	if u1, g1, _ := owner(before); true {
		if u2, g2, _ := owner(after); u1 != u2 || g1 != g2 {
			t.Errorf("owner %d:%d, want %d:%d", u2, g2, u1, g1)
		}
	}
	if strings.Contains(stdout.String(), "linked.yaml") || !strings.Contains(stdout.String(), "a.yaml") {
		t.Errorf("change lines %q: want a.yaml's only, printed after its write", stdout.String())
	}

	// An edit between the read and the write is kept, and reported.
	path := filepath.Join(dir, "a.yaml")
	was := []byte(read(t, path))
	if err := os.WriteFile(path, []byte(awsSecret("edited", "prod/db", old)), 0o604); err != nil {
		t.Fatal(err)
	}
	if err := writeFile(path, was, []byte(awsSecret("a", "prod/db", tok1))); err == nil || !strings.Contains(err.Error(), "changed since it was read") {
		t.Errorf("writeFile over an edit: %v", err)
	}
	if got := read(t, path); got != awsSecret("edited", "prod/db", old) {
		t.Errorf("the edit was overwritten:\n%s", got)
	}
}
