package bump

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/aws/smithy-go"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

const (
	db1, db2   = "11111111-1111-4111-8111-111111111111", "aaaaaaaa-1111-4111-8111-111111111111"
	ks1, ks2   = "22222222-2222-4222-8222-222222222222", "bbbbbbbb-2222-4222-8222-222222222222"
	tls1, tls2 = "33333333-3333-4333-8333-333333333333", "cccccccc-3333-4333-8333-333333333333"
	tok1       = "44444444-4444-4444-8444-444444444444"
)

func readFixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// appRefs are the references in testdata/app.yaml, in file order.
var appRefs = []Ref{
	{Line: 11, SecretID: "prod/db", VersionID: db1},
	{Line: 16, SecretID: "prod/keystore", VersionID: ks1},
	{Line: 37, SecretID: "prod/tls", VersionID: tls1},
	{Line: 42, SecretID: "prod/tls", VersionID: tls1},
	{Line: 45, SecretID: "prod/token", VersionID: tok1},
}

func TestFind(t *testing.T) {
	crlf := bytes.ReplaceAll(readFixture(t, "app.yaml"), []byte("\n"), []byte("\r\n"))
	for name, content := range map[string][]byte{"LF": readFixture(t, "app.yaml"), "CRLF": crlf} {
		t.Run(name, func(t *testing.T) {
			refs, err := Find(content)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(appRefs, refs, cmpopts.IgnoreUnexported(Ref{})); diff != "" {
				t.Errorf("refs (-want +got):\n%s", diff)
			}
		})
	}
	if refs, err := Find(readFixture(t, "other-kind.yaml")); err != nil || len(refs) != 0 {
		t.Errorf("other-kind.yaml: refs %v, err %v; want none: it is not an AWSSecret", refs, err)
	}
	// A JSON 6902 patch: the operation on a versionId alone is skipped (no secretId beside it),
	// the one that sets a whole secretsManagerSecretRef is bumped.
	refs, err := Find(readFixture(t, "patch.yaml"))
	want := []Ref{
		{Line: 4, VersionID: db1, Skipped: "a JSON patch of a versionId alone, without its secretId: bump the AWSSecret it patches, or patch the whole secretsManagerSecretRef"},
		{Line: 9, SecretID: "prod/db", VersionID: db1},
	}
	if diff := cmp.Diff(want, refs, cmpopts.IgnoreUnexported(Ref{})); err != nil || diff != "" {
		t.Errorf("patch.yaml: err %v, refs (-want +got):\n%s", err, diff)
	}
	if _, err := Find(readFixture(t, "broken.yaml")); err == nil {
		t.Error("broken.yaml: no error")
	}
}

// TestRewriteChangesOnlyTheVersionIds compares bytes: the rewrite of every reference in app.yaml
// is the file with exactly those ids replaced, in their own quoting, and nothing else; the
// Deployment's mentions of the same id stay.
func TestRewriteChangesOnlyTheVersionIds(t *testing.T) {
	for _, eol := range []string{"\n", "\r\n"} {
		content := bytes.ReplaceAll(readFixture(t, "app.yaml"), []byte("\n"), []byte(eol))
		refs, err := Find(content)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Rewrite(content, refs, []string{db2, ks2, tls2, tls2, ""})
		if err != nil {
			t.Fatal(err)
		}
		want := string(content)
		for _, r := range []struct{ old, new string }{
			{"versionId: " + db1 + "   # bumped", "versionId: " + db2 + "   # bumped"},
			{"versionId: '" + ks1 + "'", "versionId: '" + ks2 + "'"},
			{`versionId: "` + tls1 + `"}`, `versionId: "` + tls2 + `"}`},
			{"      versionId: " + tls1 + eol, "      versionId: " + tls2 + eol},
		} {
			if strings.Count(want, r.old) != 1 {
				t.Fatalf("fixture: %q appears %d times", r.old, strings.Count(want, r.old))
			}
			want = strings.Replace(want, r.old, r.new, 1)
		}
		if diff := cmp.Diff(want, string(got)); diff != "" {
			t.Errorf("eol %q: rewrite (-want +got):\n%s", eol, diff)
		}
		// Unchanged ids leave the bytes as they are.
		same, err := Rewrite(content, refs, []string{db1, "", tls1, "", tok1})
		if err != nil || !bytes.Equal(same, content) {
			t.Errorf("eol %q: a rewrite to the same ids changed the file (err %v)", eol, err)
		}
	}
}

