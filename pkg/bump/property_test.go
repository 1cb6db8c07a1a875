package bump

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"

	yaml "go.yaml.in/yaml/v3"
)

// TestRewriteChangesOnlyWhatItReports generates YAML files from YAML's constructs (styles,
// comments everywhere, anchors, lists, patches, other kinds, every line-break form, a BOM) and
// checks, for each, that either Find refuses the file or the rewrite changes exactly the
// versionId scalars it reported, as the parser reads both files: every other scalar, key and
// comment is the same.
func TestRewriteChangesOnlyWhatItReports(t *testing.T) {
	const files = 3000
	refused, rewritten, appended := 0, 0, 0
	for seed := range uint64(files) {
		content := generate(rand.New(rand.NewPCG(seed, 22)))
		refs, err := Find(content)
		if err != nil {
			refused++
			continue
		}
		if len(refs) == 0 {
			// A file without an AWSSecret: one appended to it is bumped byte for byte.
			if ok, err := appendedIsBumpedExactly(content); err != nil {
				t.Fatalf("seed %d: %v\n%q", seed, err, content)
			} else if ok {
				appended++
			}
		}
		to := make([]string, len(refs))
		for i, r := range refs {
			if r.Problem == "" && r.Skipped == "" {
				to[i] = fmt.Sprintf("%08x-2222-4222-8222-%012x", seed, i)
			}
		}
		out, err := Rewrite(content, refs, to)
		if err != nil {
			t.Fatalf("seed %d: Rewrite: %v\n%q", seed, err, content)
		}
		changed := 0
		for _, v := range to {
			if v != "" {
				changed++
			}
		}
		rewritten += changed
		if err := sameButVersionIDs(content, out, to); err != nil {
			t.Fatalf("seed %d: %v\nbefore: %q\nafter:  %q", seed, err, content, out)
		}
	}
	t.Logf("%d files: %d refused, %d versionIds rewritten, %d without an AWSSecret had one appended", files, refused, rewritten, appended)
	if rewritten < files/2 || refused == 0 || appended < 50 {
		t.Errorf("the generator covers too little: %d rewritten, %d refused", rewritten, refused)
	}
}

// appendedIsBumpedExactly appends an AWSSecret to content and bumps it: the result must be
// content and the AWSSecret with the new versionId, byte for byte. It returns false when the
// tool refuses the whole (a line break it does not rewrite around).
func appendedIsBumpedExactly(content []byte) (bool, error) {
	const doc = "apiVersion: mumoshu.github.io/v1alpha1\nkind: AWSSecret\nmetadata: {name: appended}\nspec:\n  stringDataFrom:\n    secretsManagerSecretRef:\n      secretId: prod/appended\n      versionId: %s # pinned\n"
	sep := "\n---\n"
	if len(content) == 0 || bytes.HasSuffix(content, []byte("\n")) {
		sep = "---\n"
	}
	before := string(content) + sep + fmt.Sprintf(doc, "11111111-1111-4111-8111-111111111111")
	want := string(content) + sep + fmt.Sprintf(doc, "99999999-1111-4111-8111-111111111111")
	refs, err := Find([]byte(before))
	if err != nil {
		var refusal *Error
		if errors.As(err, &refusal) {
			return false, nil
		}
		return false, fmt.Errorf("the file with an AWSSecret appended is not YAML: %v", err)
	}
	if len(refs) != 1 || refs[0].SecretID != "prod/appended" {
		return false, fmt.Errorf("refs in the appended file: %+v", refs)
	}
	got, err := Rewrite([]byte(before), refs, []string{"99999999-1111-4111-8111-111111111111"})
	if err != nil {
		return false, err
	}
	if string(got) != want {
		return false, fmt.Errorf("appended AWSSecret bumped as %q, want %q", got, want)
	}
	return true, nil
}

// sameButVersionIDs parses both files and walks them together: the only scalars that may
// differ are values of versionId keys, each now one of the new ids, as many as were written.
func sameButVersionIDs(before, after []byte, to []string) error {
	a, err := parseAll(before)
	if err != nil {
		return fmt.Errorf("before: %v", err)
	}
	b, err := parseAll(after)
	if err != nil {
		return fmt.Errorf("the rewrite is not YAML: %v", err)
	}
	if len(a) != len(b) {
		return fmt.Errorf("%d documents before, %d after", len(a), len(b))
	}
	want := map[string]bool{}
	for _, v := range to {
		if v != "" {
			want[v] = true
		}
	}
	changed := 0
	var walk func(x, y *yaml.Node, key string) error
	walk = func(x, y *yaml.Node, key string) error {
		if x.Kind != y.Kind || len(x.Content) != len(y.Content) {
			return fmt.Errorf("line %d: a %v node became a %v node", x.Line, x.Kind, y.Kind)
		}
		if x.HeadComment != y.HeadComment || x.LineComment != y.LineComment || x.FootComment != y.FootComment {
			return fmt.Errorf("line %d: a comment changed: %q %q %q -> %q %q %q", x.Line, x.HeadComment, x.LineComment, x.FootComment, y.HeadComment, y.LineComment, y.FootComment)
		}
		if x.Value != y.Value {
			if key != "versionId" || !want[y.Value] {
				return fmt.Errorf("line %d: %q (under %q) became %q", x.Line, x.Value, key, y.Value)
			}
			changed++
		}
		for i := range x.Content {
			k := ""
			if x.Kind == yaml.MappingNode && i%2 == 1 {
				k = x.Content[i-1].Value
			}
			if err := walk(x.Content[i], y.Content[i], k); err != nil {
				return err
			}
		}
		return nil
	}
	for i := range a {
		if err := walk(a[i], b[i], ""); err != nil {
			return err
		}
	}
	if changed != len(want) {
		return fmt.Errorf("%d versionIds changed, %d written", changed, len(want))
	}
	return nil
}

