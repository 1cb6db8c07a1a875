package controller

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/mumoshu/aws-secret-controller/pkg/apis/mumoshu/v1alpha1"
)

// The payload functions turn the content of a Secrets Manager version into Secret data. Their
// errors name keys, which are not secret, and never include content.

// stringData maps a stringDataFrom version: a JSON object whose members become data keys. A string
// is copied as it is; a number or boolean as its JSON text (123, true); an object or array as
// compact JSON; null as an empty value.
func stringData(content []byte) (map[string][]byte, error) {
	members, err := jsonObject(content, "stringDataFrom")
	if err != nil {
		return nil, err
	}
	data := make(map[string][]byte, len(members))
	for key, raw := range members {
		value, err := memberValue(raw)
		if err != nil {
			return nil, permanentError(v1alpha1.ReasonInvalidSecretFormat, "stringDataFrom: the value of key %s is not valid JSON", describeKey(key))
		}
		data[key] = value
	}
	return data, nil
}

// binaryData maps a dataFrom version: a JSON object whose values are base64 strings, each decoded
// into one data key. Standard and URL-safe alphabets are accepted, padded or not (AWS tools and
// people write both); null is an empty value.
func binaryData(content []byte) (map[string][]byte, error) {
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
		var encoded string
		if json.Unmarshal(raw, &encoded) != nil {
			return nil, permanentError(v1alpha1.ReasonInvalidSecretFormat, "dataFrom: the value of key %s is not a base64 string", describeKey(key))
		}
		value, ok := decodeBase64(encoded)
		if !ok {
			return nil, permanentError(v1alpha1.ReasonInvalidSecretFormat, "dataFrom: the value of key %s is not valid base64", describeKey(key))
		}
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
			return nil, permanentError(v1alpha1.ReasonInvalidKey, "%s: key %s is not a valid Secret key: %s", field, describeKey(key), msgs[0])
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
		return nil, permanentError(v1alpha1.ReasonInvalidSecretFormat, "%s: the secret is not a JSON object", field)
	}
	invalid := permanentError(v1alpha1.ReasonInvalidSecretFormat, "%s: the secret is not a valid JSON object", field)
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
			return nil, permanentError(v1alpha1.ReasonInvalidSecretFormat, "%s: key %s appears more than once", field, describeKey(key))
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

// propertyValue maps one member of a JSON object, reached through property, as stringDataFrom
// maps members. field names the data entry in messages, which name the property, never content.
func propertyValue(content []byte, property, field string) ([]byte, error) {
	path := propertyPath(property)
	raw := json.RawMessage(content)
	for i, name := range path {
		within := field
		if i > 0 {
			within = fmt.Sprintf("%s: property %s: member %d of its path", field, describeKey(property), i)
		}
		members, err := jsonMembers(raw, within)
		if err != nil {
			return nil, err
		}
		member, ok := members[name]
		if !ok {
			return nil, permanentError(v1alpha1.ReasonPropertyNotFound, "%s: the secret has no property %s (no member %s at depth %d)", field, describeKey(property), describeKey(name), i+1)
		}
		raw = member
	}
	value, err := memberValue(raw)
	if err != nil {
		return nil, permanentError(v1alpha1.ReasonInvalidSecretFormat, "%s: the value of property %s is not valid JSON", field, describeKey(property))
	}
	return value, nil
}

// describeKeyRunes is how much of a key messages show.
const describeKeyRunes = 10

// describeKey names a key in a message without quoting all of it: a key can be long (a condition
// message has a size limit) and can itself be sensitive. The start and the length are enough to
// find it.
func describeKey(key string) string {
	r := []rune(key)
	if len(r) <= describeKeyRunes {
		return strconv.Quote(key)
	}
	return fmt.Sprintf("%q… (%d characters)", string(r[:describeKeyRunes]), len(r))
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

// dataHash is a digest of Secret data, kept in an annotation so that a hand edit of the data is
// seen without a call to AWS. Keys and values are length-prefixed so no two maps share a digest.
func dataHash(data map[string][]byte) string {
	h := sha256.New()
	var n [binary.MaxVarintLen64]byte
	for _, key := range sortedKeys(data) {
		h.Write(n[:binary.PutUvarint(n[:], uint64(len(key)))])
		h.Write([]byte(key))
		h.Write(n[:binary.PutUvarint(n[:], uint64(len(data[key])))])
		h.Write(data[key])
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
