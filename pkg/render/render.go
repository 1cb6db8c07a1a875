// Package render turns the Secrets Manager versions an AWSSecret pins into its Secret's data:
// the payloads of dataFrom and stringDataFrom, the data entries (whole value or one JSON
// property, optionally base64-decoded) and the template keys.
//
// It is a pure function of the spec and the version contents, and a tenant writes both, so every
// rendering runs under a Budget that is charged as the work runs, never checked on the result
// afterwards: every byte a payload, an entry or a template function produces counts (intermediate
// values included), the Secret's data may not pass MaxSecretSize, a template's loops have a
// bounded number of steps, and rendering stops at the context's deadline. Errors are built from
// names (a key, a property path, a template position, the kind of failure and the limit), never
// from data, so no value can reach a status, an event or a log through them.
package render

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strconv"

	"github.com/mumoshu/aws-secret-controller/pkg/apis/mumoshu/v1alpha1"
)

// MaxSecretSize is the API server's bound on the total size of a Secret's data.
const MaxSecretSize = 1 << 20

// Limits bound one rendering. The CRD's schema states most of the spec's bounds too; they are
// checked here again because the controller cannot know which schema stored an object, and an
// older or edited CRD must not lift them.
type Limits struct {
	// Produced bounds every byte one rendering produces: decoded payload values, data entry
	// values, every string a template function returns (each step of a chain, each
	// re-assignment) and the rendered keys. A function whose result could pass it is refused
	// before it runs, by an upper bound of its result's size.
	Produced int64
	// Output bounds the Secret's data: the gathered keys a Merge template keeps and every byte
	// the template keys write, counted as they write it.
	Output int64
	// RangeSteps bounds a template key's loop work: the nodes of its range bodies times the
	// gathered keys they range over.
	RangeSteps int
	// Compared bounds the bytes eq, ne, lt, le, gt and ge compare in one rendering.
	Compared int64
	// DataEntries, PropertyBytes, TemplateKeys and TemplateBytes bound the spec: the number
	// of data entries, the length of a property path, the number of template keys and the
	// size of each key's template source.
	DataEntries, PropertyBytes, TemplateKeys, TemplateBytes int
}

// DefaultLimits are the controller's limits. Produced allows a template to quote or JSON-encode
// a value of several hundred KiB (their results are bounded at four and six times the input)
// while a worker's rendering stays within a few MiB of memory.
var DefaultLimits = Limits{
	Produced:      4 << 20,
	Output:        MaxSecretSize,
	RangeSteps:    1 << 20,
	Compared:      16 << 20,
	DataEntries:   256,
	PropertyBytes: 1024,
	TemplateKeys:  256,
	TemplateBytes: 64 << 10,
}

// Error is a rendering failure. Reason is the AWSSecret's Ready reason (InvalidTemplate,
// InvalidKey, InvalidSecretFormat, PropertyNotFound); the message names keys, positions and
// limits only. Every Error is permanent: the same spec and versions fail the same way, unless
// Deadline says the rendering ran out of time.
type Error struct {
	Reason string
	// Deadline says the rendering stopped at its context's deadline: the same inputs may pass
	// on a less busy machine, so the failure is not remembered.
	Deadline bool
	msg      string
}

func (e *Error) Error() string { return e.msg }

func newError(reason, format string, args ...any) *Error {
	return &Error{Reason: reason, msg: fmt.Sprintf(format, args...)}
}

// Reader returns the content of a pinned version.
type Reader func(ref v1alpha1.SecretsManagerSecretRef) ([]byte, error)

// Mapping is an AWSSecret's spec, checked and parsed: its data entries and template are checked
// before anything is read, so that a bad spec costs no AWS call. A Mapping renders once: it
// carries the budget of that rendering.
type Mapping struct {
	spec      *v1alpha1.AWSSecretSpec
	templates *templates
	budget    *budget
}

// New checks spec against limits and parses its template keys.
func New(spec *v1alpha1.AWSSecretSpec, limits Limits) (*Mapping, error) {
	if n := len(spec.Data); n > limits.DataEntries {
		return nil, newError(v1alpha1.ReasonInvalidKey, "data: %d entries; at most %d are allowed", n, limits.DataEntries)
	}
	seen := make(map[string]bool, len(spec.Data))
	for i, e := range spec.Data {
		if err := validSecretKey(e.Key); err != nil {
			return nil, newError(v1alpha1.ReasonInvalidKey, "data[%d]: key %s is not a valid Secret key: %s", i, describeKey(e.Key), err)
		}
		if seen[e.Key] {
			return nil, newError(v1alpha1.ReasonInvalidKey, "data[%d]: key %s appears more than once", i, describeKey(e.Key))
		}
		seen[e.Key] = true
		if n := len(e.Property); n > limits.PropertyBytes {
			return nil, newError(v1alpha1.ReasonInvalidSecretFormat, "data[%d]: the property path is %d bytes long; at most %d are allowed", i, n, limits.PropertyBytes)
		}
		switch e.Decode {
		case "", v1alpha1.DecodingNone, v1alpha1.DecodingBase64:
		default:
			return nil, newError(v1alpha1.ReasonInvalidSecretFormat, "data[%d]: decode %s is neither None nor Base64", i, describeKey(string(e.Decode)))
		}
	}
	b := &budget{limits: limits}
	t, err := parseTemplates(spec.Template, b)
	if err != nil {
		return nil, err
	}
	return &Mapping{spec: spec, templates: t, budget: b}, nil
}

