package render

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/mumoshu/aws-secret-controller/pkg/apis/mumoshu/v1alpha1"
)

// renderSpec renders spec over versions (secret id → content, any version id) with limits
// and ctx, and returns the data, the error and the bytes the rendering allocated.
func renderSpec(ctx context.Context, t *testing.T, spec v1alpha1.AWSSecretSpec, versions map[string]string, limits Limits) (map[string][]byte, error, uint64) {
	t.Helper()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	m, err := New(&spec, limits)
	var data map[string][]byte
	if err == nil {
		data, err = m.Data(ctx, func(r v1alpha1.SecretsManagerSecretRef) ([]byte, error) {
			content, ok := versions[r.SecretID]
			if !ok {
				return nil, fmt.Errorf("no secret %s", r.SecretID)
			}
			return []byte(content), nil
		})
	}
	runtime.ReadMemStats(&after)
	return data, err, after.TotalAlloc - before.TotalAlloc
}

// manyKeys is a version of n keys k00.. whose values are value.
func manyKeys(n int, value string) string {
	m := map[string]string{}
	for i := range n {
		m[fmt.Sprintf("k%02d", i)] = value
	}
	m["password"] = value
	b, _ := json.Marshal(m)
	return string(b)
}

// nested is a JSON value `depth` objects deep along member "a", each level padded with a
// sibling member of pad bytes, holding leaf at the bottom.
func nested(depth, pad int, leaf string) string {
	var b strings.Builder
	filler := strings.Repeat("x", pad)
	for range depth {
		b.WriteString(`{"pad":"` + filler + `","a":`)
	}
	b.WriteString(strconv.Quote(leaf))
	for range depth {
		b.WriteString(`}`)
	}
	return b.String()
}

func repeat(s string, n int) string { return strings.Repeat(s, n) }