func parseAll(content []byte) ([]*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(content))
	var docs []*yaml.Node
	for {
		var n yaml.Node
		if err := dec.Decode(&n); err != nil {
			if errors.Is(err, io.EOF) {
				return docs, nil
			}
			return nil, err
		}
		docs = append(docs, &n)
	}
}

// generate writes a random YAML stream with AWSSecrets and their neighbours.
func generate(r *rand.Rand) []byte {
	pick := func(xs ...string) string { return xs[r.IntN(len(xs))] }
	oldID := "11111111-1111-4111-8111-111111111111"
	// Line breaks: mostly \n or \r\n for the whole file; sometimes an odd one in a comment.
	eol := pick("\n", "\n", "\r\n")
	odd := ""
	if r.IntN(8) == 0 {
		odd = pick("\r", "\r\r\n", "\u0085", "\u2028", "\u2029")
	}
	comment := func() string {
		if r.IntN(3) != 0 {
			return ""
		}
		text := pick("note", "versionId: "+oldID, "'quoted' \"and\" #hash", "é ü 日本")
		if odd != "" && r.IntN(2) == 0 {
			text += odd + "more"
		}
		return " # " + text
	}
	scalar := func(v string) string {
		switch r.IntN(3) {
		case 0:
			return v
		case 1:
			return "'" + v + "'"
		default:
			return `"` + v + `"`
		}
	}
	version := func() string {
		return pick(oldID, "22222222-2222-4222-8222-222222222222", "{{ .Values.v }}", "short", "12345678901234567890123456789012")
	}
	ref := func(indent string, withSecret bool) string {
		secret := ""
		if withSecret {
			secret = "secretId: " + scalar(pick("prod/db", "prod/other")) + ", "
		}
		if r.IntN(2) == 0 {
			return "{" + secret + "versionId: " + scalar(version()) + "}" + comment() + eol
		}
		s := eol
		if withSecret {
			s += indent + "  secretId: " + scalar(pick("prod/db", "a/b")) + comment() + eol
		}
		v := scalar(version())
		s += indent + "  versionId: " + v + comment() + eol
		if r.IntN(3) == 0 {
			// A comment line that holds the same text at the same column: a rewrite that counts
			// lines differently from the parser would change it instead.
			s += indent + "  #ersionId: " + v + eol
		}
		return s
	}
	awsSecret := func(indent string, withSecret bool) string {
		s := indent + "apiVersion: mumoshu.github.io/v1alpha1" + comment() + eol +
			indent + "kind: AWSSecret" + eol +
			indent + "metadata: {name: " + pick("a", "b") + "}" + eol +
			indent + "spec:" + comment() + eol
		if r.IntN(3) != 0 {
			s += indent + "  stringDataFrom:" + eol + indent + "    secretsManagerSecretRef: " + ref(indent+"    ", withSecret)
		}
		if r.IntN(2) == 0 {
			s += indent + "  data:" + eol
			for range 1 + r.IntN(3) {
				s += indent + "  - key: k" + comment() + eol + indent + "    secretsManagerSecretRef: " + ref(indent+"    ", withSecret)
			}
		}
		return s
	}
	var docs []string
	if odd != "" && r.IntN(2) == 0 {
		docs = append(docs, "# leading"+odd+eol+"# comment"+eol+"x: 1"+eol)
	}
	for range 1 + r.IntN(4) {
		switch r.IntN(7) {
		case 0, 1, 2:
			docs = append(docs, awsSecret("", r.IntN(6) != 0))
		case 3:
			docs = append(docs, "apiVersion: v1"+eol+"kind: List"+eol+"items:"+eol+"- "+strings.TrimPrefix(awsSecret("  ", true), "  "))
		case 4:
			docs = append(docs, "- op: replace"+eol+"  path: /spec/stringDataFrom/secretsManagerSecretRef"+eol+"  value: "+ref("  ", true))
		case 5:
			docs = append(docs, "apiVersion: v1"+eol+"kind: ConfigMap"+comment()+eol+"data:"+eol+"  versionId: "+oldID+eol+"  anchor: &a "+oldID+eol+"  alias: *a"+eol)
		default:
			docs = append(docs, "# only a comment "+oldID+eol+"x: |"+eol+"  versionId: "+oldID+eol+"  more"+eol)
		}
	}
	s := strings.Join(docs, "---"+comment()+eol)
	if r.IntN(10) == 0 {
		s = "\ufeff" + s
	}
	return []byte(s)
}
