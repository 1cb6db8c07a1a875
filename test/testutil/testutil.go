// Package testutil holds what the end-to-end suites (test/e2e, test/node) share: polling with a
// deadline, writing secrets into the emulator, creating AWSSecrets, remembering the values the
// tests stored so their logs can be searched for leaks, and running update-aws-secret-ids over a
// copy of a manifests folder, and helm.
package testutil

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/mumoshu/aws-secret-controller/pkg/apis/mumoshu/v1alpha1"
	"github.com/mumoshu/aws-secret-controller/pkg/generated/clientset/versioned"
)

// Values remembers every secret value a suite stored, for the leak checks.
type Values struct {
	mu     sync.Mutex
	values []string
}

// New returns a fresh value starting with prefix and remembers it.
func (v *Values) New(prefix string) string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	value := prefix + "-" + hex.EncodeToString(b)
	v.mu.Lock()
	defer v.mu.Unlock()
	v.values = append(v.values, value)
	return value
}

// All returns every value New made.
func (v *Values) All() []string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]string(nil), v.values...)
}

// CreateSecret creates a secret in the emulator and returns its first version id.
func CreateSecret(t testing.TB, sm *secretsmanager.Client, id, content string) string {
	t.Helper()
	out, err := sm.CreateSecret(context.Background(), &secretsmanager.CreateSecretInput{
		Name: aws.String(id), SecretString: aws.String(content),
	})
	if err != nil {
		t.Fatalf("CreateSecret %s: %v", id, err)
	}
	return aws.ToString(out.VersionId)
}

// PutSecretValue adds a version to a secret and returns its id.
func PutSecretValue(t testing.TB, sm *secretsmanager.Client, id, content string) string {
	t.Helper()
	out, err := sm.PutSecretValue(context.Background(), &secretsmanager.PutSecretValueInput{
		SecretId: aws.String(id), SecretString: aws.String(content),
	})
	if err != nil {
		t.Fatalf("PutSecretValue %s: %v", id, err)
	}
	return aws.ToString(out.VersionId)
}

// CreateAWSSecret creates an AWSSecret pinning one version through stringDataFrom.
func CreateAWSSecret(t testing.TB, client versioned.Interface, ns, name, secretID, versionID string) {
	t.Helper()
	_, err := client.MumoshuV1alpha1().AWSSecrets(ns).Create(context.Background(), &v1alpha1.AWSSecret{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1alpha1.AWSSecretSpec{StringDataFrom: &v1alpha1.DataSource{
			SecretsManagerSecretRef: v1alpha1.SecretsManagerSecretRef{SecretID: secretID, VersionID: versionID},
		}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating AWSSecret %s/%s: %v", ns, name, err)
	}
}

// Eventually polls cond every 100ms until it holds or timeout passes; cond says what it saw,
// which the failure reports.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for {
		ok, seen := cond()
		if ok {
			return
		}
		last = seen
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s; last seen: %s", what, timeout, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// UpdateAWSSecretIDs runs bin/update-aws-secret-ids from binDir with the environment env (the
// emulator's endpoint and credentials) and returns its exit status and output.
func UpdateAWSSecretIDs(t testing.TB, binDir string, env []string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir, "update-aws-secret-ids"), args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		code = exit.ExitCode()
	default:
		t.Fatalf("running update-aws-secret-ids (make build): %v", err)
	}
	return code, out.String(), errOut.String()
}

// CopyDir copies the regular files of a directory tree to dst, replacing each old string of
// replace with its new one (pairs, as strings.NewReplacer takes them).
func CopyDir(t testing.TB, src, dst string, replace ...string) {
	t.Helper()
	r := strings.NewReplacer(replace...)
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), []byte(r.Replace(string(b))), 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// Helm runs bin/helm from binDir with a configuration and cache of its own, and returns its
// combined output.
func Helm(t testing.TB, binDir string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir, "helm"), args...)
	home := t.TempDir()
	cmd.Env = append(os.Environ(), "HELM_CONFIG_HOME="+home, "HELM_CACHE_HOME="+home, "HELM_DATA_HOME="+home)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return out.String() + errOut.String(), fmt.Errorf("helm %s: %w\n%s", strings.Join(args, " "), err, errOut.String())
	}
	return out.String(), nil
}
