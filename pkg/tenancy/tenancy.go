// Package tenancy decides which namespace may read which Secrets Manager secret, and as which
// AWS identity, from the controller's flags and the annotations a cluster admin puts on
// Namespaces. It is pure: no clients, no AWS; the controller asks it before any cache lookup or
// AWS call.
package tenancy

import (
	"errors"
	"fmt"
	"strings"
)

// Annotations a cluster admin puts on a Namespace. Tenants normally cannot edit Namespaces.
const (
	// AnnotationAllowedSecretIDs holds comma-separated patterns of the secret ids the namespace's
	// AWSSecrets may read, e.g. "team-a/*, shared/db-readonly". Present but holding no pattern
	// ("", " ", ","), it denies every read, in both modes (see Policy.Decide).
	AnnotationAllowedSecretIDs = "aws-secret-controller.mumoshu.github.io/allowed-secret-ids"
	// AnnotationRoleARN names an IAM role the controller assumes to read the namespace's secrets.
	// Present but blank, it denies every read rather than reading as the controller's own
	// identity (see Policy.Decide).
	AnnotationRoleARN = "aws-secret-controller.mumoshu.github.io/role-arn"
)

// Mode says what a namespace without the allow-list annotation may read.
type Mode string

const (
	// ModeOpen lets every namespace read every secret id within the global bound: one tenant,
	// or an embedder with its own rules.
	ModeOpen Mode = "open"
	// ModeAllowList lets a namespace read only what its allow-list annotation permits, within the
	// global bound; a namespace without the annotation reads nothing.
	ModeAllowList Mode = "allow-list"
)

// ParseMode parses a --namespace-policy value.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case ModeOpen, ModeAllowList:
		return m, nil
	}
	return "", fmt.Errorf("namespace policy %q: want %q or %q", s, ModeOpen, ModeAllowList)
}

// Patterns are secret id patterns: `*` matches any run of characters (`/` included), anything
// else matches itself. They are matched against a secretId exactly as an AWSSecret writes it, so
// an ARN is matched as a string: "team-a/*" does not allow "arn:aws:secretsmanager:...:secret:team-a/x".
type Patterns []string

// ParsePatterns splits a comma-separated list, ignoring whitespace around items and empty items.
// A list that holds no pattern ("", " ", ",") gives nil, which allows nothing as a namespace's
// list but means "no bound" as Policy.Global: use ParsePatternList where that difference matters.
func ParsePatterns(s string) Patterns {
	var p Patterns
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			p = append(p, item)
		}
	}
	return p
}

// ErrNoPattern is returned by ParsePatternList for a list that holds no pattern.
var ErrNoPattern = errors.New("holds no secret id pattern")

// ParsePatternList is ParsePatterns for a list that must hold at least one pattern: one that
// holds none ("", " ", ",", " , ") is an error wrapping ErrNoPattern, never an empty list that a
// caller could take for "no bound". Callers for whom "" means something (the
// --allowed-secret-ids flag: no bound) check for it first.
func ParsePatternList(s string) (Patterns, error) {
	p := ParsePatterns(s)
	if len(p) == 0 {
		return nil, fmt.Errorf("%q %w", s, ErrNoPattern)
	}
	return p, nil
}

// Allows says whether any pattern matches secretID.
func (p Patterns) Allows(secretID string) bool {
	for _, pattern := range p {
		if match(pattern, secretID) {
			return true
		}
	}
	return false
}

// String joins the patterns as they would be written.
func (p Patterns) String() string { return strings.Join(p, ", ") }

// match reports whether s matches pattern, where `*` matches any run of characters.
func match(pattern, s string) bool {
	parts := strings.Split(pattern, "*")
	if len(parts) == 1 {
		return pattern == s
	}
	if !strings.HasPrefix(s, parts[0]) {
		return false
	}
	s = s[len(parts[0]):]
	last := parts[len(parts)-1]
	for _, part := range parts[1 : len(parts)-1] {
		i := strings.Index(s, part)
		if i < 0 {
			return false
		}
		s = s[i+len(part):]
	}
	return len(s) >= len(last) && strings.HasSuffix(s, last)
}

