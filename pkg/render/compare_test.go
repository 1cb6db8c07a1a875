package render

import (
	"strings"
	"testing"
	"text/template"

	"github.com/mumoshu/aws-secret-controller/pkg/apis/mumoshu/v1alpha1"
)

// TestComparisonsMatchTextTemplate: eq, ne, lt, le, gt and ge are replaced to charge the bytes
// they compare; they answer as text/template's own do, for strings, numbers and booleans, and
// fail where those fail.
func TestComparisonsMatchTextTemplate(t *testing.T) {
	// The keys the template sees: foo=from-string, shared=string (mappingVersions["string"]).
	data := map[string]string{"foo": "from-string", "shared": "string"}
	operands := []string{`.foo`, `.shared`, `"string"`, `"a"`, `""`, `1`, `2`, `-1`, `1.5`, `true`, `false`, `(len .foo)`}
	var exprs []string
	for _, fn := range []string{"eq", "ne", "lt", "le", "gt", "ge"} {
		for _, a := range operands {
			for _, b := range operands {
				exprs = append(exprs, fn+" "+a+" "+b)
			}
		}
	}
	exprs = append(exprs, `eq .foo "x" "from-string"`, `eq 1 2 1`, `eq .foo "x" "y"`)
	for _, expr := range exprs {
		text := "{{ if " + expr + " }}yes{{ else }}no{{ end }}"
		var want strings.Builder
		wantErr := template.Must(template.New("").Parse(text)).Execute(&want, data) != nil

		got, err, _ := mapSpec(t, v1alpha1.AWSSecretSpec{
			StringDataFrom: &v1alpha1.DataSource{SecretsManagerSecretRef: ref("string")},
			Template:       &v1alpha1.SecretTemplate{Data: map[string]string{"out": text}},
		})
		switch {
		case wantErr && err == nil:
			t.Errorf("{{ %s }}: %q, want an error as text/template gives", expr, got["out"])
		case !wantErr && err != nil:
			t.Errorf("{{ %s }}: %v, want %q as text/template gives", expr, err, want.String())
		case !wantErr && got["out"] != want.String():
			t.Errorf("{{ %s }} = %q, text/template says %q", expr, got["out"], want.String())
		}
	}
}
