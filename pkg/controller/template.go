package controller

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"text/template"
	"text/template/parse"

	"github.com/mumoshu/aws-secret-controller/pkg/apis/mumoshu/v1alpha1"
)

// A template key is a Go text/template over the gathered keys, as strings. It can only compute:
// the functions below reach neither the network nor the filesystem nor the environment, and the
// constructs that could make a template run without bound (recursion through define, block
// and template; a range over anything but the gathered keys, or inside another range; large
// numbers) are refused before it runs (checkTemplate). Its output is bounded by the Secret's
// size limit.

// templateFuncs are the functions a template may call besides text/template's own.
var templateFuncs = template.FuncMap{
	// index replaces text/template's, which gives an empty value for a missing key whatever
	// missingkey says: a typo in a key name must fail, not write an empty value.
	"index": func(data map[string]string, key string) (string, error) {
		v, ok := data[key]
		if !ok {
			return "", fmt.Errorf("map has no entry for key %s", strconv.Quote(key))
		}
		return v, nil
	},
	"b64enc": func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) },
	"b64dec": func(s string) (string, error) {
		b, ok := decodeBase64(s)
		if !ok {
			return "", errors.New("the value is not valid base64")
		}
		return string(b), nil
	},
	"trim":  strings.TrimSpace,
	"upper": strings.ToUpper,
	"lower": strings.ToLower,
	"quote": strconv.Quote,
	"toJson": func(v any) (string, error) {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(v); err != nil {
			return "", errors.New("the value cannot be written as JSON")
		}
		return strings.TrimSuffix(buf.String(), "\n"), nil
	},
	// urlEscape percent-encodes every byte but the unreserved ones (RFC 3986), so that a value
	// can go into any part of a URL: a password in postgres://user:pass@host, a query value.
	"urlEscape": func(s string) string { return strings.ReplaceAll(url.QueryEscape(s), "+", "%20") },
}

// templates are the parsed template keys of an AWSSecret.
type templates struct {
	policy v1alpha1.TemplateMergePolicy
	keys   map[string]*template.Template
}

// parseTemplates parses and checks every key of spec.template. Its errors name the key and quote
// only the template, which is in the AWSSecret for anyone to read.
func parseTemplates(t *v1alpha1.SecretTemplate) (*templates, error) {
	if t == nil {
		return nil, nil
	}
	out := &templates{policy: t.MergePolicy, keys: make(map[string]*template.Template, len(t.Data))}
	switch out.policy {
	case "":
		out.policy = v1alpha1.MergePolicyReplace
	case v1alpha1.MergePolicyReplace, v1alpha1.MergePolicyMerge:
	default:
		return nil, permanentError(v1alpha1.ReasonInvalidTemplate, "template: mergePolicy %s is neither Replace nor Merge", strconv.Quote(string(t.MergePolicy)))
	}
	for _, key := range sortedKeys(t.Data) {
		if err := validSecretKey(key); err != nil {
			return nil, permanentError(v1alpha1.ReasonInvalidKey, "template: key %s is not a valid Secret key: %s", describeKey(key), err)
		}
		tmpl, err := template.New(key).Funcs(templateFuncs).Option("missingkey=error").Parse(t.Data[key])
		if err != nil {
			return nil, permanentError(v1alpha1.ReasonInvalidTemplate, "template key %s does not parse: %s", describeKey(key), err)
		}
		if err := checkTemplate(tmpl); err != nil {
			return nil, permanentError(v1alpha1.ReasonInvalidTemplate, "template key %s: %s", describeKey(key), err)
		}
		out.keys[key] = tmpl
	}
	return out, nil
}

// maxTemplateNumber bounds the numbers a template may write (a printf width, a comparison):
// large enough for a port number, small enough that no one call does much work.
const maxTemplateNumber = 1 << 16

// checkTemplate refuses what could make a template run without bound: define, block and
// template (recursion); a range over anything but the gathered keys (range over an integer runs
// as long as the integer says), and a range inside a range; numbers beyond maxTemplateNumber.
// What is left runs at most once per gathered key per action.
func checkTemplate(t *template.Template) error {
	if len(t.Templates()) > 1 {
		return errors.New("define and block are not allowed")
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
	return walk(t.Tree.Root, false, true)
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
// An execution error can quote what the template looked at, so its details are given only when
// they contain no gathered value.
func (t *templates) render(gathered map[string][]byte) (map[string][]byte, error) {
	in := make(map[string]string, len(gathered))
	for k, v := range gathered {
		in[k] = string(v)
	}
	out := map[string][]byte{}
	if t.policy == v1alpha1.MergePolicyMerge {
		for k, v := range gathered {
			out[k] = v
		}
	}
	for _, key := range sortedKeys(t.keys) {
		w := &boundedBuffer{max: maxSecretSize}
		if err := t.keys[key].Execute(w, in); err != nil {
			if errors.Is(err, errTooLarge) {
				return nil, permanentError(v1alpha1.ReasonInvalidTemplate, "template key %s renders more than %d bytes", describeKey(key), maxSecretSize)
			}
			return nil, permanentError(v1alpha1.ReasonInvalidTemplate, "template key %s does not render: %s", describeKey(key), withoutValues(err.Error(), gathered))
		}
		out[key] = w.Bytes()
	}
	return out, nil
}

// withoutValues returns msg, or a message saying its details are withheld when it contains any
// of the values.
func withoutValues(msg string, values map[string][]byte) string {
	for _, v := range values {
		if len(v) > 0 && strings.Contains(msg, string(v)) {
			return "the details are withheld because they could contain a secret value; check the keys the template names and the functions it calls"
		}
	}
	return msg
}

var errTooLarge = fmt.Errorf("output exceeds the Secret's size limit")

// boundedBuffer is a bytes.Buffer that refuses to grow past max.
type boundedBuffer struct {
	bytes.Buffer
	max int
}

func (b *boundedBuffer) Write(p []byte) (int, error) {
	if b.Len()+len(p) > b.max {
		return 0, errTooLarge
	}
	return b.Buffer.Write(p)
}
