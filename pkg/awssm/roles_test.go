package awssm

import (
	"context"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	ststypes "github.com/aws/aws-sdk-go-v2/service/sts/types"
)

// TestCacheNeverCrossesIdentities: a version read as one identity is never served to another;
// each identity pays its own call, and repeats as the same identity cost nothing.
func TestCacheNeverCrossesIdentities(t *testing.T) {
	own := &countingAPI{}
	perRole := map[Identity]*countingAPI{}
	var mu sync.Mutex
	c := NewCache(own, CacheOptions{Roles: func(id Identity) (API, error) {
		mu.Lock()
		defer mu.Unlock()
		if perRole[id] == nil {
			perRole[id] = &countingAPI{}
		}
		return perRole[id], nil
	}})
	teamA := Identity{RoleARN: "arn:aws:iam::111111111111:role/team-a", Namespace: "team-a"}
	teamB := Identity{RoleARN: "arn:aws:iam::111111111111:role/team-b", Namespace: "team-b"}
	teamAOtherNamespace := Identity{RoleARN: teamA.RoleARN, Namespace: "team-a-staging"}
	ctx := context.Background()
	for _, id := range []Identity{{}, teamA, teamB, teamAOtherNamespace, {}, teamA, teamB, teamAOtherNamespace} {
		if _, err := c.Get(ctx, id, "shared/db", "v1"); err != nil {
			t.Fatal(err)
		}
	}
	if own.count() != 1 {
		t.Errorf("own identity: %d calls, want 1", own.count())
	}
	for _, id := range []Identity{teamA, teamB, teamAOtherNamespace} {
		if n := perRole[id].count(); n != 1 {
			t.Errorf("%s: %d calls, want 1", id, n)
		}
	}
	if s := c.Stats(); s.Misses != 4 || s.Hits != 4 {
		t.Errorf("stats = %+v, want 4 misses and 4 hits", s)
	}
}

func TestCacheWithoutRoles(t *testing.T) {
	c := NewCache(&countingAPI{}, CacheOptions{})
	_, err := c.Get(context.Background(), Identity{RoleARN: "arn:aws:iam::1:role/x", Namespace: "n"}, "s", "v")
	if err == nil || !strings.Contains(err.Error(), "role arn:aws:iam::1:role/x") {
		t.Errorf("Get as a role without Roles: %v, want an error naming the role", err)
	}
}

// fakeSTS records AssumeRole requests and answers with short-lived credentials.
type fakeSTS struct {
	mu    sync.Mutex
	calls []*sts.AssumeRoleInput
}

func (f *fakeSTS) AssumeRole(_ context.Context, in *sts.AssumeRoleInput, _ ...func(*sts.Options)) (*sts.AssumeRoleOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, in)
	return &sts.AssumeRoleOutput{Credentials: &ststypes.Credentials{
		AccessKeyId: aws.String("AKIA"), SecretAccessKey: aws.String("s"), SessionToken: aws.String("t"),
		Expiration: aws.Time(time.Now().Add(time.Hour)),
	}}, nil
}

