package controller

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/mumoshu/aws-secret-controller/pkg/apis/mumoshu/v1alpha1"
)

// A mapping is how an AWSSecret turns the versions it pins into the Secret's data: dataFrom,
// stringDataFrom, data entries and the template, checked and parsed before anything is read, so
// that a bad spec costs no AWS call.
type mapping struct {
	spec      *v1alpha1.AWSSecretSpec
	templates *templates
}

// newMapping checks an AWSSecret's data entries and template. The CRD's schema refuses what it
// checks; the controller checks again because it cannot know which schema stored the object.
func newMapping(spec *v1alpha1.AWSSecretSpec) (*mapping, error) {
	seen := make(map[string]bool, len(spec.Data))
	for i, e := range spec.Data {
		if err := validSecretKey(e.Key); err != nil {
			return nil, permanentError(v1alpha1.ReasonInvalidKey, "data[%d]: key %s is not a valid Secret key: %s", i, describeKey(e.Key), err)
		}
		if seen[e.Key] {
			return nil, permanentError(v1alpha1.ReasonInvalidKey, "data[%d]: key %s appears more than once", i, describeKey(e.Key))
		}
		seen[e.Key] = true
		switch e.Decode {
		case "", v1alpha1.DecodingNone, v1alpha1.DecodingBase64:
		default:
			return nil, permanentError(v1alpha1.ReasonInvalidSecretFormat, "data[%d]: decode %q is neither None nor Base64", i, e.Decode)
		}
	}
	t, err := parseTemplates(spec.Template)
	if err != nil {
		return nil, err
	}
	return &mapping{spec: spec, templates: t}, nil
}

// mappingDigest is a digest of the data entries and the template, as the Secret records them: a
// change to either renders the Secret again from the versions it pins. It is empty when the
// spec has neither, so that the Secrets of AWSSecrets that use only stringDataFrom and dataFrom
// carry nothing new.
func mappingDigest(spec *v1alpha1.AWSSecretSpec) string {
	if len(spec.Data) == 0 && spec.Template == nil {
		return ""
	}
	// JSON of the API types is canonical enough: fields in declaration order, map keys sorted.
	b, _ := json.Marshal(struct {
		Data     []v1alpha1.DataEntry     `json:"data"`
		Template *v1alpha1.SecretTemplate `json:"template"`
	}{spec.Data, spec.Template})
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// reader returns the content of a pinned version.
type reader func(ref v1alpha1.SecretsManagerSecretRef) ([]byte, error)

// data computes the Secret's data from the pinned versions that read returns. Keys gather in a
// fixed order, later winning: dataFrom, stringDataFrom, data entries, then the template's keys.
func (m *mapping) data(read reader) (map[string][]byte, error) {
	gathered := map[string][]byte{}
	sources := []struct {
		source *v1alpha1.DataSource
		decode func([]byte) (map[string][]byte, error)
	}{
		{m.spec.DataFrom, binaryData},
		{m.spec.StringDataFrom, stringData},
	}
	for _, s := range sources {
		if s.source == nil {
			continue
		}
		content, err := read(s.source.SecretsManagerSecretRef)
		if err != nil {
			return nil, err
		}
		decoded, err := s.decode(content)
		if err != nil {
			return nil, err
		}
		maps.Copy(gathered, decoded)
	}
	for _, e := range m.spec.Data {
		content, err := read(e.SecretsManagerSecretRef)
		if err != nil {
			return nil, err
		}
		value, err := entryValue(e, content)
		if err != nil {
			return nil, err
		}
		gathered[e.Key] = value
	}
	if m.templates == nil {
		return gathered, nil
	}
	return m.templates.render(gathered)
}

// entryValue maps a version's content into a data entry's key: the whole content or one
// property of it, then decoded.
func entryValue(e v1alpha1.DataEntry, content []byte) ([]byte, error) {
	field := "data key " + describeKey(e.Key)
	value := content
	if e.Property != "" {
		v, err := propertyValue(content, e.Property, field)
		if err != nil {
			return nil, err
		}
		value = v
	}
	if e.Decode == v1alpha1.DecodingBase64 {
		decoded, ok := decodeBase64(strings.TrimSpace(string(value)))
		if !ok {
			return nil, permanentError(v1alpha1.ReasonInvalidSecretFormat, "%s: the value is not valid base64", field)
		}
		value = decoded
	}
	// A copy, so that the Secret never shares memory with the version cache.
	return append([]byte{}, value...), nil
}

// validSecretKey says why key is not a valid Secret data key, or nil.
func validSecretKey(key string) error {
	if msgs := validation.IsConfigMapKey(key); len(msgs) > 0 {
		return errors.New(msgs[0])
	}
	return nil
}

// versionsDigest is a digest of a list of versions, which the Secret records in place of the
// list of its data entries' versions: one annotation of fixed size, however many entries.
func versionsDigest(versions []v1alpha1.SecretsManagerSecretRef) string {
	h := sha256.New()
	for _, v := range versions {
		fmt.Fprintf(h, "%d:%s%d:%s", len(v.SecretID), v.SecretID, len(v.VersionID), v.VersionID)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}