// Policy is the controller's tenancy configuration.
type Policy struct {
	// Mode says what namespaces without the allow-list annotation may read.
	Mode Mode
	// Global, when set, bounds every namespace in both modes (--allowed-secret-ids). Nil means
	// no bound; non-nil and empty allows nothing. Build it with ParsePatternList, so that a list
	// that holds no pattern is refused rather than read as no bound.
	Global Patterns
}

// Decision is what a namespace may do for one AWSSecret.
type Decision struct {
	// Allowed says every secret id may be read.
	Allowed bool
	// Denied is the first secret id that may not be read, and Why says why, naming the
	// namespace, the id and what to change; both are empty when Allowed.
	Denied, Why string
	// RoleARN is the role to read as; empty means the controller's own identity.
	RoleARN string
}

// Decide says whether a namespace, with the given annotations, may read every one of
// secretIDs, and as which role.
//
// An annotation that is present but says nothing is an admin's mistake, and it is denied rather
// than read in the broadest way, in both modes:
//   - AnnotationAllowedSecretIDs present but holding no pattern ("", " ", ","): in allow-list
//     mode it could allow nothing anyway; in open mode, where the annotation's patterns are not
//     enforced, an admin who wrote it still meant to restrict the namespace, and it is not read
//     as "anything". Either way the denial says the annotation holds no pattern.
//   - AnnotationRoleARN present but blank (after trimming whitespace): it is not read as the
//     controller's own, broader identity; the denial says to remove it or set a role ARN.
//
// Both are checked before --allowed-secret-ids, so the message names the annotation to fix.
// These denials, like the others, are per secret id: an AWSSecret that pins no secret is allowed
// (nothing is read).
func (p Policy) Decide(namespace string, annotations map[string]string, secretIDs []string) Decision {
	roleARN, hasRole := annotations[AnnotationRoleARN]
	d := Decision{RoleARN: strings.TrimSpace(roleARN)}
	allowList, annotated := annotations[AnnotationAllowedSecretIDs]
	namespacePatterns := ParsePatterns(allowList)
	for _, id := range secretIDs {
		switch {
		case annotated && len(namespacePatterns) == 0:
			d.Denied = id
			d.Why = fmt.Sprintf("namespace %s may not read secretId %q: its %s annotation is present but holds no pattern (%q); a cluster admin must write the secret id patterns it may read, e.g. \"team-a/*\", or remove the annotation", namespace, id, AnnotationAllowedSecretIDs, allowList)
		case hasRole && d.RoleARN == "":
			d.Denied = id
			d.Why = fmt.Sprintf("namespace %s may not read secretId %q: its %s annotation is present but empty; remove it to read as the controller's identity, or set a role ARN", namespace, id, AnnotationRoleARN)
		case p.Global != nil && !p.Global.Allows(id):
			d.Denied = id
			d.Why = fmt.Sprintf("secretId %q is outside the controller's --allowed-secret-ids; a cluster admin must widen it to read this secret from namespace %s", id, namespace)
		case p.Mode == ModeAllowList && !annotated:
			d.Denied = id
			d.Why = fmt.Sprintf("namespace %s has no %s annotation, so it may read no secret; a cluster admin must annotate the Namespace to allow secretId %q", namespace, AnnotationAllowedSecretIDs, id)
		case p.Mode == ModeAllowList && !namespacePatterns.Allows(id):
			d.Denied = id
			d.Why = fmt.Sprintf("secretId %q is not allowed in namespace %s; a cluster admin must add it to the Namespace's %s annotation", id, namespace, AnnotationAllowedSecretIDs)
		default:
			continue
		}
		return d
	}
	d.Allowed = true
	return d
}
