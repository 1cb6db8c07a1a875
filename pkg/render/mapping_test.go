package render

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/mumoshu/aws-secret-controller/pkg/apis/mumoshu/v1alpha1"
)

// The versions behind the mapping tables, by secret id; each version id is "v1".
var mappingVersions = map[string]string{
	"json":     `{"username":"app","password":"` + secretValue + `","host":"db.internal","port":5432,"ok":true,"none":null,"nested":{"a":{"b":"deep"}},"a.b":"dotted","list":[1,{"x":"y"}],"tls":{"cert":"CERT","key":"KEY"},"b64":"aGVsbG8=","url":"aGk_Pz8","empty":"","db password":"pw"}`,
	"token":    secretValue + "\n",
	"b64token": base64.StdEncoding.EncodeToString([]byte(secretValue)),
	"string":   `{"foo":"from-string","shared":"string"}`,
	"dup":      `{"outer":{"inner":"` + secretValue + `","inner":"y"},"top":"` + secretValue + `","top":"y"}`,
	"binary":   `{"foo":"` + base64.StdEncoding.EncodeToString([]byte("from-binary")) + `","shared":"` + base64.StdEncoding.EncodeToString([]byte("binary")) + `","bin":"` + base64.StdEncoding.EncodeToString([]byte("only-binary")) + `"}`,
}

func ref(id string) v1alpha1.SecretsManagerSecretRef {
	return v1alpha1.SecretsManagerSecretRef{SecretID: id, VersionID: "v1"}
}

func entry(key, id, property string) v1alpha1.DataEntry {
	return v1alpha1.DataEntry{Key: key, SecretsManagerSecretRef: ref(id), Property: property}
}

// mapSpec runs a spec's mapping over mappingVersions and returns its data as strings, its
// error, and how many reads it made of each version.
func mapSpec(t *testing.T, spec v1alpha1.AWSSecretSpec) (map[string]string, error, map[string]int) {
	t.Helper()
	reads := map[string]int{}
	m, err := New(&spec, DefaultLimits)
	if err != nil {
		return nil, err, reads
	}
	data, err := m.Data(context.Background(), func(r v1alpha1.SecretsManagerSecretRef) ([]byte, error) {
		reads[r.SecretID]++
		content, ok := mappingVersions[r.SecretID]
		if !ok || r.VersionID != "v1" {
			return nil, fmt.Errorf("no version %s of %s", r.VersionID, r.SecretID)
		}
		return []byte(content), nil
	})
	if err != nil {
		return nil, err, reads
	}
	out := map[string]string{}
	for k, v := range data {
		out[k] = string(v)
	}
	return out, nil, reads
}

