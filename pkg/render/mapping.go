package render

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/mumoshu/aws-secret-controller/pkg/apis/mumoshu/v1alpha1"
)

// entryValue maps a version's content into a data entry's key: the whole content or one
// property of it, then decoded. The value is a copy, charged to the budget, so that the Secret
// never shares memory with the version cache.
func entryValue(e v1alpha1.DataEntry, content []byte, b *budget) ([]byte, error) {
	field := "data key " + describeKey(e.Key)
	value := content
	if e.Property != "" {
		raw, err := propertyRaw(content, propertyPath(e.Property), field, e.Property)
		if err != nil {
			return nil, err
		}
		if err := b.reserve(int64(len(raw))); err != nil {
			return nil, err
		}
		v, err := memberValue(raw)
		b.settle(int64(len(raw)), len(v))
		if err != nil {
			return nil, newError(v1alpha1.ReasonInvalidSecretFormat, "%s: the value of property %s is not valid JSON", field, describeKey(e.Property))
		}
		value = v
	} else {
		if err := b.charge(len(value)); err != nil {
			return nil, err
		}
		value = append([]byte{}, value...)
	}
	if e.Decode == v1alpha1.DecodingBase64 {
		if err := b.alive(); err != nil {
			return nil, err
		}
		decoded, ok := decodeBase64(strings.TrimSpace(string(value)))
		if !ok {
			return nil, newError(v1alpha1.ReasonInvalidSecretFormat, "%s: the value is not valid base64", field)
		}
		// Decoding shrinks: the decoded value replaces what was charged.
		value = decoded
	}
	return value, nil
}

// validSecretKey says why key is not a valid Secret data key, or nil.
func validSecretKey(key string) error {
	if msgs := validation.IsConfigMapKey(key); len(msgs) > 0 {
		return errors.New(msgs[0])
	}
	return nil
}

// MappingDigest is a digest of the data entries and the template, as the Secret records them: a
// change to either renders the Secret again from the versions it pins. It is empty when the
// spec has neither, so that the Secrets of AWSSecrets that use only stringDataFrom and dataFrom
// carry nothing new.
func MappingDigest(spec *v1alpha1.AWSSecretSpec) string {
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

// VersionsDigest is a digest of a list of versions, which the Secret records in place of the
// list of its data entries' versions: one annotation of fixed size, however many entries.
func VersionsDigest(versions []v1alpha1.SecretsManagerSecretRef) string {
	h := sha256.New()
	for _, v := range versions {
		fmt.Fprintf(h, "%d:%s%d:%s", len(v.SecretID), v.SecretID, len(v.VersionID), v.VersionID)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// DataHash is a digest of Secret data, kept in an annotation so that a hand edit of the data is
// seen without a call to AWS. Keys and values are length-prefixed so no two maps share a digest.
func DataHash(data map[string][]byte) string {
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
