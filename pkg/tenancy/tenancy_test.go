package tenancy

import (
	"strings"
	"testing"
)

func TestPatterns(t *testing.T) {
	tests := map[string]struct {
		patterns string
		secretID string
		want     bool
	}{
		"exact":                       {patterns: "shared/db-readonly", secretID: "shared/db-readonly", want: true},
		"exact, other id":             {patterns: "shared/db-readonly", secretID: "shared/db", want: false},
		"prefix":                      {patterns: "team-a/*", secretID: "team-a/db", want: true},
		"prefix spans slashes":        {patterns: "team-a/*", secretID: "team-a/prod/db", want: true},
		"prefix needs its slash":      {patterns: "team-a/*", secretID: "team-ab/db", want: false},
		"prefix alone is not enough":  {patterns: "team-a/*", secretID: "team-a", want: false},
		"star matches empty":          {patterns: "team-a/*", secretID: "team-a/", want: true},
		"star in the middle":          {patterns: "prod/*/db", secretID: "prod/payments/db", want: true},
		"star in the middle, no tail": {patterns: "prod/*/db", secretID: "prod/payments/cache", want: false},
		"two stars":                   {patterns: "*/team-a/*", secretID: "prod/team-a/db", want: true},
		"suffix":                      {patterns: "*-readonly", secretID: "shared/db-readonly", want: true},
		"overlapping prefix and tail": {patterns: "ab*ba", secretID: "aba", want: false},
		"star alone allows all":       {patterns: "*", secretID: "anything/at/all", want: true},
		"ARN is a string":             {patterns: "team-a/*", secretID: "arn:aws:secretsmanager:us-east-1:123456789012:secret:team-a/db", want: false},
		"ARN pattern":                 {patterns: "arn:aws:secretsmanager:*:secret:team-a/*", secretID: "arn:aws:secretsmanager:us-east-1:123456789012:secret:team-a/db-AbCdEf", want: true},
		"second item":                 {patterns: "team-a/*, shared/db-readonly", secretID: "shared/db-readonly", want: true},
		"spaces around items":         {patterns: "  team-b/x ,\tteam-a/*  ", secretID: "team-a/db", want: true},
		"empty annotation":            {patterns: "", secretID: "team-a/db", want: false},
		"only commas":                 {patterns: " , ,", secretID: "team-a/db", want: false},
		"dot is literal":              {patterns: "team.a/db", secretID: "teamXa/db", want: false},
		"regex metacharacters":        {patterns: "team-a/(db)+[0-9]?$", secretID: "team-a/(db)+[0-9]?$", want: true},
		"regex metacharacters, no":    {patterns: "team-a/(db)+", secretID: "team-a/dbdb", want: false},
		"question mark is literal":    {patterns: "team-a/d?", secretID: "team-a/db", want: false},
		"case matters":                {patterns: "Team-A/*", secretID: "team-a/db", want: false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := ParsePatterns(tc.patterns).Allows(tc.secretID); got != tc.want {
				t.Errorf("%q allows %q = %v, want %v", tc.patterns, tc.secretID, got, tc.want)
			}
		})
	}
}

func TestDecide(t *testing.T) {
	allowA := map[string]string{AnnotationAllowedSecretIDs: "team-a/*"}
	tests := map[string]struct {
		policy      Policy
		annotations map[string]string
		secretIDs   []string
		wantAllowed bool
		wantDenied  string
		// wantWhy are words the message must hold.
		wantWhy []string
	}{
		"open: anything":                    {policy: Policy{Mode: ModeOpen}, secretIDs: []string{"x/y"}, wantAllowed: true},
		"open, global bound: inside":        {policy: Policy{Mode: ModeOpen, Global: Patterns{"prod/*"}}, secretIDs: []string{"prod/db"}, wantAllowed: true},
		"open, global bound: outside":       {policy: Policy{Mode: ModeOpen, Global: Patterns{"prod/*"}}, secretIDs: []string{"dev/db"}, wantDenied: "dev/db", wantWhy: []string{"--allowed-secret-ids", "ns"}},
		"allow-list: unannotated namespace": {policy: Policy{Mode: ModeAllowList}, secretIDs: []string{"team-a/db"}, wantDenied: "team-a/db", wantWhy: []string{"ns", AnnotationAllowedSecretIDs, "no"}},
		"allow-list: allowed":               {policy: Policy{Mode: ModeAllowList}, annotations: allowA, secretIDs: []string{"team-a/db"}, wantAllowed: true},
		"allow-list: not allowed":           {policy: Policy{Mode: ModeAllowList}, annotations: allowA, secretIDs: []string{"team-b/db"}, wantDenied: "team-b/db", wantWhy: []string{"ns", "team-b/db", AnnotationAllowedSecretIDs}},
		"allow-list: every reference counts": {
			policy: Policy{Mode: ModeAllowList}, annotations: allowA, secretIDs: []string{"team-a/db", "team-b/db"},
			wantDenied: "team-b/db",
		},
		"allow-list: empty annotation allows nothing": {
			policy: Policy{Mode: ModeAllowList}, annotations: map[string]string{AnnotationAllowedSecretIDs: ""}, secretIDs: []string{"team-a/db"},
			wantDenied: "team-a/db",
		},
		"allow-list within the global bound": {
			policy: Policy{Mode: ModeAllowList, Global: Patterns{"team-a/prod/*"}}, annotations: allowA, secretIDs: []string{"team-a/dev/db"},
			wantDenied: "team-a/dev/db", wantWhy: []string{"--allowed-secret-ids"},
		},
		"open mode ignores the annotation": {policy: Policy{Mode: ModeOpen}, annotations: allowA, secretIDs: []string{"team-b/db"}, wantAllowed: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			d := tc.policy.Decide("ns", tc.annotations, tc.secretIDs)
			if d.Allowed != tc.wantAllowed || d.Denied != tc.wantDenied {
				t.Fatalf("Decide() = %+v, want allowed %v denied %q", d, tc.wantAllowed, tc.wantDenied)
			}
			for _, w := range tc.wantWhy {
				if !strings.Contains(d.Why, w) {
					t.Errorf("message %q does not say %q", d.Why, w)
				}
			}
		})
	}
}

func TestDecideRole(t *testing.T) {
	d := Policy{Mode: ModeOpen}.Decide("ns", map[string]string{AnnotationRoleARN: " arn:aws:iam::123456789012:role/team-a "}, []string{"x"})
	if d.RoleARN != "arn:aws:iam::123456789012:role/team-a" {
		t.Errorf("RoleARN = %q", d.RoleARN)
	}
}

func FuzzMatch(f *testing.F) {
	f.Add("team-a/*", "team-a/db")
	f.Add("*a*b*", "xaxbx")
	f.Fuzz(func(t *testing.T, pattern, s string) {
		got := match(pattern, s)
		if !strings.Contains(pattern, "*") && got != (pattern == s) {
			t.Fatalf("literal %q vs %q = %v", pattern, s, got)
		}
		if got && !strings.HasPrefix(s, strings.Split(pattern, "*")[0]) {
			t.Fatalf("%q matched %q without its prefix", pattern, s)
		}
	})
}