// Data computes the Secret's data from the pinned versions that read returns, within the
// Mapping's limits and ctx's deadline. Keys gather in a fixed order, later winning: dataFrom,
// stringDataFrom, data entries, then the template's keys. Errors from read are returned as they
// are; every other error is an *Error.
func (m *Mapping) Data(ctx context.Context, read Reader) (map[string][]byte, error) {
	b := m.budget
	b.ctx = ctx
	gathered := map[string][]byte{}
	sources := []struct {
		source *v1alpha1.DataSource
		decode func([]byte, *budget) (map[string][]byte, error)
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
		decoded, err := s.decode(content, b)
		if err != nil {
			return nil, err
		}
		maps.Copy(gathered, decoded)
	}
	for i, e := range m.spec.Data {
		content, err := read(e.SecretsManagerSecretRef)
		if err != nil {
			return nil, err
		}
		value, err := entryValue(e, content, b)
		if err != nil {
			if ke, ok := err.(*kindError); ok {
				return nil, budgetFailure(ke, fmt.Sprintf("data[%d] (key %s)", i, describeKey(e.Key)), b.limits)
			}
			return nil, err
		}
		gathered[e.Key] = value
	}
	if m.templates == nil {
		// Without a template the data are the gathered keys, already charged; the Secret's
		// size is checked against its type with the rest of it (InvalidSecret).
		return gathered, nil
	}
	return m.templates.render(gathered, b)
}

func size(data map[string][]byte) int64 {
	var n int64
	for k, v := range data {
		n += int64(len(k) + len(v))
	}
	return n
}

// budget is what one rendering may still spend. It is not safe for concurrent use: one
// rendering runs on one goroutine.
type budget struct {
	ctx    context.Context
	limits Limits
	// produced, written and compared are what the rendering spent so far.
	produced, written, compared int64
}

// A kindError is a kind of failure, without a place: the caller names the key or entry.
type kindError struct{ kind string }

func (e *kindError) Error() string { return e.kind }

var (
	errProduced = &kindError{"produced"}
	errOutput   = &kindError{"output"}
	errCompared = &kindError{"compared"}
	errDeadline = &kindError{"deadline"}
)

// budgetFailure describes a budget kindError at place.
func budgetFailure(e *kindError, place string, l Limits) *Error {
	switch e {
	case errProduced:
		return newError(v1alpha1.ReasonInvalidTemplate, "%s: the rendering would produce more than %d bytes in all (every value the payloads, data entries and template functions produce counts)", place, l.Produced)
	case errOutput:
		return newError(v1alpha1.ReasonInvalidTemplate, "%s: the Secret's data would pass %d bytes", place, l.Output)
	case errCompared:
		return newError(v1alpha1.ReasonInvalidTemplate, "%s: comparisons would compare more than %d bytes in all", place, l.Compared)
	case errDeadline:
		err := newError(v1alpha1.ReasonInvalidTemplate, "%s: the rendering did not finish before the sync's deadline", place)
		err.Deadline = true
		return err
	}
	return newError(v1alpha1.ReasonInvalidTemplate, "%s: %s", place, e.kind)
}

// alive fails once the rendering's context is done.
func (b *budget) alive() error {
	if b.ctx != nil && b.ctx.Err() != nil {
		return errDeadline
	}
	return nil
}

// reserve charges at most bound bytes that a step is about to produce, before it runs; settle
// gives back what it did not use.
func (b *budget) reserve(bound int64) error {
	if err := b.alive(); err != nil {
		return err
	}
	if bound < 0 || bound > b.limits.Produced-b.produced {
		return errProduced
	}
	b.produced += bound
	return nil
}

func (b *budget) settle(bound int64, used int) { b.produced -= bound - int64(used) }

// charge counts n bytes that were produced.
func (b *budget) charge(n int) error { return b.reserve(int64(n)) }

// output counts n bytes of the Secret's data.
func (b *budget) output(n int64) error {
	if err := b.alive(); err != nil {
		return err
	}
	if n > b.limits.Output-b.written {
		return errOutput
	}
	b.written += n
	return nil
}

// compare counts n bytes that a comparison is about to look at.
func (b *budget) compare(n int) error {
	if err := b.alive(); err != nil {
		return err
	}
	if int64(n) > b.limits.Compared-b.compared {
		return errCompared
	}
	b.compared += int64(n)
	return nil
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

// IsRenderError reports whether err is a rendering failure, and returns it.
func IsRenderError(err error) (*Error, bool) {
	var re *Error
	ok := errors.As(err, &re)
	return re, ok
}