// TestRewriteQuotesWhatNeedsIt: a new versionId written where a plain scalar stood stays plain
// only when every YAML parser reads it as that string; numbers in any form are double-quoted,
// and what does not look like a version id is refused.
func TestRewriteQuotesWhatNeedsIt(t *testing.T) {
	content := []byte("apiVersion: mumoshu.github.io/v1alpha1\nkind: AWSSecret\nspec:\n  stringDataFrom:\n    secretsManagerSecretRef: {secretId: a, versionId: " + db1 + "}\n")
	refs, err := Find(content)
	if err != nil || len(refs) != 1 {
		t.Fatal(refs, err)
	}
	for _, tc := range []struct{ id, written string }{
		{db2, db2},
		{"a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6g", "a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6g"},
		{"12345678901234567890123456789012", `"12345678901234567890123456789012"`},
		{"1e345678901234567890123456789012", `"1e345678901234567890123456789012"`},
		{"1_234_567_890_123_456_789_012_345", `"1_234_567_890_123_456_789_012_345"`},
		{"0x1234567890abcdef1234567890abcdef", `"0x1234567890abcdef1234567890abcdef"`},
		{"abcdefabcdefabcdefabcdefabcdefabcd", `"abcdefabcdefabcdefabcdefabcdefabcd"`},
		{"token:with/other+chars=0123456789ab", `"token:with/other+chars=0123456789ab"`},
	} {
		got, err := Rewrite(content, refs, []string{tc.id})
		if err != nil {
			t.Fatalf("%s: %v", tc.id, err)
		}
		if !bytes.Contains(got, []byte("versionId: "+tc.written+"}")) {
			t.Errorf("%s: got %s", tc.id, got)
		}
		// Every parser this project uses reads the written scalar as the string.
		again, err := Find(got)
		if err != nil || len(again) != 1 || again[0].VersionID != tc.id {
			t.Errorf("%s: read back as %+v, %v", tc.id, again, err)
		}
	}
	for _, bad := range []string{"a\"b" + db1, "a\x01" + db1, "short", "{{ .Values.versionId }}-0123456789abcdef", db1 + " x", strings.Repeat("a", 65)} {
		if _, err := Rewrite(content, refs, []string{bad}); err == nil {
			t.Errorf("the new versionId %q was written", bad)
		}
	}
}

func TestFindReportsWhatCannotBeRewritten(t *testing.T) {
	for name, ref := range map[string]string{
		"block scalar": "versionId: |\n        x1\n",
		"escape":       `versionId: "\u0031` + db1[1:] + `"` + "\n",
		"alias":        "versionId: *v\n",
		"tag":          "versionId: !!str x1\n",
		"empty":        "versionId:\n",
	} {
		t.Run(name, func(t *testing.T) {
			content := "x: &v " + db1 + "\napiVersion: mumoshu.github.io/v1alpha1\nkind: AWSSecret\nspec:\n  stringDataFrom:\n    secretsManagerSecretRef:\n      secretId: a\n      " + strings.ReplaceAll(ref, "x1", db1)
			refs, err := Find([]byte(content))
			if err != nil || len(refs) != 1 {
				t.Fatal(refs, err)
			}
			if refs[0].Problem == "" {
				t.Fatalf("no problem reported for %q", ref)
			}
			if _, err := Rewrite([]byte(content), refs, []string{db2}); err == nil {
				t.Error("rewrote it anyway")
			}
		})
	}
}

func TestUnifiedDiff(t *testing.T) {
	old := []byte("1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n12\n13\n14\n15\n16\n17\n18\n19\n20")
	new := []byte("1\n2\nthree\n4\n5\n6\n7\n8\n9\nten\n11\n12\n13\n14\n15\n16\n17\n18\n19\ntwenty")
	want := `--- a/f.yaml
+++ b/f.yaml
@@ -1,13 +1,13 @@
 1
 2
-3
+three
 4
 5
 6
 7
 8
 9
-10
+ten
 11
 12
 13
@@ -17,4 +17,4 @@
 17
 18
 19
-20
\ No newline at end of file
+twenty
\ No newline at end of file
`
	if diff := cmp.Diff(want, UnifiedDiff("f.yaml", old, new)); diff != "" {
		t.Errorf("diff (-want +got):\n%s", diff)
	}
	if d := UnifiedDiff("f.yaml", old, old); d != "" {
		t.Errorf("diff of equal files = %q", d)
	}
}

// fakeSM answers DescribeSecret from a table of versions and stages, counting calls per id.
type fakeSM struct {
	mu      sync.Mutex
	secrets map[string]map[string][]string
	errs    map[string]error
	calls   map[string]int
}

func (f *fakeSM) DescribeSecret(_ context.Context, in *secretsmanager.DescribeSecretInput, _ ...func(*secretsmanager.Options)) (*secretsmanager.DescribeSecretOutput, error) {
	id := aws.ToString(in.SecretId)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.calls == nil {
		f.calls = map[string]int{}
	}
	f.calls[id]++
	if err := f.errs[id]; err != nil {
		return nil, err
	}
	versions, ok := f.secrets[id]
	if !ok {
		return nil, &smtypes.ResourceNotFoundException{Message: aws.String("Secrets Manager can't find the specified secret.")}
	}
	return &secretsmanager.DescribeSecretOutput{Name: in.SecretId, VersionIdsToStages: versions}, nil
}