func TestRolesAssumeWithNamespaceSession(t *testing.T) {
	for _, tags := range []bool{true, false} {
		fake := &fakeSTS{}
		r := &Roles{sts: fake, sessionTags: tags, clients: map[Identity]API{}}
		id := Identity{RoleARN: "arn:aws:iam::111111111111:role/team-a", Namespace: "team-a"}
		creds := r.credentials(id)
		for range 3 {
			if _, err := creds.Retrieve(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
		if len(fake.calls) != 1 {
			t.Fatalf("tags=%v: AssumeRole calls = %d, want 1 (credentials are cached)", tags, len(fake.calls))
		}
		in := fake.calls[0]
		if aws.ToString(in.RoleArn) != id.RoleARN || aws.ToString(in.RoleSessionName) != "aws-secret-controller@team-a" {
			t.Errorf("tags=%v: AssumeRole(%s, %s)", tags, aws.ToString(in.RoleArn), aws.ToString(in.RoleSessionName))
		}
		wantTags := 0
		if tags {
			wantTags = 1
		}
		if len(in.Tags) != wantTags {
			t.Fatalf("tags=%v: session tags %v", tags, in.Tags)
		}
		if tags && (aws.ToString(in.Tags[0].Key) != SessionTagKey || aws.ToString(in.Tags[0].Value) != "team-a") {
			t.Errorf("session tag %s=%s", aws.ToString(in.Tags[0].Key), aws.ToString(in.Tags[0].Value))
		}
	}
}

// TestRolesKeepOneClientPerIdentity: the client (and so its cached credentials) of an identity
// is made once; another namespace or role gets its own.
func TestRolesKeepOneClientPerIdentity(t *testing.T) {
	r := NewRoles(aws.Config{Region: "us-east-1"}, Config{}, true)
	a := Identity{RoleARN: "arn:aws:iam::111111111111:role/r", Namespace: "team-a"}
	b := Identity{RoleARN: a.RoleARN, Namespace: "team-b"}
	first, err := r.For(a)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := r.For(a)
	other, _ := r.For(b)
	if first != again {
		t.Error("a second For of the same identity made a new client: its credentials would be assumed again")
	}
	if first == other {
		t.Error("two namespaces share a client")
	}
	if _, err := r.For(Identity{}); err == nil {
		t.Error("For of the controller's own identity should fail: it is not a role")
	}
}

// sessionNameSTS is what STS accepts as a RoleSessionName.
var sessionNameSTS = regexp.MustCompile(`^[\w+=,.@-]{2,64}$`)

// TestSessionName: names that fit are "aws-secret-controller@<namespace>", unchanged; names
// that would be cut or have characters replaced keep a prefix and get a hash of the whole
// namespace, so no two namespaces share a session name.
func TestSessionName(t *testing.T) {
	long := func(prefix string, n int, fill string) string {
		return prefix + strings.Repeat(fill, n-len(prefix))
	}
	shared := strings.Repeat("team-a-", 6) // 42 characters
	fits := long("a", 42, "b")             // the longest namespace whose name fits
	tests := map[string]struct {
		namespace string
		want      string // "": only checked for validity and uniqueness
	}{
		"short":                 {namespace: "team-a", want: "aws-secret-controller@team-a"},
		"empty":                 {namespace: "", want: "aws-secret-controller@"},
		"42 characters: fits":   {namespace: fits, want: "aws-secret-controller@" + fits},
		"allowed punctuation":   {namespace: "a_b.c=d,e+f@g", want: "aws-secret-controller@a_b.c=d,e+f@g"},
		"43 characters: hashed": {namespace: long("a", 43, "b")},
		"63, shared prefix, x":  {namespace: long(shared, 63, "x")},
		"63, shared prefix, y":  {namespace: long(shared, 63, "y")},
		"63, shared prefix, z":  {namespace: long(shared, 62, "z") + "q"},
		"slash is replaced":     {namespace: "a/b"},
		"colon is replaced":     {namespace: "a:b"},
		"what they would be":    {namespace: "a-b", want: "aws-secret-controller@a-b"},
		"multibyte":             {namespace: "ü-ns"},
		"invalid UTF-8":         {namespace: "a\xffb"},
		"long and replaced":     {namespace: long("team/", 70, "é")},
	}
	seen := map[string]string{}
	for name, tc := range tests {
		got := SessionName(tc.namespace)
		if tc.want != "" && got != tc.want {
			t.Errorf("%s: SessionName(%q) = %q, want %q (unchanged)", name, tc.namespace, got, tc.want)
		}
		if !sessionNameSTS.MatchString(got) {
			t.Errorf("%s: SessionName(%q) = %q (%d characters), not 2 to 64 of [\\w+=,.@-]", name, tc.namespace, got, len(got))
		}
		if !strings.HasPrefix(got, "aws-secret-controller@") {
			t.Errorf("%s: SessionName(%q) = %q does not say whose it is", name, tc.namespace, got)
		}
		if other, ok := seen[got]; ok {
			t.Errorf("SessionName(%q) = SessionName(%q) = %q", tc.namespace, other, got)
		}
		seen[got] = tc.namespace
		if got != SessionName(tc.namespace) {
			t.Errorf("%s: SessionName(%q) is not stable", name, tc.namespace)
		}
	}

	// A long namespace's name keeps as much of it as fits, so CloudTrail still shows whose it is.
	if got := SessionName(long(shared, 63, "x")); !strings.HasPrefix(got, "aws-secret-controller@"+shared[:33]) || len(got) != 64 {
		t.Errorf("SessionName of a 63-character namespace = %q, want its first 33 characters kept, 64 in all", got)
	}
	// A namespace cannot take another's hashed name: the longest uncut one, written to look like
	// it (a valid namespace name has no "_"), gets a name of its own.
	victim := long(shared, 63, "x")
	lookalike := strings.ReplaceAll(strings.TrimPrefix(SessionName(victim), "aws-secret-controller@"), "_", "-")
	if len(lookalike) != 42 {
		t.Fatalf("lookalike %q: %d characters, want 42", lookalike, len(lookalike))
	}
	if SessionName(lookalike) == SessionName(victim) {
		t.Errorf("namespace %q takes the session name of namespace %q: %q", lookalike, victim, SessionName(victim))
	}
}
