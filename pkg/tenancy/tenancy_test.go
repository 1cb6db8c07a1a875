package tenancy

import (
	"errors"
	"slices"
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

// TestParsePatternList: a list that holds no pattern is an error, never an empty list that
// could be read as "no bound"; anything with one pattern parses as ParsePatterns does.
func TestParsePatternList(t *testing.T) {
	tests := map[string]struct {
		list string
		want Patterns // nil: an error
	}{
		"empty":                   {list: ""},
		"blank":                   {list: " "},
		"tab and newline":         {list: "\t\n"},
		"one comma":               {list: ","},
		"comma between blanks":    {list: " , "},
		"only commas":             {list: ",,,"},
		"trailing comma":          {list: "a,", want: Patterns{"a"}},
		"leading comma":           {list: ", a", want: Patterns{"a"}},
		"two items":               {list: "team-a/*, shared/db", want: Patterns{"team-a/*", "shared/db"}},
		"star alone is a pattern": {list: " * ", want: Patterns{"*"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := ParsePatternList(tc.list)
			if tc.want == nil {
				if !errors.Is(err, ErrNoPattern) || got != nil {
					t.Fatalf("ParsePatternList(%q) = %q, %v; want ErrNoPattern", tc.list, got, err)
				}
				if !strings.Contains(err.Error(), "holds no secret id pattern") {
					t.Errorf("error %q does not say the list holds no pattern", err)
				}
				return
			}
			if err != nil || !slices.Equal(got, tc.want) {
				t.Errorf("ParsePatternList(%q) = %q, %v; want %q", tc.list, got, err, tc.want)
			}
		})
	}
}

func TestDecide(t *testing.T) {
	allowA := map[string]string{AnnotationAllowedSecretIDs: "team-a/*"}
	blankAllowList := []string{"namespace ns", AnnotationAllowedSecretIDs, "holds no pattern", "remove the annotation"}
	blankRole := []string{"namespace ns", AnnotationRoleARN, "present but empty; remove it to read as the controller's identity, or set a role ARN"}
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
			wantDenied: "team-a/db", wantWhy: blankAllowList,
		},
		"allow-list: blank annotation": {
			policy: Policy{Mode: ModeAllowList}, annotations: map[string]string{AnnotationAllowedSecretIDs: " "}, secretIDs: []string{"team-a/db"},
			wantDenied: "team-a/db", wantWhy: blankAllowList,
		},
		"allow-list: comma-only annotation": {
			policy: Policy{Mode: ModeAllowList}, annotations: map[string]string{AnnotationAllowedSecretIDs: ","}, secretIDs: []string{"team-a/db"},
			wantDenied: "team-a/db", wantWhy: blankAllowList,
		},
		"open: empty annotation is a mistake, not anything": {
			policy: Policy{Mode: ModeOpen}, annotations: map[string]string{AnnotationAllowedSecretIDs: ""}, secretIDs: []string{"team-a/db"},
			wantDenied: "team-a/db", wantWhy: blankAllowList,
		},
		"open: blank annotation": {
			policy: Policy{Mode: ModeOpen}, annotations: map[string]string{AnnotationAllowedSecretIDs: " "}, secretIDs: []string{"team-a/db"},
			wantDenied: "team-a/db", wantWhy: blankAllowList,
		},
		"open: comma-only annotation": {
			policy: Policy{Mode: ModeOpen}, annotations: map[string]string{AnnotationAllowedSecretIDs: " , "}, secretIDs: []string{"team-a/db"},
			wantDenied: "team-a/db", wantWhy: blankAllowList,
		},
		"open: trailing comma still holds a pattern": {
			policy: Policy{Mode: ModeOpen}, annotations: map[string]string{AnnotationAllowedSecretIDs: "team-a/*,"}, secretIDs: []string{"team-b/db"},
			wantAllowed: true,
		},
		"allow-list: trailing comma still holds a pattern": {
			policy: Policy{Mode: ModeAllowList}, annotations: map[string]string{AnnotationAllowedSecretIDs: "team-a/*,"}, secretIDs: []string{"team-a/db"},
			wantAllowed: true,
		},
		"open: blank annotation in a global bound": {
			policy: Policy{Mode: ModeOpen, Global: Patterns{"team-a/*"}}, annotations: map[string]string{AnnotationAllowedSecretIDs: ""}, secretIDs: []string{"team-a/db"},
			wantDenied: "team-a/db", wantWhy: blankAllowList,
		},
		"open: empty role-arn": {
			policy: Policy{Mode: ModeOpen}, annotations: map[string]string{AnnotationRoleARN: ""}, secretIDs: []string{"x/y"},
			wantDenied: "x/y", wantWhy: blankRole,
		},
		"open: blank role-arn": {
			policy: Policy{Mode: ModeOpen}, annotations: map[string]string{AnnotationRoleARN: " \t"}, secretIDs: []string{"x/y"},
			wantDenied: "x/y", wantWhy: blankRole,
		},
		"allow-list: blank role-arn on an allowed read": {
			policy: Policy{Mode: ModeAllowList}, annotations: map[string]string{AnnotationAllowedSecretIDs: "team-a/*", AnnotationRoleARN: "  "}, secretIDs: []string{"team-a/db"},
			wantDenied: "team-a/db", wantWhy: blankRole,
		},
		"nothing pinned, nothing read": {
			policy: Policy{Mode: ModeOpen}, annotations: map[string]string{AnnotationAllowedSecretIDs: "", AnnotationRoleARN: ""},
			wantAllowed: true,
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
	const arn = "arn:aws:iam::123456789012:role/team-a"
	tests := map[string]struct {
		annotations map[string]string
		wantAllowed bool
		wantRole    string
	}{
		"no annotation: the controller's identity": {annotations: map[string]string{}, wantAllowed: true},
		"a role, trimmed":                          {annotations: map[string]string{AnnotationRoleARN: " " + arn + " "}, wantAllowed: true, wantRole: arn},
		"empty: denied, not the controller's":      {annotations: map[string]string{AnnotationRoleARN: ""}},
		"blank: denied, not the controller's":      {annotations: map[string]string{AnnotationRoleARN: " \n"}},
	}
	for name, tc := range tests {
		for _, mode := range []Mode{ModeOpen, ModeAllowList} {
			t.Run(name+"/"+string(mode), func(t *testing.T) {
				annotations := map[string]string{AnnotationAllowedSecretIDs: "*"}
				for k, v := range tc.annotations {
					annotations[k] = v
				}
				d := Policy{Mode: mode}.Decide("ns", annotations, []string{"x"})
				if d.Allowed != tc.wantAllowed || d.RoleARN != tc.wantRole {
					t.Errorf("Decide() = %+v, want allowed %v, role %q", d, tc.wantAllowed, tc.wantRole)
				}
			})
		}
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
