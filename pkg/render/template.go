package render

import (
	"bytes"
	"cmp"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"text/template"
	"text/template/parse"

	"github.com/mumoshu/aws-secret-controller/pkg/apis/mumoshu/v1alpha1"
)

// A template key is a Go text/template over the gathered keys, as strings. It can only compute:
// its functions reach neither the network nor the filesystem nor the environment, and it runs
// under the rendering's budget:
//   - every function that builds a string (text/template's print, printf, println, html, js and
//     urlquery, replaced here, and ours) reserves an upper bound of its result before it runs,
//     so no one call can allocate past the budget, and the result stays charged: a chain or a
//     re-assigned variable pays for every step;
//   - printf widths and precisions are at most maxFormatWidth, and * is refused;
//   - the comparisons (eq, ne, lt, le, gt, ge, replaced here) charge the bytes they compare;
//   - a range body's nodes times the gathered keys is at most Limits.RangeSteps, checked before
//     it runs; a range inside a range, recursion (define, block, template), a range over
//     anything but the gathered keys and numbers beyond ±maxTemplateNumber are refused when the
//     template is parsed;
//   - every write to the output counts against the Secret's size, across all keys, and every
//     step checks the context's deadline.

// maxTemplateNumber bounds the numbers a template may write (a comparison, an argument): large
// enough for a port number, small enough that no one call does much work.
const maxTemplateNumber = 1 << 16

// maxFormatWidth bounds a printf width or precision: enough to pad or align, too little to
// build a large value in one call.
const maxFormatWidth = 4096

// templates are the parsed template keys of an AWSSecret.
type templates struct {
	policy v1alpha1.TemplateMergePolicy
	keys   map[string]*template.Template
	// rangeNodes are the nodes in each key's range bodies, which run once per gathered key.
	rangeNodes map[string]int
}

// parseTemplates checks and parses every key of spec.template with functions that charge b.
// Its errors name the key and quote only the template, which is in the AWSSecret for anyone to
// read.
func parseTemplates(t *v1alpha1.SecretTemplate, b *budget) (*templates, error) {
	if t == nil {
		return nil, nil
	}
	out := &templates{policy: t.MergePolicy, keys: make(map[string]*template.Template, len(t.Data)), rangeNodes: map[string]int{}}
	switch out.policy {
	case "":
		out.policy = v1alpha1.MergePolicyReplace
	case v1alpha1.MergePolicyReplace, v1alpha1.MergePolicyMerge:
	default:
		return nil, newError(v1alpha1.ReasonInvalidTemplate, "template: mergePolicy %s is neither Replace nor Merge", describeKey(string(t.MergePolicy)))
	}
	if n := len(t.Data); n > b.limits.TemplateKeys {
		return nil, newError(v1alpha1.ReasonInvalidTemplate, "template: %d keys; at most %d are allowed", n, b.limits.TemplateKeys)
	}
	funcs := b.funcs()
	for _, key := range sortedKeys(t.Data) {
		if err := validSecretKey(key); err != nil {
			return nil, newError(v1alpha1.ReasonInvalidKey, "template: key %s is not a valid Secret key: %s", describeKey(key), err)
		}
		if n := len(t.Data[key]); n > b.limits.TemplateBytes {
			return nil, newError(v1alpha1.ReasonInvalidTemplate, "template key %s is %d bytes long; at most %d are allowed", describeKey(key), n, b.limits.TemplateBytes)
		}
		tmpl, err := template.New(key).Funcs(funcs).Option("missingkey=error").Parse(t.Data[key])
		if err != nil {
			// A parse error quotes the template only, and names the key with its position.
			return nil, newError(v1alpha1.ReasonInvalidTemplate, "template key %s does not parse: %s", describeKey(key), err)
		}
		nodes, err := checkTemplate(tmpl)
		if err != nil {
			return nil, newError(v1alpha1.ReasonInvalidTemplate, "template key %s: %s", describeKey(key), err)
		}
		out.keys[key] = tmpl
		out.rangeNodes[key] = nodes
	}
	return out, nil
}

