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
	// scalar, an alias, an escape sequence, a value that is no version id); it is reported
	// instead.
	Problem string
	// Skipped, when set, says why this versionId is not a reference the tool can bump: a patch
	// that carries a versionId without its secretId. It is a warning, not an error.
	Skipped string

	// start and end delimit the scalar in the file, quotes included; quote is its quote
	// character, or 0 for a plain scalar.
	start, end int
	quote      byte
}

// Error is a file the tool refuses to rewrite: where and why.
type Error struct {
	Line int
	Msg  string
}

func (e *Error) Error() string {
	if e.Line == 0 {
		return e.Msg
	}
	return fmt.Sprintf("line %d: %s", e.Line, e.Msg)
}

// bom is the UTF-8 byte order mark; the parser skips it, and so do the line starts.
var bom = []byte("\xef\xbb\xbf")

// Find returns the versionIds pinned in a YAML stream of one or more documents:
//   - AWSSecrets (apiVersion mumoshu.github.io/v1alpha1, kind AWSSecret): spec.stringDataFrom,
//     spec.dataFrom and each spec.data entry; also as the items of a List (kind: List, or any
//     kind ending in List);
//   - kustomize patches: JSON 6902 operations whose value holds a secretsManagerSecretRef, and
//     the patches a Kustomization carries inline as literal blocks (|);
//   - a versionId without its secretId beside it (a patch of an AWSSecret) is returned with
//     Skipped set.
//
// Other documents are ignored. An error means the content is not YAML, or it is YAML the tool
// will not rewrite (an *Error: merge keys or duplicate keys in an AWSSecret, line breaks other
// than \n and \r\n).
func Find(content []byte) ([]Ref, error) {
	f := &finder{content: content, lines: lineStarts(content)}
	dec := yaml.NewDecoder(bytes.NewReader(content))
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			// The parser may have read a line break where the file has none for other tools.
			if e := oddBreakError(content); e != nil {
				return nil, e
			}
			return nil, err
		}
		if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
			continue
		}
		if err := f.document(doc.Content[0]); err != nil {
			return nil, err
		}
	}
	if len(f.refs) > 0 {
		if e := oddBreakError(content); e != nil {
			return nil, e
		}
	}
	return f.refs, nil
}

// oddBreakError refuses a file with a line break other than \n and \r\n, or returns nil.
func oddBreakError(content []byte) *Error {
	if line, what := oddLineBreak(content); line > 0 {
		return &Error{Line: line, Msg: fmt.Sprintf("a line break other than \\n and \\r\\n (%s): the YAML parser and a rewrite could disagree on where the versionId is, so this file is not rewritten", what)}
	}
	return nil
}

// finder gathers the references of one file.
type finder struct {
	content []byte
	lines   []int
	refs    []Ref
}

func (f *finder) document(root *yaml.Node) error {
	switch {
	case isAWSSecret(root):
		return f.awsSecret(root)
	case strings.HasSuffix(scalarValue(child(root, "kind")), "List"):
		if items := child(root, "items"); items != nil && items.Kind == yaml.SequenceNode {
			for _, item := range items.Content {
				if isAWSSecret(item) {
					if err := f.awsSecret(item); err != nil {
						return err
					}
				}
			}
		}
	case scalarValue(child(root, "kind")) == "Kustomization":
		return f.kustomization(root)
	case isJSONPatch(root):
		return f.jsonPatch(root)
	}
	return nil
}

func isAWSSecret(n *yaml.Node) bool {
	return scalarValue(child(n, "apiVersion")) == v1alpha1.SchemeGroupVersion.String() && scalarValue(child(n, "kind")) == "AWSSecret"
}

// awsSecret gathers an AWSSecret's references, after refusing what parsers read differently.
func (f *finder) awsSecret(root *yaml.Node) error {
	if err := unambiguous(root); err != nil {
		return err
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
		f.ref(child(source, "secretsManagerSecretRef"))
	}
	return nil
}

// ref gathers the versionId of a secretsManagerSecretRef mapping, if it has one.
func (f *finder) ref(ref *yaml.Node) {
	version := child(ref, "versionId")
	if version == nil {
		return
	}
	secretID := scalarValue(child(ref, "secretId"))
	if secretID == "" {
		f.refs = append(f.refs, Ref{Line: version.Line, VersionID: scalarValue(version),
			Skipped: "a versionId without its secretId (a patch): bump the AWSSecret it patches, or add the secretId"})
		return
	}
	f.refs = append(f.refs, locate(f.content, f.lines, secretID, version))
}