func TestResolve(t *testing.T) {
	sm := &fakeSM{
		secrets: map[string]map[string][]string{
			"prod/db":      {db1: {"AWSPREVIOUS"}, db2: {"AWSCURRENT", "blue"}},
			"prod/nostage": {db1: {"AWSPREVIOUS"}},
		},
		errs: map[string]error{
			"prod/denied": &smithy.GenericAPIError{Code: "AccessDeniedException", Message: "not authorized to perform secretsmanager:DescribeSecret"},
			"prod/down":   errors.New("dial tcp: connection refused"),
		},
	}
	got := Resolve(context.Background(), sm, []string{"prod/db", "prod/db", "prod/nostage", "prod/missing", "prod/denied", "prod/down", "prod/db"}, "AWSCURRENT", 2)
	if got["prod/db"].VersionID != db2 || got["prod/db"].Err != nil {
		t.Errorf("prod/db: %+v", got["prod/db"])
	}
	for id, want := range map[string]string{"prod/nostage": "no version", "prod/missing": "SecretNotFound", "prod/denied": "AccessDenied", "prod/down": "connection refused"} {
		if err := got[id].Err; err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want one saying %q", id, err, want)
		}
	}
	if diff := cmp.Diff(map[string]int{"prod/db": 1, "prod/nostage": 1, "prod/missing": 1, "prod/denied": 1, "prod/down": 1}, sm.calls); diff != "" {
		t.Errorf("DescribeSecret calls (-want +got):\n%s", diff)
	}
	if r := Resolve(context.Background(), sm, []string{"prod/db"}, "blue", 1)["prod/db"]; r.VersionID != db2 {
		t.Errorf("stage blue: %+v", r)
	}
}

// FuzzRewrite checks that no content makes Find or Rewrite panic, and that a rewrite is still
// YAML whose references say the new ids at the same lines, the others unchanged.
func FuzzRewrite(f *testing.F) {
	for _, name := range []string{"app.yaml", "patch.yaml", "other-kind.yaml", "broken.yaml"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("apiVersion: mumoshu.github.io/v1alpha1\r\nkind: AWSSecret\r\nspec: {data: [{secretsManagerSecretRef: {secretId: a, versionId: 'x''y'}}]}\r\n"))
	f.Fuzz(func(t *testing.T, content []byte) {
		refs, err := Find(content)
		if err != nil {
			return
		}
		to := make([]string, len(refs))
		for i, r := range refs {
			if r.Problem == "" && r.Skipped == "" && i%2 == 0 {
				to[i] = fmt.Sprintf("fuzz%d-0123456789abcdef0123456789abcdef", i)
			}
		}
		out, err := Rewrite(content, refs, to)
		if err != nil {
			t.Fatalf("Rewrite: %v", err)
		}
		again, err := Find(out)
		if err != nil {
			t.Fatalf("the rewrite is not YAML: %v", err)
		}
		if len(again) != len(refs) {
			t.Fatalf("%d references after the rewrite, %d before", len(again), len(refs))
		}
		for i, r := range refs {
			want := r.VersionID
			if to[i] != "" {
				want = to[i]
			}
			if again[i].VersionID != want || again[i].Line != r.Line || again[i].SecretID != r.SecretID {
				t.Fatalf("reference %d: %+v after the rewrite, want versionId %q at line %d", i, again[i], want, r.Line)
			}
		}
	})
}

// TestResolveHonoursTheStage resolves one secret whose versions hold different stages: each
// stage asked for, AWS's own or a custom label, gives the version that holds it, and a stage no
// version holds (or that two versions hold) is an error naming it.
func TestResolveHonoursTheStage(t *testing.T) {
	const pending, labelled = "dddddddd-1111-4111-8111-111111111111", "eeeeeeee-1111-4111-8111-111111111111"
	sm := &fakeSM{secrets: map[string]map[string][]string{
		"prod/db":  {db1: {"AWSPREVIOUS"}, db2: {"AWSCURRENT"}, pending: {"AWSPENDING"}, labelled: {"blue", "release-2024"}},
		"prod/two": {db1: {"blue"}, db2: {"AWSCURRENT", "blue"}},
	}}
	for _, tc := range []struct {
		id, stage, want, wantErr string
	}{
		{"prod/db", "AWSCURRENT", db2, ""},
		{"prod/db", "AWSPENDING", pending, ""},
		{"prod/db", "AWSPREVIOUS", db1, ""},
		{"prod/db", "blue", labelled, ""},
		{"prod/db", "release-2024", labelled, ""},
		{"prod/db", "green", "", "no version of secret prod/db has the stage green"},
		{"prod/db", "awspending", "", "no version of secret prod/db has the stage awspending"},
		{"prod/two", "blue", "", "versions [" + db1 + " " + db2 + "] of secret prod/two all have the stage blue"},
	} {
		t.Run(tc.id+"@"+tc.stage, func(t *testing.T) {
			r := Resolve(context.Background(), sm, []string{tc.id}, tc.stage, 1)[tc.id]
			if tc.wantErr != "" {
				if r.Err == nil || r.Err.Error() != tc.wantErr || r.VersionID != "" {
					t.Errorf("stage %s: %+v, want the error %q", tc.stage, r, tc.wantErr)
				}
				return
			}
			if r.Err != nil || r.VersionID != tc.want {
				t.Errorf("stage %s: %+v, want version %s", tc.stage, r, tc.want)
			}
		})
	}
}