// TestBombs: every way a tenant could make one rendering allocate or work without bound stops
// at a limit, as it runs, with InvalidTemplate naming the key and the limit; what the rendering
// allocated stays within a few times the budget.
func TestBombs(t *testing.T) {
	const quote24 = `{{ .password | quote | quote | quote | quote | quote | quote | quote | quote | quote | quote | quote | quote | quote | quote | quote | quote | quote | quote | quote | quote | quote | quote | quote | quote }}`
	chain := func(f string, n int) string { return "{{ " + repeat(f+" (", n) + ".password" + repeat(")", n) + " }}" }
	versions := map[string]string{
		"small": manyKeys(30, `p"a\ss`+"\nword"),
		"big":   manyKeys(15, repeat("v", 50_000)),
		"wide":  manyKeys(2000, "v"),
	}
	tests := map[string]struct {
		version  string
		template map[string]string
		// want is a part of the message: the limit that stopped it.
		want string
	}{
		"re-assignment doubling with print":   {version: "small", template: map[string]string{"out": `{{ $a := .password }}{{ range $k, $v := . }}{{ $a = print $a $a }}{{ end }}{{ $a }}`}, want: "4194304 bytes in all"},
		"re-assignment doubling with printf":  {version: "small", template: map[string]string{"out": `{{ $a := .password }}{{ range $k, $v := . }}{{ $a = printf "%s%s" $a $a }}{{ end }}`}, want: "4194304 bytes in all"},
		"re-assignment doubling with println": {version: "small", template: map[string]string{"out": `{{ $a := .password }}{{ range $k, $v := . }}{{ $a = println $a $a }}{{ end }}`}, want: "4194304 bytes in all"},
		"quote piped 24 times":                {version: "small", template: map[string]string{"out": quote24}, want: "4194304 bytes in all"},
		"toJson nested 24 times":              {version: "small", template: map[string]string{"out": chain("toJson", 24)}, want: "4194304 bytes in all"},
		"b64enc nested 60 times":              {version: "small", template: map[string]string{"out": chain("b64enc", 60)}, want: "4194304 bytes in all"},
		"html of a doubled value":             {version: "small", template: map[string]string{"out": `{{ $a := .password }}{{ range $k, $v := . }}{{ $a = html $a $a }}{{ end }}`}, want: "4194304 bytes in all"},
		"js of a doubled value":               {version: "small", template: map[string]string{"out": `{{ $a := .password }}{{ range $k, $v := . }}{{ $a = js $a $a }}{{ end }}`}, want: "4194304 bytes in all"},
		"urlquery of a doubled value":         {version: "small", template: map[string]string{"out": `{{ $a := .password }}{{ range $k, $v := . }}{{ $a = urlquery $a $a }}{{ end }}`}, want: "4194304 bytes in all"},
		"urlEscape of a doubled value":        {version: "small", template: map[string]string{"out": `{{ $a := .password }}{{ range $k, $v := . }}{{ $a = urlEscape (print $a $a) }}{{ end }}`}, want: "4194304 bytes in all"},
		"upper of a doubled value":            {version: "small", template: map[string]string{"out": `{{ $a := .password }}{{ range $k, $v := . }}{{ $a = upper (print $a $a) }}{{ end }}`}, want: "4194304 bytes in all"},
		"printf width 1000000":                {version: "small", template: map[string]string{"out": repeat(`{{ printf "%1000000d" 1 }}`, 40)}, want: "width or precision"},
		"printf left-aligned width":           {version: "small", template: map[string]string{"out": `{{ printf "%-1000000s" .password }}`}, want: "width or precision"},
		"printf precision":                    {version: "small", template: map[string]string{"out": `{{ printf "%.1000000f" 1.5 }}`}, want: "width or precision"},
		"printf width from an argument":       {version: "small", template: map[string]string{"out": `{{ printf "%*d" (len .password) 1 }}`}, want: "width or precision"},
		"printf indexed width":                {version: "small", template: map[string]string{"out": `{{ printf "%[1]*d" 50 1 }}`}, want: "width or precision"},
		"printf format from data":             {version: "small", template: map[string]string{"out": `{{ printf (print "%" "999999" "d") 1 }}`}, want: "width or precision"},
		"allowed widths repeated past 1 MiB":  {version: "small", template: map[string]string{"out": `{{ range $k, $v := . }}` + repeat(`{{ printf "%4096d" 1 }}`, 10) + `{{ end }}`}, want: "would pass 1048576 bytes"},
		"many keys of just under 1 MiB": {version: "big", template: func() map[string]string {
			keys := map[string]string{}
			for i := range 64 {
				keys[fmt.Sprintf("key%02d", i)] = `{{ range $k, $v := . }}{{ if lt $k "k05" }}{{ $v }}{{ end }}{{ end }}`
			}
			return keys
		}(), want: "would pass 1048576 bytes"},
		"comparisons of large values":       {version: "big", template: map[string]string{"out": `{{ range $k, $v := . }}` + repeat(`{{ if eq $v $.password }}{{ end }}`, 24) + `{{ end }}`}, want: "16777216 bytes"},
		"range body too large for the keys": {version: "wide", template: map[string]string{"out": `{{ range $k, $v := . }}` + repeat(`{{ if $v }}{{ end }}`, 3000) + `{{ end }}`}, want: "steps; at most 1048576"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			spec := v1alpha1.AWSSecretSpec{
				StringDataFrom: &v1alpha1.DataSource{SecretsManagerSecretRef: ref(tc.version)},
				Template:       &v1alpha1.SecretTemplate{Data: tc.template},
			}
			_, err, allocated := renderSpec(context.Background(), t, spec, versions, DefaultLimits)
			re, ok := IsRenderError(err)
			if !ok || re.Reason != v1alpha1.ReasonInvalidTemplate {
				t.Fatalf("error %v, want InvalidTemplate", err)
			}
			if !strings.Contains(err.Error(), "template key ") || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not name the key and %q", err, tc.want)
			}
			// The inputs alone are 1.5 MB (15 values of 50 KB, gathered and copied for the
			// template); the rendering may add a few times its 4 MiB budget, never hundreds
			// of MiB.
			if limit := uint64(32 << 20); allocated > limit {
				t.Errorf("allocated %d MiB, want at most %d MiB", allocated>>20, limit>>20)
			}
			assertNoForm(t, err.Error(), `p"a\ss`+"\nword")
		})
	}
}