// checkTemplate refuses what could make a template run without bound: define, block and
// template (recursion); a range over anything but the gathered keys (range over an integer runs
// as long as the integer says), and a range inside a range; numbers beyond maxTemplateNumber.
// It returns the number of nodes inside range bodies, which run once per gathered key; the
// rest runs once.
func checkTemplate(t *template.Template) (rangeNodes int, err error) {
	if len(t.Templates()) > 1 {
		return 0, errors.New("define and block are not allowed")
	}
	// rootDot: the dot is the gathered keys (it changes inside with and range).
	var walk func(n parse.Node, inRange, rootDot bool) error
	branch := func(b *parse.BranchNode, inRange, rootDot, changesDot, isRange bool) error {
		if err := walk(b.Pipe, inRange, rootDot); err != nil {
			return err
		}
		if err := walk(b.List, inRange || isRange, rootDot && !changesDot); err != nil {
			return err
		}
		return walk(b.ElseList, inRange, rootDot)
	}
	walk = func(n parse.Node, inRange, rootDot bool) error {
		if inRange {
			rangeNodes++
		}
		switch n := n.(type) {
		case *parse.ListNode:
			if n == nil {
				return nil
			}
			for _, c := range n.Nodes {
				if err := walk(c, inRange, rootDot); err != nil {
					return err
				}
			}
		case *parse.ActionNode:
			return walk(n.Pipe, inRange, rootDot)
		case *parse.PipeNode:
			if n == nil {
				return nil
			}
			for _, v := range n.Decl {
				if v.Ident[0] == "$" {
					return errors.New("$ may not be assigned")
				}
			}
			for _, c := range n.Cmds {
				if err := walk(c, inRange, rootDot); err != nil {
					return err
				}
			}
		case *parse.CommandNode:
			for _, a := range n.Args {
				if err := walk(a, inRange, rootDot); err != nil {
					return err
				}
			}
		case *parse.ChainNode:
			return walk(n.Node, inRange, rootDot)
		case *parse.NumberNode:
			if !n.IsFloat || n.Float64 > maxTemplateNumber || n.Float64 < -maxTemplateNumber {
				return fmt.Errorf("the number %s is not allowed: numbers must lie within ±%d", n.Text, maxTemplateNumber)
			}
		case *parse.TemplateNode:
			return errors.New("template is not allowed")
		case *parse.IfNode:
			return branch(&n.BranchNode, inRange, rootDot, false, false)
		case *parse.WithNode:
			return branch(&n.BranchNode, inRange, rootDot, true, false)
		case *parse.RangeNode:
			if inRange {
				return errors.New("a range inside a range is not allowed")
			}
			if !rangesOverKeys(n.Pipe, rootDot) {
				return errors.New("range may only go over the gathered keys: range . (outside with and range) or range $")
			}
			return branch(&n.BranchNode, inRange, rootDot, true, true)
		}
		return nil
	}
	return rangeNodes, walk(t.Tree.Root, false, true)
}

// rangesOverKeys says whether a range's pipeline is the gathered keys: . while the dot is
// still them, or $.
func rangesOverKeys(p *parse.PipeNode, rootDot bool) bool {
	if len(p.Cmds) != 1 || len(p.Cmds[0].Args) != 1 {
		return false
	}
	switch a := p.Cmds[0].Args[0].(type) {
	case *parse.DotNode:
		return rootDot
	case *parse.VariableNode:
		return len(a.Ident) == 1 && a.Ident[0] == "$"
	}
	return false
}

// render renders every template key over the gathered data and returns the Secret's data: the
// rendered keys alone (Replace), or the gathered keys with the rendered ones over them (Merge).
func (t *templates) render(gathered map[string][]byte, b *budget) (map[string][]byte, error) {
	in := make(map[string]string, len(gathered))
	for k, v := range gathered {
		// The strings are copies: charged like any value the rendering produces.
		if err := b.charge(len(v)); err != nil {
			return nil, budgetFailure(err.(*kindError), "template", b.limits)
		}
		in[k] = string(v)
	}
	out := map[string][]byte{}
	if t.policy == v1alpha1.MergePolicyMerge {
		// The gathered keys stay in the Secret: they count against its size from the start.
		if err := b.output(size(gathered)); err != nil {
			return nil, budgetFailure(err.(*kindError), "template", b.limits)
		}
		for k, v := range gathered {
			out[k] = v
		}
	}
	for _, key := range sortedKeys(t.keys) {
		if steps := t.rangeNodes[key] * len(in); steps > b.limits.RangeSteps {
			return nil, newError(v1alpha1.ReasonInvalidTemplate, "template key %s: its range bodies (%d nodes) over %d gathered keys would take %d steps; at most %d are allowed", describeKey(key), t.rangeNodes[key], len(in), steps, b.limits.RangeSteps)
		}
		w := &outputWriter{b: b}
		if err := t.keys[key].Execute(w, in); err != nil {
			return nil, templateError(key, err, b.limits)
		}
		out[key] = w.buf.Bytes()
	}
	return out, nil
}

