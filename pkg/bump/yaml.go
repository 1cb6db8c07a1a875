// Package bump finds the versionIds that AWSSecrets pin in YAML files and rewrites them in
// place, changing no other byte; it asks Secrets Manager which version holds a stage with
// DescribeSecret only, so that it never needs the right to read a secret's value.
package bump

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"
	"unicode/utf8"

	yaml "go.yaml.in/yaml/v3"

	"github.com/mumoshu/aws-secret-controller/pkg/apis/mumoshu/v1alpha1"
)

// Ref is one versionId an AWSSecret pins in a file: where its scalar is and what it says.
type Ref struct {
	// Line is the 1-based line of the versionId scalar.
	Line int
	// SecretID and VersionID are the reference as written.
	SecretID, VersionID string
	// Problem, when set, says why this reference cannot be rewritten in place (a block
	// scalar, an alias, an escape sequence); it is reported instead.
	Problem string

	// start and end delimit the scalar in the file, quotes included; quote is its quote
	// character, or 0 for a plain scalar.
	start, end int
	quote      byte
}

// Find returns the references of every AWSSecret (apiVersion mumoshu.github.io/v1alpha1, kind
// AWSSecret) in a YAML stream of one or more documents: spec.stringDataFrom, spec.dataFrom and
// each spec.data entry. Other documents are ignored. An error means the content is not YAML.
func Find(content []byte) ([]Ref, error) {
	lines := lineStarts(content)
	dec := yaml.NewDecoder(bytes.NewReader(content))
	var refs []Ref
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
			continue
		}
		root := doc.Content[0]
		if scalarValue(child(root, "apiVersion")) != v1alpha1.SchemeGroupVersion.String() || scalarValue(child(root, "kind")) != "AWSSecret" {
			continue
		}
		spec := child(root, "spec")
		var sources []*yaml.Node
		for _, field := range []string{"stringDataFrom", "dataFrom"} {
			sources = append(sources, child(spec, field))
		}
		if data := child(spec, "data"); data != nil && data.Kind == yaml.SequenceNode {
			sources = append(sources, data.Content...)
		}
		for _, source := range sources {
			ref := child(source, "secretsManagerSecretRef")
			version := child(ref, "versionId")
			if version == nil {
				continue
			}
			refs = append(refs, locate(content, lines, scalarValue(child(ref, "secretId")), version))
		}
	}
	return refs, nil
}

// child returns the value of key in a mapping node, or nil.
func child(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Kind == yaml.ScalarNode && n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

func scalarValue(n *yaml.Node) string {
	if n == nil || n.Kind != yaml.ScalarNode {
		return ""
	}
	return n.Value
}

// locate finds a versionId scalar's bytes in content. yaml gives its line and column (in
// characters); the bytes there must be the scalar as its style writes it, or it is not
// rewritten.
func locate(content []byte, lines []int, secretID string, n *yaml.Node) Ref {
	r := Ref{Line: n.Line, SecretID: secretID, VersionID: n.Value}
	if n.Kind != yaml.ScalarNode {
		r.Problem = "versionId is not a plain or quoted scalar (an alias, a list or a map)"
		return r
	}
	if n.Value == "" {
		r.Problem = "versionId is empty"
		return r
	}
	var raw string
	switch n.Style {
	case 0:
		raw = n.Value
	case yaml.SingleQuotedStyle:
		raw, r.quote = "'"+strings.ReplaceAll(n.Value, "'", "''")+"'", '\''
	case yaml.DoubleQuotedStyle:
		raw, r.quote = `"`+n.Value+`"`, '"'
	default:
		r.Problem = "versionId is written as a block scalar or with a tag; write it as a plain or quoted scalar to have it bumped"
		return r
	}
	if n.Line < 1 || n.Line > len(lines) {
		r.Problem = "the versionId could not be found in the file"
		return r
	}
	start := lines[n.Line-1]
	for col := 1; col < n.Column && start < len(content); col++ {
		_, size := utf8.DecodeRune(content[start:])
		start += size
	}
	if !bytes.HasPrefix(content[start:], []byte(raw)) {
		r.Problem = "the versionId's text in the file is not its value as written (an escape sequence or a line break in it); write it as a plain scalar to have it bumped"
		return r
	}
	r.start, r.end = start, start+len(raw)
	return r
}

// lineStarts returns the byte offset where each line starts. Lines end with \n (\r\n too).
func lineStarts(content []byte) []int {
	starts := []int{0}
	for i, b := range content {
		if b == '\n' {
			starts = append(starts, i+1)
		}
	}
	return starts
}

// plainSafe is what may be written as a plain scalar without changing its meaning.
var plainSafe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)

// Rewrite returns content with each reference's versionId replaced by to[i] (to[i] empty or
// equal leaves it), in the reference's own quoting style. Every other byte stays as it was.
func Rewrite(content []byte, refs []Ref, to []string) ([]byte, error) {
	type edit struct {
		start, end int
		text       string
	}
	var edits []edit
	for i, r := range refs {
		if to[i] == "" || to[i] == r.VersionID {
			continue
		}
		if r.Problem != "" {
			return nil, fmt.Errorf("line %d: %s", r.Line, r.Problem)
		}
		text := to[i]
		switch {
		case r.quote == '\'':
			text = "'" + strings.ReplaceAll(text, "'", "''") + "'"
		case r.quote == '"' || !plainSafe.MatchString(text):
			if strings.ContainsAny(text, "\"\\\n") || !utf8.ValidString(text) {
				return nil, fmt.Errorf("line %d: the new versionId %q cannot be written safely", r.Line, text)
			}
			text = `"` + text + `"`
		}
		edits = append(edits, edit{r.start, r.end, text})
	}
	sort.Slice(edits, func(i, j int) bool { return edits[i].start < edits[j].start })
	var out bytes.Buffer
	last := 0
	for _, e := range edits {
		if e.start < last {
			return nil, errors.New("overlapping references")
		}
		out.Write(content[last:e.start])
		out.WriteString(e.text)
		last = e.end
	}
	out.Write(content[last:])
	return out.Bytes(), nil
}