// unambiguous refuses merge keys and duplicate keys anywhere under n: YAML parsers disagree on
// them (the first key or the last; merged or not), so a rewrite could change another value than
// the one kubectl or kustomize reads.
func unambiguous(n *yaml.Node) error {
	if n == nil {
		return nil
	}
	if n.Kind == yaml.MappingNode {
		seen := map[string]int{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			if k.Kind == yaml.ScalarNode && (k.Tag == "!!merge" || k.Value == "<<") {
				return &Error{Line: k.Line, Msg: "a merge key (<<) in an AWSSecret: parsers disagree on it, so the tool does not follow it; write the AWSSecret out in full"}
			}
			if k.Kind == yaml.ScalarNode {
				if first, ok := seen[k.Value]; ok {
					return &Error{Line: k.Line, Msg: fmt.Sprintf("the key %q appears twice in one mapping (first on line %d): parsers disagree on which one counts", k.Value, first)}
				}
				seen[k.Value] = k.Line
			}
		}
	}
	for _, c := range n.Content {
		if err := unambiguous(c); err != nil {
			return err
		}
	}
	return nil
}

// isJSONPatch says whether a document is a JSON 6902 patch: a list of operations.
func isJSONPatch(n *yaml.Node) bool {
	if n.Kind != yaml.SequenceNode || len(n.Content) == 0 {
		return false
	}
	for _, op := range n.Content {
		if child(op, "op") == nil || child(op, "path") == nil {
			return false
		}
	}
	return true
}

// jsonPatch gathers the versionIds a JSON 6902 patch sets: in a value that holds a
// secretsManagerSecretRef (or is one), or as the value of a path ending in /versionId, which
// has no secretId beside it and is skipped.
func (f *finder) jsonPatch(root *yaml.Node) error {
	for _, op := range root.Content {
		value := child(op, "value")
		if value == nil {
			continue
		}
		if strings.HasSuffix(scalarValue(child(op, "path")), "/versionId") {
			f.refs = append(f.refs, Ref{Line: value.Line, VersionID: scalarValue(value),
				Skipped: "a JSON patch of a versionId alone, without its secretId: bump the AWSSecret it patches, or patch the whole secretsManagerSecretRef"})
			continue
		}
		if err := unambiguous(value); err != nil {
			return err
		}
		f.refsUnder(value)
	}
	return nil
}

// refsUnder gathers every secretsManagerSecretRef under n, and n itself if it is one.
func (f *finder) refsUnder(n *yaml.Node) {
	if n == nil {
		return
	}
	if n.Kind == yaml.MappingNode {
		if child(n, "versionId") != nil && child(n, "secretId") != nil {
			f.ref(n)
			return
		}
		if ref := child(n, "secretsManagerSecretRef"); ref != nil {
			f.ref(ref)
		}
	}
	for _, c := range n.Content {
		if c.Kind == yaml.MappingNode || c.Kind == yaml.SequenceNode {
			if c != child(n, "secretsManagerSecretRef") {
				f.refsUnder(c)
			}
		}
	}
}

// kustomization gathers the references in the patches a Kustomization carries inline.
func (f *finder) kustomization(root *yaml.Node) error {
	var patches []*yaml.Node
	for _, field := range []string{"patches", "patchesJson6902"} {
		if list := child(root, field); list != nil && list.Kind == yaml.SequenceNode {
			for _, p := range list.Content {
				patches = append(patches, child(p, "patch"))
			}
		}
	}
	if list := child(root, "patchesStrategicMerge"); list != nil && list.Kind == yaml.SequenceNode {
		patches = append(patches, list.Content...)
	}
	for _, p := range patches {
		if p == nil || p.Kind != yaml.ScalarNode || !strings.Contains(p.Value, "versionId") {
			continue
		}
		if p.Style != yaml.LiteralStyle {
			f.refs = append(f.refs, Ref{Line: p.Line, Skipped: "an inline patch that mentions a versionId is not a literal block (|): write it as one to have it bumped"})
			continue
		}
		inner, err := Find([]byte(p.Value))
		if err != nil {
			return &Error{Line: p.Line, Msg: fmt.Sprintf("the inline patch: %v", err)}
		}
		for _, r := range inner {
			f.refs = append(f.refs, f.outer(p, r))
		}
	}
	return nil
}

// outer maps a reference found in a literal block's text to the file: the block's lines are the
// file's lines after the indicator, less their indentation.
func (f *finder) outer(block *yaml.Node, r Ref) Ref {
	out := r
	out.Line = block.Line + r.Line
	if r.Skipped != "" || r.Problem != "" {
		return out
	}
	// The block's text is block.Value; the reference's line in it, and its column in bytes.
	text := []byte(block.Value)
	lineStart := bytes.LastIndexByte(text[:r.start], '\n') + 1
	col := r.start - lineStart
	fileLine := block.Line + r.Line // 1-based: the indicator's line, then the block's lines
	if fileLine > len(f.lines) {
		out.Problem = "the versionId could not be found in the file"
		return out
	}
	start := f.lines[fileLine-1]
	// The block's indentation is that of its first line with text; the reference's line may be
	// indented further, which its column already counts.
	indent := blockIndent(f.content, f.lines, block.Line)
	out.start = start + indent + col
	out.end = out.start + (r.end - r.start)
	if out.end > len(f.content) || !bytes.Equal(f.content[out.start:out.end], text[r.start:r.end]) {
		out.Problem = "the versionId in the inline patch could not be found in the file as written"
		out.start, out.end = 0, 0
	}
	return out
}

