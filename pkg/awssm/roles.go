package awssm

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	ststypes "github.com/aws/aws-sdk-go-v2/service/sts/types"
)

// Identity is whom Secrets Manager is asked as. The zero Identity is the controller's own
// credentials.
type Identity struct {
	// RoleARN is the IAM role assumed through STS; empty means the controller's own credentials.
	RoleARN string
	// Namespace is the Kubernetes namespace the role is assumed for. It names the STS session
	// and, with session tags on, tags it, so that IAM policies can tell namespaces apart (ABAC).
	// The same role for two namespaces is two identities: their permissions may differ.
	Namespace string
}

// String names the identity in messages.
func (id Identity) String() string {
	if id.RoleARN == "" {
		return "the controller's own AWS identity"
	}
	return fmt.Sprintf("role %s for namespace %s", id.RoleARN, id.Namespace)
}

// SessionTagKey is the STS session tag that carries the namespace. It is not
// kubernetes-namespace: EKS Pod Identity already sets that one as a transitive tag, and STS
// refuses a duplicate key.
const SessionTagKey = "aws-secret-controller-namespace"

// Roles makes, and keeps, one Secrets Manager client per role Identity, whose credentials come
// from STS AssumeRole with the controller's own credentials, cached and refreshed by the SDK
// before they expire. It is safe for concurrent use.
type Roles struct {
	base        aws.Config
	sts         stscreds.AssumeRoleAPIClient
	cfg         Config
	sessionTags bool

	mu      sync.Mutex
	clients map[Identity]API
}

// NewRoles returns the role clients for an SDK configuration. The STS client comes from the same
// configuration, so AWS_ENDPOINT_URL_STS points it at an emulator. sessionTags adds the
// SessionTagKey tag to every session; turn it off for trust policies without sts:TagSession.
func NewRoles(awsCfg aws.Config, cfg Config, sessionTags bool) *Roles {
	var client stscreds.AssumeRoleAPIClient = sts.NewFromConfig(awsCfg)
	if cfg.OnAssumeRole != nil {
		client = countingSTS{client, cfg.OnAssumeRole}
	}
	return &Roles{base: awsCfg, sts: client, cfg: cfg, sessionTags: sessionTags, clients: map[Identity]API{}}
}

// countingSTS tells observe the result of every AssumeRole call.
type countingSTS struct {
	stscreds.AssumeRoleAPIClient
	observe func(result string)
}

func (c countingSTS) AssumeRole(ctx context.Context, in *sts.AssumeRoleInput, optFns ...func(*sts.Options)) (*sts.AssumeRoleOutput, error) {
	out, err := c.AssumeRoleAPIClient.AssumeRole(ctx, in, optFns...)
	result := "success"
	if err != nil {
		result = Classify(err, "", "").(*Error).Reason
	}
	c.observe(result)
	return out, err
}

// For returns the client that reads as id.
func (r *Roles) For(id Identity) (API, error) {
	if id.RoleARN == "" {
		return nil, fmt.Errorf("awssm: Roles serves role identities only")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if c, ok := r.clients[id]; ok {
		return c, nil
	}
	awsCfg := r.base.Copy()
	awsCfg.Credentials = r.credentials(id)
	c := secretsmanager.NewFromConfig(awsCfg, r.cfg.clientOptions)
	r.clients[id] = c
	return c, nil
}

// credentials are id's: AssumeRole on its role, with a session named and tagged after its
// namespace, cached until shortly before they expire.
func (r *Roles) credentials(id Identity) aws.CredentialsProvider {
	return aws.NewCredentialsCache(stscreds.NewAssumeRoleProvider(r.sts, id.RoleARN, func(o *stscreds.AssumeRoleOptions) {
		o.RoleSessionName = SessionName(id.Namespace)
		if r.sessionTags {
			o.Tags = []ststypes.Tag{{Key: aws.String(SessionTagKey), Value: aws.String(id.Namespace)}}
		}
	}))
}

// sessionNameUnsafe are the characters STS does not allow in a session name.
var sessionNameUnsafe = regexp.MustCompile(`[^\w+=,.@-]`)

// sessionNamePrefix starts every session name; maxSessionName is STS's limit.
const (
	sessionNamePrefix = "aws-secret-controller@"
	maxSessionName    = 64
)

// SessionName is the STS session name for a namespace, within STS's limits (2 to 64 of
// [\w+=,.@-]), so CloudTrail shows which namespace a read was for.
//
// A name that fits is "aws-secret-controller@<namespace>", exactly. When it does not (a
// namespace longer than 42 characters, or one with characters STS refuses, which become "-"),
// cutting or replacing would lose information and two namespaces could share a session: the
// name is then the first 55 characters of that name (refused characters as "-"), "_", and the
// first 8 hex digits of the SHA-256 of the whole namespace, e.g.
// "aws-secret-controller@<first 33 characters>_1a2b3c4d", 64 characters.
// "_" is not in a Kubernetes namespace name, so such a name is never another namespace's
// uncut one; two cut names collide only if their namespaces share the kept prefix and 32 bits
// of hash. The session tag, when on, still carries the whole namespace.
func SessionName(namespace string) string {
	name := sessionNamePrefix + namespace
	if len(name) <= maxSessionName && !sessionNameUnsafe.MatchString(name) {
		return name
	}
	sum := sha256.Sum256([]byte(namespace))
	suffix := "_" + hex.EncodeToString(sum[:4])
	name = sessionNameUnsafe.ReplaceAllString(name, "-")
	if keep := maxSessionName - len(suffix); len(name) > keep {
		name = name[:keep]
	}
	return name + suffix
}