// outputWriter is a template key's output: every write is charged to the Secret's size and to
// what the rendering produced, before it is kept.
type outputWriter struct {
	b   *budget
	buf bytes.Buffer
}

func (w *outputWriter) Write(p []byte) (int, error) {
	if err := w.b.output(int64(len(p))); err != nil {
		return 0, err
	}
	if err := w.b.charge(len(p)); err != nil {
		return 0, err
	}
	return w.buf.Write(p)
}

// Kinds of template failure that functions report; the message names them, never a value.
var (
	errMissingKey = &kindError{"it names a key the gathered data does not have"}
	errNotBase64  = &kindError{"b64dec was given a value that is not valid base64"}
	errFormat     = &kindError{fmt.Sprintf("a printf width or precision is * or above %d", maxFormatWidth)}
	errValueType  = &kindError{"a value has a type the function does not take"}
	errNoJSON     = &kindError{"toJson was given a value it cannot write as JSON"}
)

// templateError turns an execution error into a message made of the key, the template's line
// and column and the kind of failure. text/template's own message is never passed on: it can
// quote what the template computed (a value, or a value's base64 or upper case).
func templateError(key string, err error, l Limits) error {
	place := "template key " + describeKey(key) + position(key, err)
	var ke *kindError
	if errors.As(err, &ke) {
		switch ke {
		case errProduced, errOutput, errCompared, errDeadline:
			return budgetFailure(ke, place, l)
		}
		return newError(v1alpha1.ReasonInvalidTemplate, "%s: %s", place, ke.kind)
	}
	// text/template's own failures, told apart by the fixed parts of its messages.
	msg := err.Error()
	kind := "an operation failed (check the keys it names, the functions it calls and their arguments)"
	switch {
	case strings.Contains(msg, "map has no entry for key"):
		kind = errMissingKey.kind
	case strings.Contains(msg, "wrong type"), strings.Contains(msg, "wrong number of args"),
		strings.Contains(msg, "can't evaluate field"), strings.Contains(msg, "can't give argument"),
		strings.Contains(msg, "incompatible types"), strings.Contains(msg, "invalid type"),
		strings.Contains(msg, "cannot index"), strings.Contains(msg, "can't index"),
		strings.Contains(msg, "nil pointer"), strings.Contains(msg, "nil data"):
		kind = "a value has the wrong type for the operation"
	case strings.Contains(msg, "out of range"):
		kind = "an index is out of range"
	}
	return newError(v1alpha1.ReasonInvalidTemplate, "%s: %s", place, kind)
}

// position returns " at line L, column C" from an execution error of the template named key,
// or "" when the error has none. text/template starts such messages with
// "template: NAME:LINE:COL: ", where NAME is the key (a Secret key: no colon).
func position(key string, err error) string {
	var ee template.ExecError
	if !errors.As(err, &ee) {
		return ""
	}
	rest, ok := strings.CutPrefix(ee.Err.Error(), "template: "+key+":")
	if !ok {
		return ""
	}
	line, rest, ok := strings.Cut(rest, ":")
	if !ok {
		return ""
	}
	col, _, ok := strings.Cut(rest, ":")
	if _, err := strconv.Atoi(line); !ok || err != nil {
		return ""
	}
	if _, err := strconv.Atoi(col); err != nil {
		return ""
	}
	return fmt.Sprintf(" at line %s, column %s", line, col)
}