// blockIndent is the indentation of a block scalar whose indicator is on line (1-based): that
// of its first line that holds anything but spaces.
func blockIndent(content []byte, lines []int, line int) int {
	for l := line; l < len(lines); l++ {
		start := lines[l]
		i := start
		for i < len(content) && content[i] == ' ' {
			i++
		}
		if i < len(content) && content[i] != '\n' && content[i] != '\r' {
			return i - start
		}
	}
	return 0
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

// versionIDLike is what the tool takes for a version id: what the CRD allows (32 to 64
// characters) and AWS generates or accepts as a ClientRequestToken, printable ASCII without
// spaces, quotes, backslashes or template delimiters.
var versionIDLike = regexp.MustCompile(`^[A-Za-z0-9._~:/+=@_-]{32,64}$`)

// LooksLikeVersionID says whether s can be a pinned versionId: anything else (a Helm or
// kustomize expression, a placeholder) is never replaced.
func LooksLikeVersionID(s string) bool {
	return versionIDLike.MatchString(s)
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
	if !LooksLikeVersionID(n.Value) {
		r.Problem = fmt.Sprintf("%q does not look like a version id (32 to 64 characters, no spaces or template expressions), so it is never replaced", n.Value)
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

// lineStarts returns the byte offset where each line starts, as the parser counts lines for
// files whose line breaks are \n and \r\n (oddLineBreak refuses the others). A byte order mark
// is not part of line 1, as the parser skips it.
func lineStarts(content []byte) []int {
	starts := []int{0}
	if bytes.HasPrefix(content, bom) {
		starts[0] = len(bom)
	}
	for i, b := range content {
		if b == '\n' {
			starts = append(starts, i+1)
		}
	}
	return starts
}

// oddLineBreak returns the line (1-based, counting \n) of the first line break the YAML parser
// counts and lineStarts does not: a \r not followed by \n, U+0085, U+2028 or U+2029.
func oddLineBreak(content []byte) (line int, what string) {
	line = 1
	for i := 0; i < len(content); i++ {
		switch {
		case content[i] == '\n':
			line++
		case content[i] == '\r' && (i+1 == len(content) || content[i+1] != '\n'):
			return line, `a \r alone`
		case bytes.HasPrefix(content[i:], []byte("\u0085")):
			return line, "U+0085"
		case bytes.HasPrefix(content[i:], []byte("\u2028")):
			return line, "U+2028"
		case bytes.HasPrefix(content[i:], []byte("\u2029")):
			return line, "U+2029"
		}
	}
	return 0, ""
}

// plainWord is letters, digits and '-', not starting with '-'.
var plainWord = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9-]*$`)

// uuidLike is the form of the version ids AWS generates.
var uuidLike = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// plainString says whether s, written as a plain scalar, is the string s for every YAML parser,
// 1.1 and 1.2 alike: a UUID, or letters, digits and '-' with a letter no number can hold (YAML
// numbers are digits, '_', '.', signs, exponents and the 0x, 0o, 0b prefixes with hex digits).
func plainString(s string) bool {
	if uuidLike.MatchString(s) {
		return true
	}
	if !plainWord.MatchString(s) {
		return false
	}
	return strings.IndexFunc(s, func(r rune) bool {
		return (r >= 'g' && r <= 'z' || r >= 'G' && r <= 'Z') && !strings.ContainsRune("oxOX", r)
	}) >= 0
}

// Rewrite returns content with each reference's versionId replaced by to[i] (to[i] empty or
// equal leaves it), in the reference's own quoting style, or double-quoted when a plain scalar
// would not be read as the same string. Every other byte stays as it was. A new versionId that
// does not look like one (LooksLikeVersionID) is refused.
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
		if r.Skipped != "" {
			return nil, fmt.Errorf("line %d: %s", r.Line, r.Skipped)
		}
		if r.Problem != "" {
			return nil, fmt.Errorf("line %d: %s", r.Line, r.Problem)
		}
		text := to[i]
		if !LooksLikeVersionID(text) {
			return nil, fmt.Errorf("line %d: the new versionId %q does not look like a version id; it is not written", r.Line, text)
		}
		switch {
		case r.quote == '\'':
			text = "'" + text + "'"
		case r.quote == '"' || !plainString(text):
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