// TestDataEntries: each mapping rule of a data entry, alone.
func TestDataEntries(t *testing.T) {
	tests := map[string]struct {
		entry      v1alpha1.DataEntry
		want       string
		wantReason string
	}{
		"whole string":             {entry: entry("k", "token", ""), want: secretValue + "\n"},
		"whole JSON is not parsed": {entry: entry("k", "string", ""), want: mappingVersions["string"]},
		"property string":          {entry: entry("k", "json", "username"), want: "app"},
		"property number":          {entry: entry("k", "json", "port"), want: "5432"},
		"property bool":            {entry: entry("k", "json", "ok"), want: "true"},
		"property null":            {entry: entry("k", "json", "none"), want: ""},
		"property empty string":    {entry: entry("k", "json", "empty"), want: ""},
		"property object":          {entry: entry("k", "json", "tls"), want: `{"cert":"CERT","key":"KEY"}`},
		"property array":           {entry: entry("k", "json", "list"), want: `[1,{"x":"y"}]`},
		"nested property":          {entry: entry("k", "json", "nested.a.b"), want: "deep"},
		"escaped dot":              {entry: entry("k", "json", `a\.b`), want: "dotted"},
		"base64 whole":             {entry: v1alpha1.DataEntry{Key: "k", SecretsManagerSecretRef: ref("b64token"), Decode: v1alpha1.DecodingBase64}, want: secretValue},
		"base64 property":          {entry: v1alpha1.DataEntry{Key: "k", SecretsManagerSecretRef: ref("json"), Property: "b64", Decode: v1alpha1.DecodingBase64}, want: "hello"},
		"base64 URL-safe unpadded": {entry: v1alpha1.DataEntry{Key: "k", SecretsManagerSecretRef: ref("json"), Property: "url", Decode: v1alpha1.DecodingBase64}, want: "hi???"},
		"decode None":              {entry: v1alpha1.DataEntry{Key: "k", SecretsManagerSecretRef: ref("json"), Property: "b64", Decode: v1alpha1.DecodingNone}, want: "aGVsbG8="},

		"missing property":              {entry: entry("k", "json", "nope"), wantReason: v1alpha1.ReasonPropertyNotFound},
		"missing nested property":       {entry: entry("k", "json", "nested.a.c"), wantReason: v1alpha1.ReasonPropertyNotFound},
		"dotted name is not a path":     {entry: entry("k", "json", "a.b.c"), wantReason: v1alpha1.ReasonPropertyNotFound},
		"property of a non-object":      {entry: entry("k", "json", "username.x"), wantReason: v1alpha1.ReasonInvalidSecretFormat},
		"property of a number":          {entry: entry("k", "json", "port.x"), wantReason: v1alpha1.ReasonInvalidSecretFormat},
		"property of an array":          {entry: entry("k", "json", "list.x"), wantReason: v1alpha1.ReasonInvalidSecretFormat},
		"property of a nested string":   {entry: entry("k", "json", "nested.a.b.c"), wantReason: v1alpha1.ReasonInvalidSecretFormat},
		"missing member beside a value": {entry: entry("k", "json", "nested.a.x"), wantReason: v1alpha1.ReasonPropertyNotFound},
		"property of a plaintext":       {entry: entry("k", "token", "x"), wantReason: v1alpha1.ReasonInvalidSecretFormat},
		"not base64":                    {entry: v1alpha1.DataEntry{Key: "k", SecretsManagerSecretRef: ref("json"), Decode: v1alpha1.DecodingBase64}, wantReason: v1alpha1.ReasonInvalidSecretFormat},
		"unknown decode (old CRD)":      {entry: v1alpha1.DataEntry{Key: "k", SecretsManagerSecretRef: ref("token"), Decode: "Gzip"}, wantReason: v1alpha1.ReasonInvalidSecretFormat},
		"invalid key (old CRD)":         {entry: entry("a b", "token", ""), wantReason: v1alpha1.ReasonInvalidKey},
		"member names need not be keys": {entry: entry("k", "json", "db password"), want: "pw"},
		"duplicate key":                 {entry: entry("k", "dup", "top"), wantReason: v1alpha1.ReasonInvalidSecretFormat},
		"duplicate member in the path":  {entry: entry("k", "dup", "outer.inner"), wantReason: v1alpha1.ReasonInvalidSecretFormat},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			data, err, _ := mapSpec(t, v1alpha1.AWSSecretSpec{Data: []v1alpha1.DataEntry{tc.entry}})
			if tc.wantReason != "" {
				if got := classify(err); err == nil || got.reason != tc.wantReason || got.transient {
					t.Fatalf("error %v (%+v), want permanent %s", err, got, tc.wantReason)
				}
				assertNoValue(t, err.Error())
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(map[string]string{tc.entry.Key: tc.want}, data); diff != "" {
				t.Errorf("data (-want +got):\n%s", diff)
			}
		})
	}
}

// TestDuplicateKeysSayWhere: a key that appears twice is named with where it is: the secret's
// top level, or the member of the property's path it is in.
func TestDuplicateKeysSayWhere(t *testing.T) {
	for property, want := range map[string]string{
		"top":         `key "top" appears more than once`,
		"outer.inner": `member 1 of its path: key "inner" appears more than once`,
	} {
		_, err, _ := mapSpec(t, v1alpha1.AWSSecretSpec{Data: []v1alpha1.DataEntry{entry("k", "dup", property)}})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("property %s: %v, want %q", property, err, want)
		}
		if err != nil && strings.Contains(err.Error(), "member") != strings.Contains(property, ".") {
			t.Errorf("property %s: %v names a member of a path only for a path", property, err)
		}
	}
}

