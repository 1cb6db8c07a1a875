package main

import (
	"os"
	"strings"
	"testing"
)

// TestTheAPIDocIsCurrent: docs/api.md holds the field table the CRD gives (hack/verify-codegen.sh
// holds the CRD to the Go types) and the reasons conditions.go declares.
func TestTheAPIDocIsCurrent(t *testing.T) {
	if err := run("../../manifests/crd/mumoshu.github.io_awssecrets.yaml", "../../pkg/apis/mumoshu/v1alpha1/conditions.go", "../../docs/api.md", true); err != nil {
		t.Fatal(err)
	}
}

// TestTableNamesEveryField: a field added to the CRD gets a row, with its constraints.
func TestTableNamesEveryField(t *testing.T) {
	crd, err := os.ReadFile("../../manifests/crd/mumoshu.github.io_awssecrets.yaml")
	if err != nil {
		t.Fatal(err)
	}
	renamed := strings.Replace(string(crd), "versionId:", "versionID:", 1)
	table, err := Table([]byte(renamed))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| `spec.stringDataFrom.secretsManagerSecretRef.secretId` | string | required; length 1–2048 |",
		"| `spec.data[].decode` | string | one of None, Base64 |",
		"versionID`",
	} {
		if !strings.Contains(string(table), want) {
			t.Errorf("the table lacks %q:\n%s", want, table)
		}
	}
}

// TestReasons: every Reason constant is a row, with its doc comment.
func TestReasons(t *testing.T) {
	table, err := Reasons("../../pkg/apis/mumoshu/v1alpha1/conditions.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| `Synced` | the Secret holds the pinned versions (Ready=True). |",
		"| `SecretNotAllowed` | the namespace may not read the secret id",
		"| `KubernetesError` |",
	} {
		if !strings.Contains(string(table), want) {
			t.Errorf("the reasons lack %q:\n%s", want, table)
		}
	}
}
