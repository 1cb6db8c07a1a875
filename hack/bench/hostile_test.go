package main

import (
	"encoding/base64"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"text/template"
)

// Every form of the password is counted once, in its own row: no needle of one form may appear
// inside another form's text.
func TestLeakFormsAreDistinct(t *testing.T) {
	h := newHostileSetup()
	for i, f := range h.needles {
		for _, needle := range f.Needles {
			counts, fragments := h.count(needle)
			for j, n := range counts {
				if (j == i) != (n > 0) {
					t.Errorf("needle %q of %s: counted %d times as %s", needle, f.Form, n, h.needles[j].Form)
				}
			}
			if f.Form != "base64" && fragments < 3 {
				t.Errorf("needle %q of %s: %d fragments", needle, f.Form, fragments)
			}
		}
	}
	// What the leak probes make of it, as an error message of the index function.
	pw := h.password
	for form, msg := range map[string]string{
		"base64":     "map has no entry for key " + strconv.Quote(base64.StdEncoding.EncodeToString([]byte(pw))),
		"upper case": "map has no entry for key " + strconv.Quote(strings.ToUpper(pw)),
		"Go-quoted":  "map has no entry for key " + strconv.Quote(pw),
		"verbatim":   "error: " + pw,
		// klog quotes a message that quotes the value: the value is quoted twice.
		"upper case ": `err="map has no entry for key ` + goInner(strconv.Quote(strings.ToUpper(pw))) + `"`,
	} {
		form = strings.TrimSpace(form)
		counts, _ := h.count(msg)
		for j, n := range counts {
			if (h.needles[j].Form == form) != (n > 0) {
				t.Errorf("%s message: counted %d times as %s", form, n, h.needles[j].Form)
			}
		}
		if red := h.redact(msg); strings.Contains(red, h.fragments[0]) || strings.Contains(strings.ToLower(red), h.fragments[1]) {
			t.Errorf("redact left a fragment: %q", red)
		}
	}
}

// The bombs are valid templates (the controller's checks are its business).
func TestHostileSpecs(t *testing.T) {
	h := newHostileSetup()
	h.keysID, h.keysVer, h.deepID, h.deepVer = "k", strings.Repeat("0", 32), "d", strings.Repeat("1", 32)
	funcs := template.FuncMap{"b64enc": strings.ToLower, "upper": strings.ToUpper, "quote": strconv.Quote}
	for _, k := range hostileKinds {
		spec := k.spec(h)
		if spec.Template != nil {
			for key, text := range spec.Template.Data {
				if _, err := template.New(key).Funcs(funcs).Parse(text); err != nil {
					t.Errorf("%s: %s: %v", k.name, key, err)
				}
			}
		}
		for _, e := range spec.Data {
			if len(e.Property) > 1024 || strings.Count(e.Property, ".") != deepLevels-1 || (e.Key == "deep63") != strings.HasSuffix(e.Property, ".b") {
				t.Errorf("%s: property of %d characters, %d names", k.name, len(e.Property), strings.Count(e.Property, ".")+1)
			}
		}
	}
}

func TestDeepJSON(t *testing.T) {
	deep := deepJSON()
	if len(deep) >= 65536 || len(deep) < 50000 {
		t.Errorf("%d bytes", len(deep))
	}
	var v any
	if err := json.Unmarshal([]byte(deep), &v); err != nil {
		t.Fatal(err)
	}
	depth := 0
	for {
		m, ok := v.(map[string]any)
		if !ok {
			break
		}
		depth++
		if v, ok = m["a"]; !ok {
			break
		}
	}
	if depth != deepLevels || v != "leaf" {
		t.Errorf("depth %d, leaf %v", depth, v)
	}
}

func TestPercentile(t *testing.T) {
	v := []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	if p := percentile(v, 0.5); p != 5 {
		t.Errorf("p50 %v", p)
	}
	if p := percentile(v, 0.99); p != 10 {
		t.Errorf("p99 %v", p)
	}
	if p := percentile(nil, 0.5); p != 0 {
		t.Errorf("empty %v", p)
	}
}
