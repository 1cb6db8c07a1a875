package render

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/mumoshu/aws-secret-controller/pkg/apis/mumoshu/v1alpha1"
)

func TestStringData(t *testing.T) {
	tests := map[string]struct {
		content    string
		want       map[string]string
		wantReason string // empty: success
	}{
		"string":                    {content: `{"foo":"bar"}`, want: map[string]string{"foo": "bar"}},
		"escapes are decoded":       {content: `{"pem":"line1\nline2 \u00e9"}`, want: map[string]string{"pem": "line1\nline2 é"}},
		"integer keeps its text":    {content: `{"port":5432}`, want: map[string]string{"port": "5432"}},
		"decimal keeps its text":    {content: `{"ratio":1.50,"big":12345678901234567890}`, want: map[string]string{"ratio": "1.50", "big": "12345678901234567890"}},
		"booleans":                  {content: `{"on":true,"off":false}`, want: map[string]string{"on": "true", "off": "false"}},
		"null is empty":             {content: `{"none":null}`, want: map[string]string{"none": ""}},
		"nested object is compact":  {content: `{"o": { "a" : [1, 2], "b": {"c": null} }}`, want: map[string]string{"o": `{"a":[1,2],"b":{"c":null}}`}},
		"array is compact":          {content: `{"a":[ "x" , 1 ]}`, want: map[string]string{"a": `["x",1]`}},
		"empty object":              {content: `{}`, want: map[string]string{}},
		"surrounding whitespace":    {content: " \n{\"k\":\"v\"}\n", want: map[string]string{"k": "v"}},
		"all key characters":        {content: `{"a-b_c.D9":"v"}`, want: map[string]string{"a-b_c.D9": "v"}},
		"not JSON":                  {content: `password123`, wantReason: v1alpha1.ReasonInvalidSecretFormat},
		"empty":                     {content: ``, wantReason: v1alpha1.ReasonInvalidSecretFormat},
		"JSON array":                {content: `["a","b"]`, wantReason: v1alpha1.ReasonInvalidSecretFormat},
		"JSON string":               {content: `"just a string"`, wantReason: v1alpha1.ReasonInvalidSecretFormat},
		"truncated object":          {content: `{"a":"b"`, wantReason: v1alpha1.ReasonInvalidSecretFormat},
		"trailing garbage":          {content: `{"a":"b"} x`, wantReason: v1alpha1.ReasonInvalidSecretFormat},
		"key with a space":          {content: `{"bad key":"v"}`, wantReason: v1alpha1.ReasonInvalidKey},
		"key with a slash":          {content: `{"a/b":"v"}`, wantReason: v1alpha1.ReasonInvalidKey},
		"empty key":                 {content: `{"":"v"}`, wantReason: v1alpha1.ReasonInvalidKey},
		"dot key":                   {content: `{".":"v"}`, wantReason: v1alpha1.ReasonInvalidKey},
		"one bad key fails it all":  {content: `{"ok":"v","no!":"v"}`, wantReason: v1alpha1.ReasonInvalidKey},
		"key longer than 253 chars": {content: `{"` + strings.Repeat("k", 254) + `":"v"}`, wantReason: v1alpha1.ReasonInvalidKey},
		// With a repeated name the Secret would hold whichever one the parser keeps.
		"duplicate key":               {content: `{"a":"1","a":"2"}`, wantReason: v1alpha1.ReasonInvalidSecretFormat},
		"duplicate key, other values": {content: `{"a":{"x":1},"b":2,"a":null}`, wantReason: v1alpha1.ReasonInvalidSecretFormat},
		"same key in nested objects":  {content: `{"a":{"k":1},"b":{"k":2}}`, want: map[string]string{"a": `{"k":1}`, "b": `{"k":2}`}},
		"two objects":                 {content: `{"a":"b"}{"c":"d"}`, wantReason: v1alpha1.ReasonInvalidSecretFormat},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := stringData([]byte(tc.content), testBudget())
			checkPayload(t, got, err, tc.want, tc.wantReason)
		})
	}
}

func TestBinaryData(t *testing.T) {
	tests := map[string]struct {
		content    string
		want       map[string]string
		wantReason string
	}{
		"base64 values are decoded": {content: `{"foo":"YmFy","bin":"AP8="}`, want: map[string]string{"foo": "bar", "bin": "\x00\xff"}},
		"null is empty":             {content: `{"none":null}`, want: map[string]string{"none": ""}},
		"bad base64":                {content: `{"foo":"not base64!"}`, wantReason: v1alpha1.ReasonInvalidSecretFormat},
		"number is not base64":      {content: `{"foo":12}`, wantReason: v1alpha1.ReasonInvalidSecretFormat},
		"object is not base64":      {content: `{"foo":{"a":"YQ=="}}`, wantReason: v1alpha1.ReasonInvalidSecretFormat},
		"not an object":             {content: `YmFy`, wantReason: v1alpha1.ReasonInvalidSecretFormat},
		"invalid key":               {content: `{"a b":"YmFy"}`, wantReason: v1alpha1.ReasonInvalidKey},
		// "+/8=" and "-_8" are the same two bytes in the standard and URL-safe alphabets.
		"unpadded":           {content: `{"foo":"YmFyYg"}`, want: map[string]string{"foo": "barb"}},
		"URL-safe, padded":   {content: `{"k":"-_8="}`, want: map[string]string{"k": "\xfb\xff"}},
		"URL-safe, unpadded": {content: `{"k":"-_8"}`, want: map[string]string{"k": "\xfb\xff"}},
		"standard, padded":   {content: `{"k":"+/8="}`, want: map[string]string{"k": "\xfb\xff"}},
		"mixed alphabets":    {content: `{"k":"+_8="}`, wantReason: v1alpha1.ReasonInvalidSecretFormat},
		"duplicate key":      {content: `{"k":"YQ==","k":"Yg=="}`, wantReason: v1alpha1.ReasonInvalidSecretFormat},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := binaryData([]byte(tc.content), testBudget())
			checkPayload(t, got, err, tc.want, tc.wantReason)
		})
	}
}

