package render

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/mumoshu/aws-secret-controller/pkg/apis/mumoshu/v1alpha1"
)

// The payload functions turn the content of a Secrets Manager version into Secret data. Their
// errors name keys, which are not secret, and never include content.

// stringData maps a stringDataFrom version: a JSON object whose members become data keys. A string
// is copied as it is; a number or boolean as its JSON text (123, true); an object or array as
// compact JSON; null as an empty value.
func stringData(content []byte, b *budget) (map[string][]byte, error) {
	members, err := jsonObject(content, "stringDataFrom")
	if err != nil {
		return nil, err
	}
	data := make(map[string][]byte, len(members))
	for key, raw := range members {
		if err := b.reserve(int64(len(raw))); err != nil {
			return nil, budgetFailure(err.(*kindError), "stringDataFrom", b.limits)
		}
		value, err := memberValue(raw)
		if err != nil {
			return nil, newError(v1alpha1.ReasonInvalidSecretFormat, "stringDataFrom: the value of key %s is not valid JSON", describeKey(key))
		}
		b.settle(int64(len(raw)), len(value))
		data[key] = value
	}
	return data, nil
}

// binaryData maps a dataFrom version: a JSON object whose values are base64 strings, each decoded
// into one data key. Standard and URL-safe alphabets are accepted, padded or not (AWS tools and
// people write both); null is an empty value.
func binaryData(content []byte, b *budget) (map[string][]byte, error) {
	members, err := jsonObject(content, "dataFrom")
	if err != nil {
		return nil, err
	}
	data := make(map[string][]byte, len(members))
	for key, raw := range members {
		if bytes.Equal(raw, []byte("null")) {
			data[key] = []byte{}
			continue
		}
		if err := b.reserve(int64(len(raw))); err != nil {
			return nil, budgetFailure(err.(*kindError), "dataFrom", b.limits)
		}
		var encoded string
		if json.Unmarshal(raw, &encoded) != nil {
			return nil, newError(v1alpha1.ReasonInvalidSecretFormat, "dataFrom: the value of key %s is not a base64 string", describeKey(key))
		}
		value, ok := decodeBase64(encoded)
		if !ok {
			return nil, newError(v1alpha1.ReasonInvalidSecretFormat, "dataFrom: the value of key %s is not valid base64", describeKey(key))
		}
		b.settle(int64(len(raw)), len(value))
		data[key] = value
	}
	return data, nil
}

// base64Encodings are tried in order. A string that only uses the characters both alphabets
// share decodes the same in each, so the order only matters for invalid input.
var base64Encodings = []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding}

func decodeBase64(s string) ([]byte, bool) {
	for _, enc := range base64Encodings {
		if b, err := enc.DecodeString(s); err == nil {
			return b, true
		}
	}
	return nil, false
}

// jsonObject parses content as one JSON object whose member names are Secret keys: every name
// must be a valid Secret key.
func jsonObject(content []byte, field string) (map[string]json.RawMessage, error) {
	members, err := jsonMembers(content, field)
	if err != nil {
		return nil, err
	}
	for _, key := range sortedKeys(members) {
		if msgs := validation.IsConfigMapKey(key); len(msgs) > 0 {
			return nil, newError(v1alpha1.ReasonInvalidKey, "%s: key %s is not a valid Secret key: %s", field, describeKey(key), msgs[0])
		}
	}
	return members, nil
}

// jsonMembers parses content as one JSON object and checks that every member name appears once:
// with a repeated name the Secret would depend on which one a parser keeps. The json package's
// own errors quote content, so they are not passed on.
func jsonMembers(content []byte, field string) (map[string]json.RawMessage, error) {
	content = bytes.TrimSpace(content)
	if len(content) == 0 || content[0] != '{' {
		return nil, newError(v1alpha1.ReasonInvalidSecretFormat, "%s: the secret is not a JSON object", field)
	}
	invalid := newError(v1alpha1.ReasonInvalidSecretFormat, "%s: the secret is not a valid JSON object", field)
	dec := json.NewDecoder(bytes.NewReader(content))
	if _, err := dec.Token(); err != nil { // the opening brace
		return nil, invalid
	}
	members := map[string]json.RawMessage{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, invalid
		}
		key, ok := tok.(string)
		if !ok {
			return nil, invalid
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, invalid
		}
		if _, dup := members[key]; dup {
			return nil, newError(v1alpha1.ReasonInvalidSecretFormat, "%s: key %s appears more than once", field, describeKey(key))
		}
		members[key] = raw
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('}') {
		return nil, invalid
	}
	if _, err := dec.Token(); err != io.EOF { // nothing may follow the object
		return nil, invalid
	}
	return members, nil
}