func TestPropertyPath(t *testing.T) {
	for property, want := range map[string][]string{
		"a":       {"a"},
		"a.b":     {"a", "b"},
		`a\.b`:    {"a.b"},
		`a\\.b`:   {`a\`, "b"},
		`a\b`:     {`a\b`},
		`a.b\.c`:  {"a", "b.c"},
		".a":      {"", "a"},
		`trail\`:  {`trail\`},
		`x\\\.y`:  {`x\.y`},
		"a..b":    {"a", "", "b"},
		"ünï.cöd": {"ünï", "cöd"},
	} {
		if got := propertyPath(property); !cmp.Equal(got, want) {
			t.Errorf("propertyPath(%q) = %q, want %q", property, got, want)
		}
	}
}

// TestKeyPrecedence: keys gather in the documented order, later winning: dataFrom,
// stringDataFrom, data entries, the template's keys; Replace keeps only the template's.
func TestKeyPrecedence(t *testing.T) {
	sources := v1alpha1.AWSSecretSpec{
		DataFrom:       &v1alpha1.DataSource{SecretsManagerSecretRef: ref("binary")},
		StringDataFrom: &v1alpha1.DataSource{SecretsManagerSecretRef: ref("string")},
		Data: []v1alpha1.DataEntry{
			entry("shared", "json", "username"),
			entry("user", "json", "username"),
		},
	}
	tests := map[string]struct {
		template *v1alpha1.SecretTemplate
		want     map[string]string
	}{
		"no template": {want: map[string]string{
			"bin": "only-binary", "foo": "from-string", "shared": "app", "user": "app",
		}},
		"merge": {
			template: &v1alpha1.SecretTemplate{MergePolicy: v1alpha1.MergePolicyMerge, Data: map[string]string{
				"shared": "{{ .foo }}/{{ .shared }}/{{ .bin }}",
			}},
			want: map[string]string{"bin": "only-binary", "foo": "from-string", "shared": "from-string/app/only-binary", "user": "app"},
		},
		"replace (the default)": {
			template: &v1alpha1.SecretTemplate{Data: map[string]string{"all": "{{ .foo }}{{ .shared }}{{ .bin }}"}},
			want:     map[string]string{"all": "from-stringapponly-binary"},
		},
		"replace, explicit": {
			template: &v1alpha1.SecretTemplate{MergePolicy: v1alpha1.MergePolicyReplace, Data: map[string]string{"user": "{{ upper .user }}"}},
			want:     map[string]string{"user": "APP"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			spec := sources
			spec.Template = tc.template
			data, err, _ := mapSpec(t, spec)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, data); diff != "" {
				t.Errorf("data (-want +got):\n%s", diff)
			}
		})
	}
}

// TestTemplateFunctions: each documented function, and text/template's own.
func TestTemplateFunctions(t *testing.T) {
	tests := map[string]struct{ template, want string }{
		"field":        {`{{ .username }}`, "app"},
		"index":        {`{{ index . "tls.crt" }}`, "CERT"},
		"index of $":   {`{{ range $k, $v := . }}{{ if eq $k "port" }}{{ index $ "tls.crt" }}{{ end }}{{ end }}`, "CERT"},
		"b64enc":       {`{{ b64enc .username }}`, "YXBw"},
		"b64dec":       {`{{ b64dec .b64 }}`, "hello"},
		"trim":         {`[{{ trim .padded }}]`, "[x y]"},
		"upper lower":  {`{{ upper .username }}{{ lower "ABC" }}`, "APPabc"},
		"quote":        {`{{ quote .quoted }}`, `"say \"hi\"\n"`},
		"toJson":       {`{{ toJson .quoted }}`, `"say \"hi\"\n"`},
		"toJson html":  {`{{ toJson "<&>" }}`, `"<&>"`},
		"urlEscape":    {`{{ urlEscape "p@ss/w:rd +?#%" }}`, "p%40ss%2Fw%3Ard%20%2B%3F%23%25"},
		"printf":       {`{{ printf "%s:%s" .username .port }}`, "app:5432"},
		"range a map":  {`{{ range $k, $v := . }}{{ $k }};{{ end }}`, "b64;padded;port;quoted;tls.crt;username;"},
		"if eq":        {`{{ if eq .port "5432" }}default{{ else }}custom{{ end }}`, "default"},
		"range $":      {`{{ with .username }}{{ range $k, $v := $ }}{{ $k }}{{ end }}{{ end }}`, "b64paddedportquotedtls.crtusername"},
		"with":         {`{{ with .username }}{{ . }}{{ end }}`, "app"},
		"static":       {`plain text`, "plain text"},
		"number limit": {`{{ 65536 }} {{ -65536 }} {{ 1.5 }}`, "65536 -65536 1.5"},
	}
	gathered := map[string][]byte{
		"username": []byte("app"), "port": []byte("5432"), "tls.crt": []byte("CERT"),
		"b64": []byte("aGVsbG8="), "padded": []byte("  x y \n"), "quoted": []byte("say \"hi\"\n"),
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			tmpl, err := parseTemplates(&v1alpha1.SecretTemplate{Data: map[string]string{"out": tc.template}}, testBudget())
			if err != nil {
				t.Fatal(err)
			}
			data, err := tmpl.render(gathered, testBudget())
			if err != nil {
				t.Fatal(err)
			}
			if got := string(data["out"]); got != tc.want {
				t.Errorf("rendered %q, want %q", got, tc.want)
			}
		})
	}
}

// TestTemplateErrors: every way a template fails is InvalidTemplate (InvalidKey for a bad key),
// names the key, and never echoes a value, even where text/template's own message would.
func TestTemplateErrors(t *testing.T) {
	tests := map[string]struct {
		template string
		key      string
		reason   string
		// parse: refused before anything is read.
		parse bool
	}{
		"missing key":            {template: `{{ .nope }}`},
		"missing index":          {template: `{{ index . "nope" }}`},
		"syntax":                 {template: `{{ .username `, parse: true},
		"unknown function":       {template: `{{ env "HOME" }}`, parse: true},
		"no file access":         {template: `{{ readFile "/etc/passwd" }}`, parse: true},
		"define":                 {template: `{{ define "x" }}{{ end }}`, parse: true},
		"block":                  {template: `{{ block "x" . }}{{ end }}`, parse: true},
		"template":               {template: `{{ template "out" . }}`, parse: true},
		"nested range":           {template: `{{ range . }}{{ range . }}{{ end }}{{ end }}`, parse: true},
		"range in if in range":   {template: `{{ range . }}{{ if true }}{{ range $ }}{{ end }}{{ end }}{{ end }}`, parse: true},
		"range over a number":    {template: `{{ range 3 }}{{ end }}`, parse: true},
		"range over a variable":  {template: `{{ $n := 3 }}{{ range $n }}{{ end }}`, parse: true},
		"range over len":         {template: `{{ range (len .password) }}{{ end }}`, parse: true},
		"range over a value":     {template: `{{ range .password }}{{ end }}`, parse: true},
		"range over dot in with": {template: `{{ with .password }}{{ range . }}{{ end }}{{ end }}`, parse: true},
		"assign $":               {template: `{{ $ = 3 }}{{ range $ }}{{ end }}`, parse: true},
		"big number":             {template: `{{ printf "%*d" 99999999 0 }}`, parse: true},
		"big float":              {template: `{{ 1e9 }}`, parse: true},
		"b64dec of a non-base64": {template: `{{ b64dec (printf "%s!" .password) }}`},
		"compare the keys":       {template: `{{ eq . $ }}`},
		"if over a value":        {template: `{{ if .password.x }}{{ end }}`},
		"compare a value":        {template: `{{ lt .password 1 }}`},
		"slice a value":          {template: `{{ slice .password 1 1000 }}`},
		"too large":              {template: `{{ range $k, $v := . }}{{ printf "%065536d" 0 }}{{ printf "%065536d" 0 }}{{ printf "%065536d" 0 }}{{ printf "%065536d" 0 }}{{ printf "%065536d" 0 }}{{ printf "%065536d" 0 }}{{ printf "%065536d" 0 }}{{ printf "%065536d" 0 }}{{ printf "%065536d" 0 }}{{ end }}`},
		"bad key":                {template: `x`, key: "a b", reason: v1alpha1.ReasonInvalidKey, parse: true},
		"bad merge policy":       {template: `x`, parse: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			key, reason := "out", v1alpha1.ReasonInvalidTemplate
			if tc.key != "" {
				key = tc.key
			}
			if tc.reason != "" {
				reason = tc.reason
			}
			spec := v1alpha1.AWSSecretSpec{
				Data:     []v1alpha1.DataEntry{entry("username", "json", "username"), entry("password", "json", "password")},
				Template: &v1alpha1.SecretTemplate{Data: map[string]string{key: tc.template}},
			}
			if name == "bad merge policy" {
				spec.Template.MergePolicy = "Sometimes"
			}
			_, err, reads := mapSpec(t, spec)
			if got := classify(err); err == nil || got.reason != reason || got.transient {
				t.Fatalf("error %v (%+v), want permanent %s", err, got, reason)
			}
			if name != "bad merge policy" && !strings.Contains(err.Error(), describeKey(key)) {
				t.Errorf("error %q does not name the key %s", err, key)
			}
			if tc.parse && len(reads) != 0 {
				t.Errorf("reads = %v before a template that does not parse was refused", reads)
			}
			assertNoValue(t, err.Error())
		})
	}
}

func assertNoValue(t *testing.T, s string) {
	t.Helper()
	// Every value the mapping versions hold that a failed property could reach (a short one
	// like "app" is looked for quoted, as a message would quote it).
	for _, v := range []string{secretValue, "hunter2", "CERT", "deep", "dotted", "db.internal", `"app"`, "5432", "aGVsbG8=", "aGk_Pz8", `"pw"`, `{"x":"y"}`, `{"b":"deep"}`} {
		if strings.Contains(s, v) {
			t.Errorf("a message contains a test value (%d bytes)", len(v))
		}
	}
}

// FuzzMapping checks that no content, property or template makes the mapping panic or hang,
// that every error is a known permanent reason whose message never contains the content, and
// that every key it returns is a valid Secret key.
func FuzzMapping(f *testing.F) {
	for _, seed := range []struct{ content, property, template string }{
		{`{"a":{"b":"c"}}`, "a.b", `{{ .k }}`},
		{`{"a.b":1}`, `a\.b`, `{{ index . "k" | upper }}`},
		{`plain`, "", `{{ b64enc .k }}{{ b64dec .k }}`},
		{`{"a":[1,2]}`, "a.0", `{{ range $i, $v := . }}{{ $i }}{{ end }}`},
		{`{"a":"\ud800"}`, `\`, `{{ toJson . }}{{ urlEscape .k }}{{ quote .k }}`},
		{`{`, "..", `{{ range $k, $v := . }}{{ $k }}{{ end }}`},
		{`{"k":"v"}`, "k", `{{ define "x" }}{{ end }}`},
		{`{"k":"v"}`, "k", `{{ slice .k 1 2 }}{{ printf "%v" . }}`},
	} {
		f.Add([]byte(seed.content), seed.property, seed.template)
	}
	known := map[string]bool{
		v1alpha1.ReasonInvalidSecretFormat: true, v1alpha1.ReasonInvalidKey: true,
		v1alpha1.ReasonPropertyNotFound: true, v1alpha1.ReasonInvalidTemplate: true,
	}
	f.Fuzz(func(t *testing.T, content []byte, property, tmpl string) {
		spec := v1alpha1.AWSSecretSpec{
			Data:     []v1alpha1.DataEntry{{Key: "k", SecretsManagerSecretRef: ref("x"), Property: property}},
			Template: &v1alpha1.SecretTemplate{MergePolicy: v1alpha1.MergePolicyMerge, Data: map[string]string{"out": tmpl}},
		}
		m, err := New(&spec, DefaultLimits)
		if err == nil {
			var data map[string][]byte
			data, err = m.Data(context.Background(), func(v1alpha1.SecretsManagerSecretRef) ([]byte, error) { return content, nil })
			for key := range data {
				if msgs := validation.IsConfigMapKey(key); len(msgs) > 0 {
					t.Fatalf("returned an invalid key %q: %v", key, msgs)
				}
			}
		}
		if err == nil {
			return
		}
		if got := classify(err); got.transient || !known[got.reason] {
			t.Fatalf("error %v has reason %s (transient %v)", err, got.reason, got.transient)
		}
		// The content, and every value a property can reach in it (each member's value, as
		// its JSON text and as the string it holds), must not show. Short text can appear in
		// any message by chance; a template or property can quote itself.
		for _, v := range append(reachable(content), string(content)) {
			if len(v) >= 8 && strings.Contains(err.Error(), v) && !strings.Contains(tmpl, v) && !strings.Contains(property, v) {
				t.Fatalf("error %q contains a value of the content (%d bytes)", err, len(v))
			}
		}
	})
}

// reachable is every member value of a JSON document at any depth, as compact JSON text and,
// for strings, as the string; nothing for content that is not JSON.
func reachable(content []byte) []string {
	var doc any
	if json.Unmarshal(content, &doc) != nil {
		return nil
	}
	var out []string
	var walk func(v any)
	walk = func(v any) {
		if b, err := json.Marshal(v); err == nil {
			out = append(out, string(b))
		}
		switch v := v.(type) {
		case string:
			out = append(out, v)
		case map[string]any:
			for _, m := range v {
				walk(m)
			}
		case []any:
			for _, m := range v {
				walk(m)
			}
		}
	}
	walk(doc)
	return out
}