func checkPayload(t *testing.T, got map[string][]byte, err error, want map[string]string, wantReason string) {
	t.Helper()
	if wantReason != "" {
		if f := classify(err); err == nil || f.reason != wantReason || f.transient {
			t.Fatalf("error = %v, want permanent %s", err, wantReason)
		}
		return
	}
	if err != nil {
		t.Fatalf("unexpected error: %v", err)
	}
	gotStrings := map[string]string{}
	for k, v := range got {
		gotStrings[k] = string(v)
	}
	if diff := cmp.Diff(want, gotStrings); diff != "" {
		t.Errorf("data differ (-want +got):\n%s", diff)
	}
}

// TestInvalidKeyMessageIsBounded: a condition message has a size limit (32 KiB) and a key can
// itself be sensitive, so a bad key is named by its start and length, never in full.
func TestInvalidKeyMessageIsBounded(t *testing.T) {
	long := "tok " + strings.Repeat("x", 40000)
	for name, content := range map[string]string{
		"invalid key":   `{"` + long + `":"v"}`,
		"duplicate key": `{"` + long + `":"v","` + long + `":"w"}`,
	} {
		t.Run(name, func(t *testing.T) {
			_, err := stringData([]byte(content), testBudget())
			if err == nil {
				t.Fatal("want an error")
			}
			if len(err.Error()) > 200 {
				t.Errorf("message is %d bytes long, want at most 200", len(err.Error()))
			}
			if !strings.Contains(err.Error(), `"tok xxxxxx"… (40004 characters)`) {
				t.Errorf("message %q does not name the key by its start and length", err)
			}
		})
	}
}

// TestPayloadErrorsHoldNoContent feeds content whose values are secret and checks that no error
// repeats them, whatever is wrong with the content.
func TestPayloadErrorsHoldNoContent(t *testing.T) {
	const secret = "s3cr3t-v4lue"
	for _, content := range []string{
		secret,
		`{"k":"` + secret + `"`,
		`{"k":"` + secret + `", "bad key": 1}`,
		`["` + secret + `"]`,
		`{"k":` + secret + `}`,
		`{"k":"` + secret + `"} trailing`,
	} {
		for name, decode := range map[string]func([]byte, *budget) (map[string][]byte, error){"stringData": stringData, "binaryData": binaryData} {
			_, err := decode([]byte(content), testBudget())
			if err == nil {
				t.Fatalf("%s(%q): want an error", name, content)
			}
			if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), "s3cr3t") {
				t.Errorf("%s: error %q repeats the content", name, err)
			}
		}
	}
}

// TestDataHash: any change to the data changes the hash, including those that keep every key
// and every value's length (a hand edit of one byte), and no two maps share one.
func TestDataHash(t *testing.T) {
	base := map[string][]byte{"ab": []byte("c"), "key": []byte("value")}
	tests := map[string]map[string][]byte{
		"a byte of a value":           {"ab": []byte("c"), "key": []byte("valuE")},
		"a byte of a key":             {"ab": []byte("c"), "kez": []byte("value")},
		"bytes moved between entries": {"ab": []byte("c"), "key": []byte("valu"), "": []byte("e")},
		"a key joined to its value":   {"a": []byte("bc"), "key": []byte("value")},
		"a value swapped":             {"ab": []byte("value"), "key": []byte("c")},
		"an empty key added":          {"ab": []byte("c"), "key": []byte("value"), "": nil},
	}
	for name, data := range tests {
		if DataHash(data) == DataHash(base) {
			t.Errorf("%s: the hash did not change", name)
		}
	}
	if DataHash(map[string][]byte{"key": []byte("value"), "ab": []byte("c")}) != DataHash(base) {
		t.Error("equal data hash differently")
	}
	if DataHash(nil) != DataHash(map[string][]byte{}) {
		t.Error("nil and empty data hash differently")
	}
}

// FuzzPayload checks that no content makes the mapping panic, that every error has a known
// permanent reason, and that every key it returns is a valid Secret key.
func FuzzPayload(f *testing.F) {
	for _, seed := range []string{
		`{"foo":"bar"}`, `{"n":1.5e10,"b":true,"z":null}`, `{"o":{"a":[1,{"b":"c"}]}}`, `{"a":"YmFy"}`,
		`[]`, `"x"`, `{"a b":1}`, `{"\u0000":1}`, `{"a":"\ud800"}`, "{\"a\":\"\xff\"}", `{`, ``,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, content []byte) {
		for _, decode := range []func([]byte, *budget) (map[string][]byte, error){stringData, binaryData} {
			data, err := decode(content, testBudget())
			if err != nil {
				f := classify(err)
				reason, transient := f.reason, f.transient
				if transient || (reason != v1alpha1.ReasonInvalidSecretFormat && reason != v1alpha1.ReasonInvalidKey) {
					t.Fatalf("error %v has reason %s (transient %v)", err, reason, transient)
				}
				continue
			}
			for key := range data {
				if msgs := validation.IsConfigMapKey(key); len(msgs) > 0 {
					t.Fatalf("returned an invalid key %q: %v", key, msgs)
				}
			}
			_ = DataHash(data)
		}
	})
}