// propertyPath splits a data entry's property into member names: `a.b` is the member b of the
// object a; `a\.b` the member "a.b"; `a\\b` the member `a\b`. A backslash before anything else
// stands for itself.
func propertyPath(property string) []string {
	var path []string
	var cur strings.Builder
	for i := 0; i < len(property); i++ {
		switch c := property[i]; {
		case c == '\\' && i+1 < len(property) && (property[i+1] == '.' || property[i+1] == '\\'):
			cur.WriteByte(property[i+1])
			i++
		case c == '.':
			path = append(path, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(c)
		}
	}
	return append(path, cur.String())
}

// propertyRaw returns the raw JSON of the member of content that path reaches, in one pass over
// content whatever the path's depth: each object on the path is read once, its other members
// skipped token by token, so the cost is linear in the content. field names the data entry in
// messages, which name the property and the depth, never content.
func propertyRaw(content []byte, path []string, field, property string) (json.RawMessage, error) {
	content = bytes.TrimSpace(content)
	dec := json.NewDecoder(bytes.NewReader(content))
	invalid := func(depth int) error {
		if depth == 0 {
			return newError(v1alpha1.ReasonInvalidSecretFormat, "%s: the secret is not a valid JSON object", field)
		}
		return newError(v1alpha1.ReasonInvalidSecretFormat, "%s: property %s: member %d of its path is not a valid JSON object", field, describeKey(property), depth)
	}
	// object reads the object at depth (the content is depth 0) and returns the raw member
	// path[depth] reaches.
	var object func(depth int) (json.RawMessage, error)
	object = func(depth int) (json.RawMessage, error) {
		if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
			if depth == 0 {
				return nil, newError(v1alpha1.ReasonInvalidSecretFormat, "%s: the secret is not a JSON object", field)
			}
			return nil, invalid(depth)
		}
		var found json.RawMessage
		ok := false
		seen := map[string]bool{}
		for dec.More() {
			tok, err := dec.Token()
			if err != nil {
				return nil, invalid(depth)
			}
			name, isName := tok.(string)
			if !isName {
				return nil, invalid(depth)
			}
			if seen[name] {
				within := field
				if depth > 0 {
					within = fmt.Sprintf("%s: property %s: member %d of its path", field, describeKey(property), depth)
				}
				return nil, newError(v1alpha1.ReasonInvalidSecretFormat, "%s: key %s appears more than once", within, describeKey(name))
			}
			seen[name] = true
			switch {
			case name != path[depth]:
				if err := skipValue(dec); err != nil {
					return nil, invalid(depth)
				}
			case depth == len(path)-1:
				if err := dec.Decode(&found); err != nil {
					return nil, invalid(depth)
				}
				ok = true
			default:
				if found, err = object(depth + 1); err != nil {
					return nil, err
				}
				ok = true
			}
		}
		if tok, err := dec.Token(); err != nil || tok != json.Delim('}') {
			return nil, invalid(depth)
		}
		if !ok {
			return nil, newError(v1alpha1.ReasonPropertyNotFound, "%s: the secret has no property %s (no member %s at depth %d)", field, describeKey(property), describeKey(path[depth]), depth+1)
		}
		return found, nil
	}
	raw, err := object(0)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF { // nothing may follow the object
		return nil, invalid(0)
	}
	return raw, nil
}

// skipValue reads one JSON value from dec, whatever its nesting, without keeping it.
func skipValue(dec *json.Decoder) error {
	depth := 0
	for {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			depth++
		case json.Delim('}'), json.Delim(']'):
			depth--
		}
		if depth == 0 {
			return nil
		}
	}
}

func memberValue(raw json.RawMessage) ([]byte, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return nil, fmt.Errorf("empty value")
	}
	switch raw[0] {
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, err
		}
		return []byte(s), nil
	case '{', '[':
		var buf bytes.Buffer
		if err := json.Compact(&buf, raw); err != nil {
			return nil, err
		}
		return buf.Bytes(), nil
	case 'n':
		return []byte{}, nil
	default:
		// Numbers and booleans keep their JSON text, so 1.50 stays 1.50.
		return append([]byte(nil), raw...), nil
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