// funcs are the functions a template may call besides text/template's own, bound to b. Those
// that build strings replace text/template's builtins of the same name, so that every string
// a template builds is charged.
func (b *budget) funcs() template.FuncMap {
	return template.FuncMap{
		// index replaces text/template's, which gives an empty value for a missing key whatever
		// missingkey says: a typo in a key name must fail, not write an empty value. It builds
		// nothing.
		"index": func(data map[string]string, key string) (string, error) {
			if err := b.alive(); err != nil {
				return "", err
			}
			v, ok := data[key]
			if !ok {
				return "", errMissingKey
			}
			return v, nil
		},
		"b64enc": func(s string) (string, error) {
			return b.build(int64(base64.StdEncoding.EncodedLen(len(s))), func() (string, error) {
				return base64.StdEncoding.EncodeToString([]byte(s)), nil
			})
		},
		"b64dec": func(s string) (string, error) {
			return b.build(int64(len(s)), func() (string, error) {
				v, ok := decodeBase64(s)
				if !ok {
					return "", errNotBase64
				}
				return string(v), nil
			})
		},
		"trim": func(s string) (string, error) { return strings.TrimSpace(s), b.alive() },
		// A rune's upper or lower case takes at most twice its bytes.
		"upper": func(s string) (string, error) {
			return b.build(2*int64(len(s)), func() (string, error) { return strings.ToUpper(s), nil })
		},
		"lower": func(s string) (string, error) {
			return b.build(2*int64(len(s)), func() (string, error) { return strings.ToLower(s), nil })
		},
		// strconv.Quote writes a byte as at most four (\x00).
		"quote": func(s string) (string, error) {
			return b.build(4*int64(len(s))+2, func() (string, error) { return strconv.Quote(s), nil })
		},
		// JSON writes a byte as at most six (\u0000).
		"toJson": func(v any) (string, error) {
			n, ok := sizeBound(v)
			if !ok {
				return "", errValueType
			}
			return b.build(6*n+2, func() (string, error) {
				var buf bytes.Buffer
				enc := json.NewEncoder(&buf)
				enc.SetEscapeHTML(false)
				if err := enc.Encode(v); err != nil {
					return "", errNoJSON
				}
				return strings.TrimSuffix(buf.String(), "\n"), nil
			})
		},
		// urlEscape percent-encodes every byte but the unreserved ones (RFC 3986), so that a
		// value can go into any part of a URL: a password in postgres://user:pass@host, a query
		// value. A byte becomes at most three.
		"urlEscape": func(s string) (string, error) {
			return b.build(3*int64(len(s)), func() (string, error) {
				return strings.ReplaceAll(url.QueryEscape(s), "+", "%20"), nil
			})
		},

		// text/template's builtins that build strings.
		"print":   func(args ...any) (string, error) { return b.sprint(fmt.Sprint, 1, args) },
		"println": func(args ...any) (string, error) { return b.sprint(fmt.Sprintln, 1, args) },
		"printf": func(format string, args ...any) (string, error) {
			widths, err := formatWidths(format)
			if err != nil {
				return "", err
			}
			n, ok := argsBound(args)
			if !ok {
				return "", errValueType
			}
			// A verb writes at most its width and precision, plus its argument in its most
			// escaped form (%q, %x: at most six bytes a byte); a missing or extra argument
			// writes a short marker.
			bound := int64(len(format)) + widths + 6*n + 64*int64(len(args)+strings.Count(format, "%"))
			return b.build(bound, func() (string, error) { return fmt.Sprintf(format, args...), nil })
		},
		"html":     func(args ...any) (string, error) { return b.sprint(template.HTMLEscaper, 6, args) },
		"js":       func(args ...any) (string, error) { return b.sprint(template.JSEscaper, 6, args) },
		"urlquery": func(args ...any) (string, error) { return b.sprint(template.URLQueryEscaper, 3, args) },

		// text/template's comparisons, which can compare large values many times in a loop.
		"eq": func(a reflect.Value, others ...reflect.Value) (bool, error) {
			for _, o := range others {
				if c, err := b.cmp(a, o); err != nil || c == 0 {
					return err == nil, err
				}
			}
			return false, nil
		},
		"ne": func(a, o reflect.Value) (bool, error) { c, err := b.cmp(a, o); return c != 0, err },
		"lt": func(a, o reflect.Value) (bool, error) { return b.ordered(a, o, func(c int) bool { return c < 0 }) },
		"le": func(a, o reflect.Value) (bool, error) { return b.ordered(a, o, func(c int) bool { return c <= 0 }) },
		"gt": func(a, o reflect.Value) (bool, error) { return b.ordered(a, o, func(c int) bool { return c > 0 }) },
		"ge": func(a, o reflect.Value) (bool, error) { return b.ordered(a, o, func(c int) bool { return c >= 0 }) },
	}
}

// build reserves bound bytes, runs f, and keeps what its result used charged.
func (b *budget) build(bound int64, f func() (string, error)) (string, error) {
	if err := b.reserve(bound); err != nil {
		return "", err
	}
	s, err := f()
	b.settle(bound, len(s))
	return s, err
}

// sprint runs one of fmt's Sprint functions or text/template's escapers, whose result is at
// most factor bytes a byte of the arguments as print writes them.
func (b *budget) sprint(f func(...any) string, factor int64, args []any) (string, error) {
	n, ok := argsBound(args)
	if !ok {
		return "", errValueType
	}
	return b.build(factor*(n+int64(len(args))+2), func() (string, error) { return f(args...), nil })
}