// TestSpecBounds: the controller re-checks the CRD's bounds itself, and its own on templates.
func TestSpecBounds(t *testing.T) {
	entries := func(n int, property string) []v1alpha1.DataEntry {
		var out []v1alpha1.DataEntry
		for i := range n {
			out = append(out, v1alpha1.DataEntry{Key: fmt.Sprintf("k%d", i), SecretsManagerSecretRef: ref("json"), Property: property})
		}
		return out
	}
	keys := func(n int, tmpl string) map[string]string {
		out := map[string]string{}
		for i := range n {
			out[fmt.Sprintf("k%d", i)] = tmpl
		}
		return out
	}
	tests := map[string]struct {
		spec v1alpha1.AWSSecretSpec
		want string
	}{
		"257 data entries":          {spec: v1alpha1.AWSSecretSpec{Data: entries(257, "")}, want: "257 entries; at most 256"},
		"a 1025-byte property path": {spec: v1alpha1.AWSSecretSpec{Data: entries(1, repeat("a", 1025))}, want: "1025 bytes long; at most 1024"},
		"257 template keys":         {spec: v1alpha1.AWSSecretSpec{Data: entries(1, ""), Template: &v1alpha1.SecretTemplate{Data: keys(257, "x")}}, want: "257 keys; at most 256"},
		"a 64 KiB + 1 template":     {spec: v1alpha1.AWSSecretSpec{Data: entries(1, ""), Template: &v1alpha1.SecretTemplate{Data: keys(1, repeat("x", 64<<10+1))}}, want: "65537 bytes long; at most 65536"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := New(&tc.spec, DefaultLimits)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one with %q", err, tc.want)
			}
		})
	}
	// At the bounds, the spec is accepted.
	for name, spec := range map[string]v1alpha1.AWSSecretSpec{
		"256 entries, 1024-byte paths": {Data: entries(256, repeat("a", 1024))},
		"256 keys of 64 KiB":           {Data: entries(1, ""), Template: &v1alpha1.SecretTemplate{Data: keys(256, repeat("x", 64<<10))}},
	} {
		if _, err := New(&spec, DefaultLimits); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestDeepProperty: a property path at the CRD's limits (256 entries, 512 levels in 1024
// bytes) over a deeply nested secret is resolved in one pass of the value per entry: what it
// allocates grows with the entries times the content, not with the depth squared.
func TestDeepProperty(t *testing.T) {
	const depth = 512
	path := strings.TrimSuffix(repeat("a.", depth), ".")
	content := nested(depth, 100, "leaf")
	var spec v1alpha1.AWSSecretSpec
	for i := range 256 {
		spec.Data = append(spec.Data, v1alpha1.DataEntry{Key: fmt.Sprintf("k%03d", i), SecretsManagerSecretRef: ref("deep"), Property: path})
	}
	data, err, allocated := renderSpec(context.Background(), t, spec, map[string]string{"deep": content}, DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(data["k255"]); got != "leaf" {
		t.Errorf("k255 = %q, want leaf", got)
	}
	// One pass per entry: 256 × (content + tokens). The old walk re-parsed the rest of the
	// document at every level: about depth/2 times the content per entry, over 8 GiB here.
	perEntry := allocated / 256
	if limit := uint64(40 * len(content)); perEntry > limit {
		t.Errorf("allocated %d bytes per entry for %d bytes of content, want at most %d", perEntry, len(content), limit)
	}
	// A path one level too deep is PropertyNotFound, naming the depth.
	spec.Data = []v1alpha1.DataEntry{{Key: "k", SecretsManagerSecretRef: ref("deep"), Property: path + ".b"}}
	_, err, _ = renderSpec(context.Background(), t, spec, map[string]string{"deep": content}, DefaultLimits)
	if re, ok := IsRenderError(err); !ok || re.Reason != v1alpha1.ReasonInvalidSecretFormat {
		// "leaf" is a string, not an object: the 513th member is not a JSON object.
		t.Errorf("error %v, want InvalidSecretFormat", err)
	}
}

// BenchmarkDeepProperty: one data entry with a 512-level path over a nested secret of about
// 55 KB; `go test -bench DeepProperty ./pkg/render` (make bench reports the controller's side).
func BenchmarkDeepProperty(b *testing.B) {
	const depth = 512
	path := strings.TrimSuffix(repeat("a.", depth), ".")
	content := []byte(nested(depth, 100, "leaf"))
	spec := v1alpha1.AWSSecretSpec{Data: []v1alpha1.DataEntry{{Key: "k", SecretsManagerSecretRef: ref("deep"), Property: path}}}
	b.SetBytes(int64(len(content)))
	b.ReportAllocs()
	for b.Loop() {
		m, err := New(&spec, DefaultLimits)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := m.Data(context.Background(), func(v1alpha1.SecretsManagerSecretRef) ([]byte, error) { return content, nil }); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBomb: the re-assignment bomb, stopped by the budget.
func BenchmarkBomb(b *testing.B) {
	content := []byte(manyKeys(30, "password"))
	spec := v1alpha1.AWSSecretSpec{
		StringDataFrom: &v1alpha1.DataSource{SecretsManagerSecretRef: ref("x")},
		Template:       &v1alpha1.SecretTemplate{Data: map[string]string{"out": `{{ $a := .password }}{{ range $k, $v := . }}{{ $a = print $a $a }}{{ end }}{{ $a }}`}},
	}
	b.ReportAllocs()
	for b.Loop() {
		m, _ := New(&spec, DefaultLimits)
		if _, err := m.Data(context.Background(), func(v1alpha1.SecretsManagerSecretRef) ([]byte, error) { return content, nil }); err == nil {
			b.Fatal("want the budget to stop it")
		}
	}
}

// countdown is a context whose Err turns to DeadlineExceeded after n calls: the deadline
// arrives in the middle of a rendering, at a point the test chooses, without a clock.
type countdown struct {
	context.Context
	n int
}

func (c *countdown) Err() error {
	if c.n--; c.n < 0 {
		return context.DeadlineExceeded
	}
	return nil
}

// TestRenderingStopsAtTheDeadline: every step checks the sync's deadline, so a rendering
// that is still running when it passes stops there, with an error the controller does not
// remember (a less busy machine may finish).
func TestRenderingStopsAtTheDeadline(t *testing.T) {
	spec := v1alpha1.AWSSecretSpec{
		StringDataFrom: &v1alpha1.DataSource{SecretsManagerSecretRef: ref("small")},
		Template: &v1alpha1.SecretTemplate{Data: map[string]string{
			"out": `{{ range $k, $v := . }}{{ upper $v }}{{ end }}`,
		}},
	}
	versions := map[string]string{"small": manyKeys(30, "v")}
	// With time to spare it renders.
	if _, err, _ := renderSpec(context.Background(), t, spec, versions, DefaultLimits); err != nil {
		t.Fatal(err)
	}
	for _, after := range []int{0, 5, 40} {
		ctx := &countdown{Context: context.Background(), n: after}
		_, err, _ := renderSpec(ctx, t, spec, versions, DefaultLimits)
		re, ok := IsRenderError(err)
		if !ok || !re.Deadline || !strings.Contains(err.Error(), "deadline") {
			t.Errorf("deadline after %d checks: error %v, want a deadline failure", after, err)
		}
	}
}

// assertNoForm fails if s holds value, or any encoding a template function could give it:
// base64 (both alphabets, padded or not), upper and lower case, Go- and JSON-quoted (the
// escaped body), URL-escaped, hex.
func assertNoForm(t *testing.T, s, value string) {
	t.Helper()
	jsonQuoted, _ := json.Marshal(value)
	forms := map[string]string{
		"verbatim":    value,
		"base64":      base64.StdEncoding.EncodeToString([]byte(value)),
		"base64url":   base64.RawURLEncoding.EncodeToString([]byte(value)),
		"upper":       strings.ToUpper(value),
		"lower":       strings.ToLower(value),
		"go-quoted":   strings.Trim(strconv.Quote(value), `"`),
		"json-quoted": strings.Trim(string(jsonQuoted), `"`),
		"url-escaped": url.QueryEscape(value),
		"hex":         hex.EncodeToString([]byte(value)),
	}
	for name, form := range forms {
		// A long enough piece of a form is as bad as the whole: look for its first 8 bytes.
		for _, piece := range []string{form, form[:min(8, len(form))]} {
			if strings.Contains(s, piece) {
				t.Errorf("a message holds the value's %s form (%d bytes of it)", name, len(piece))
				break
			}
		}
	}
}

// TestNoValueInTemplateErrors: whatever a failing template computed from a value, the message
// holds no form of it: only the key, the position and the kind of failure.
func TestNoValueInTemplateErrors(t *testing.T) {
	values := map[string]string{
		"plain":     "Zq8vHunter2Secret",
		"quotes":    `say "Zq8v" now`,
		"backslash": `C:\Zq8v\secret`,
		"newline":   "-----BEGIN KEY-----\nZq8vMIIB\n-----END KEY-----\n",
		"non-ASCII": "pässwörd-Zq8v-ключ",
	}
	templates := map[string]string{
		"typo index of the value":   `{{ index . .password }}`,
		"index of its base64":       `{{ index . (b64enc .password) }}`,
		"index of its upper case":   `{{ index . (upper .password) }}`,
		"index of its lower case":   `{{ index . (lower .password) }}`,
		"index of a slice of it":    `{{ index . (slice .password 1) }}`,
		"index of it quoted":        `{{ index . (quote .password) }}`,
		"index of it as JSON":       `{{ index . (toJson .password) }}`,
		"index of printf of it":     `{{ index . (printf "x%sx" .password) }}`,
		"field of the value":        `{{ .password.foo }}`,
		"b64dec of it":              `{{ b64dec (print .password "!") }}`,
		"compare with a number":     `{{ lt .password 1 }}`,
		"slice out of range":        `{{ slice .password 1 1000 }}`,
		"compare maps":              `{{ eq . $ }}`,
		"call it":                   `{{ call .password }}`,
		"range too much over it":    `{{ printf "%9999d" .password }}`,
		"wrong type to a function":  `{{ b64enc . }}`,
		"wrong argument count":      `{{ upper .password .password }}`,
		"missing key in a printf":   `{{ printf "%s" (index . (printf "%s%s" .password .password)) }}`,
		"index with the value html": `{{ index . (html .password) }}`,
	}
	for vname, value := range values {
		for tname, tmpl := range templates {
			t.Run(vname+"/"+tname, func(t *testing.T) {
				content, _ := json.Marshal(map[string]string{"password": value, "user": "app"})
				spec := v1alpha1.AWSSecretSpec{
					StringDataFrom: &v1alpha1.DataSource{SecretsManagerSecretRef: ref("v")},
					Template:       &v1alpha1.SecretTemplate{Data: map[string]string{"out": tmpl}},
				}
				_, err, _ := renderSpec(context.Background(), t, spec, map[string]string{"v": string(content)}, DefaultLimits)
				if err == nil {
					t.Fatal("want an error")
				}
				if !strings.Contains(err.Error(), `template key "out"`) {
					t.Errorf("error %q does not name the key", err)
				}
				assertNoForm(t, err.Error(), value)
			})
		}
	}
}

// TestTemplateErrorsSayWhereAndWhat: a failure names the key, the line and column, and the
// kind of failure.
func TestTemplateErrorsSayWhereAndWhat(t *testing.T) {
	tests := map[string]struct{ template, want string }{
		"missing field":   {"line one\n  {{ .nope }}", `template key "out" at line 2, column 5: it names a key the gathered data does not have`},
		"missing index":   {`{{ index . "nope" }}`, `template key "out" at line 1, column 3: it names a key the gathered data does not have`},
		"bad base64":      {`{{ b64dec .user }}`, "b64dec was given a value that is not valid base64"},
		"wrong type":      {`{{ lt .user 1 }}`, "a value has a type the function does not take"},
		"text/template's": {`{{ .user.x }}`, "a value has the wrong type for the operation"},
		"out of range":    {`{{ slice .user 1 1000 }}`, "an index is out of range"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			spec := v1alpha1.AWSSecretSpec{
				StringDataFrom: &v1alpha1.DataSource{SecretsManagerSecretRef: ref("v")},
				Template:       &v1alpha1.SecretTemplate{Data: map[string]string{"out": tc.template}},
			}
			_, err, _ := renderSpec(context.Background(), t, spec, map[string]string{"v": `{"user":"app-1?"}`}, DefaultLimits)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one with %q", err, tc.want)
			}
		})
	}
}

// TestOversizedDataIsNotATemplateError: without a template, data past the Secret's size are
// not the rendering's failure: the controller refuses them with the Secret's own check
// (InvalidSecret), not as InvalidTemplate.
func TestOversizedDataIsNotATemplateError(t *testing.T) {
	spec := v1alpha1.AWSSecretSpec{StringDataFrom: &v1alpha1.DataSource{SecretsManagerSecretRef: ref("big")}}
	data, err, _ := renderSpec(context.Background(), t, spec, map[string]string{"big": manyKeys(3, repeat("v", 600_000))}, DefaultLimits)
	if err != nil {
		t.Fatalf("error %v, want the data (the Secret's own check refuses their size)", err)
	}
	if len(data) != 4 {
		t.Errorf("%d keys, want 4", len(data))
	}
}

// TestPrintingTheKeysIsCharged: printing the gathered keys whole ({{ print . }}) reserves a
// bound of the map's text before it is built: within the budget it renders as fmt prints the
// map; a budget the payload fits but the printed map does not stops it.
func TestPrintingTheKeysIsCharged(t *testing.T) {
	versions := map[string]string{"many": manyKeys(64, strings.Repeat("v", 100))}
	spec := v1alpha1.AWSSecretSpec{
		StringDataFrom: &v1alpha1.DataSource{SecretsManagerSecretRef: v1alpha1.SecretsManagerSecretRef{SecretID: "many", VersionID: "v1"}},
		Template:       &v1alpha1.SecretTemplate{MergePolicy: v1alpha1.MergePolicyReplace, Data: map[string]string{"all": "{{ print . }}"}},
	}
	data, err, _ := renderSpec(context.Background(), t, spec, versions, DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	payload := 64 * (3 + 100) // the keys k00..k63 and their values, charged as the payload is read
	if got := len(data["all"]); got < payload {
		t.Fatalf("{{ print . }} gave %d bytes, want the %d keys and values at least", got, payload)
	}
	limits := DefaultLimits
	limits.Produced = int64(payload) + int64(len(data["all"]))/2
	if _, err, _ := renderSpec(context.Background(), t, spec, versions, limits); err == nil || !strings.Contains(err.Error(), "would produce more than") {
		t.Errorf("with %d bytes to produce, printing %d bytes of keys: %v, want the produced limit", limits.Produced, len(data["all"]), err)
	}
}
