package main

import (
	"strings"
	"testing"
)

// TestTheChartREADMEIsCurrent: the chart's README holds the table values.yaml gives.
func TestTheChartREADMEIsCurrent(t *testing.T) {
	if err := run("../../charts/aws-secret-controller/values.yaml", "../../charts/aws-secret-controller/README.md", true); err != nil {
		t.Fatal(err)
	}
}

func TestRows(t *testing.T) {
	values := `# The file's heading.

# A section's heading.

# Replicas.
replicas: 2
# Pod security, as one row.
pod:
  runAsUser: 1
image:
  # Where.
  repository: r
  # Which.
  tag: ""
`
	rows, err := Rows([]byte(values))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range rows {
		got = append(got, r.Key+"="+r.Default+" "+r.Description)
	}
	want := []string{`replicas=2 Replicas.`, `pod={"runAsUser":1} Pod security, as one row.`, `image.repository="r" Where.`, `image.tag="" Which.`}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("rows:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if _, err := Table([]byte("# Documented.\na: 1\nb: 2\n")); err == nil || !strings.Contains(err.Error(), "b") {
		t.Errorf("an undocumented value: %v, want an error naming b", err)
	}
}
