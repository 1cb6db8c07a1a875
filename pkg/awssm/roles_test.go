package awssm

import (
	"context"
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

func TestSessionName(t *testing.T) {
	for ns, want := range map[string]string{
		"team-a":                "aws-secret-controller@team-a",
		strings.Repeat("n", 63): ("aws-secret-controller@" + strings.Repeat("n", 63))[:64],
	} {
		if got := SessionName(ns); got != want || len(got) > 64 {
			t.Errorf("SessionName(%q) = %q, want %q", ns, got, want)
		}
	}
}