// argsBound is the most bytes print writes for args, and false for a type a template should
// not hold.
func argsBound(args []any) (int64, bool) {
	var total int64
	for _, a := range args {
		n, ok := sizeBound(a)
		if !ok {
			return 0, false
		}
		total += n
	}
	return total, true
}

// sizeBound is the most bytes fmt's %v writes for a value a template can hold: a string, the
// gathered keys, a number, a boolean or nil.
func sizeBound(v any) (int64, bool) {
	switch v := v.(type) {
	case string:
		return int64(len(v)), true
	case map[string]string:
		n := int64(16)
		for k, s := range v {
			n += int64(len(k)+len(s)) + 8
		}
		return n, true
	case nil, bool, int, int64, uint64, float64, complex128:
		// %f of the largest float64 has 309 digits before the point.
		return 330, true
	}
	return 0, false
}

// formatWidths checks a printf format's widths and precisions and returns their sum: each is
// at most maxFormatWidth, and * (a width taken from an argument) is refused.
func formatWidths(format string) (int64, error) {
	var total int64
	number := func(i int) (int, int, error) {
		if i < len(format) && format[i] == '*' {
			return 0, i, errFormat
		}
		n := 0
		for ; i < len(format) && format[i] >= '0' && format[i] <= '9'; i++ {
			if n = n*10 + int(format[i]-'0'); n > maxFormatWidth {
				return 0, i, errFormat
			}
		}
		return n, i, nil
	}
	skipIndex := func(i int) int {
		if i < len(format) && format[i] == '[' {
			if j := strings.IndexByte(format[i:], ']'); j >= 0 {
				return i + j + 1
			}
		}
		return i
	}
	for i := 0; i < len(format); i++ {
		if format[i] != '%' {
			continue
		}
		i++
		for i < len(format) && strings.IndexByte("+-# 0", format[i]) >= 0 {
			i++
		}
		i = skipIndex(i)
		w, j, err := number(i)
		if err != nil {
			return 0, err
		}
		total += int64(w)
		i = j
		if i < len(format) && format[i] == '.' {
			i = skipIndex(i + 1)
			p, j, err := number(i)
			if err != nil {
				return 0, err
			}
			total += int64(p)
			i = j
		}
		i = skipIndex(i)
	}
	return total, nil
}

// cmp compares two basic values as text/template's eq and lt do, charging the bytes of the
// strings it compares; values of different kinds, or of kinds that do not compare, are an error.
func (b *budget) cmp(a, o reflect.Value) (int, error) {
	a, o = indirect(a), indirect(o)
	if !a.IsValid() || !o.IsValid() {
		return 0, errValueType
	}
	switch {
	case a.Kind() == reflect.String && o.Kind() == reflect.String:
		if err := b.compare(min(a.Len(), o.Len())); err != nil {
			return 0, err
		}
		return strings.Compare(a.String(), o.String()), nil
	case a.Kind() == reflect.Bool && o.Kind() == reflect.Bool:
		if a.Bool() == o.Bool() {
			return 0, b.alive()
		}
		return 1, b.alive()
	}
	// Integers compare with integers and floats with floats, as in text/template: an integer and
	// a float do not compare. (No template value is unsigned: literals, len and index give ints.)
	ka, ko := numberKind(a), numberKind(o)
	if ka != ko || ka == notNumber {
		return 0, errValueType
	}
	if ka == signed {
		return cmp.Compare(a.Int(), o.Int()), b.alive()
	}
	return cmp.Compare(a.Float(), o.Float()), b.alive()
}

func (b *budget) ordered(a, o reflect.Value, f func(int) bool) (bool, error) {
	if k := indirect(a).Kind(); k == reflect.Bool {
		return false, errValueType
	}
	c, err := b.cmp(a, o)
	return err == nil && f(c), err
}

func indirect(v reflect.Value) reflect.Value {
	for v.IsValid() && v.Kind() == reflect.Interface {
		v = v.Elem()
	}
	return v
}

// number is an integer or float value as a float64 (a template's numbers lie within ±65536 and
// lengths within the budget, so nothing is lost).
type numeric int

const (
	notNumber numeric = iota
	signed
	float
)

func numberKind(v reflect.Value) numeric {
	switch v.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return signed
	case reflect.Float32, reflect.Float64:
		return float
	}
	return notNumber
}
