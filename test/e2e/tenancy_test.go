package e2e

import (
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/mumoshu/aws-secret-controller/pkg/apis/mumoshu/v1alpha1"
	"github.com/mumoshu/aws-secret-controller/pkg/awssm"
	"github.com/mumoshu/aws-secret-controller/pkg/tenancy"
)

// emulatorBodies returns the bodies of the emulator's requests for an operation target.
func emulatorBodies(t *testing.T, target string) []string {
	t.Helper()
	bodies, err := env.EmulatorRequestBodies(target)
	if err != nil {
		t.Fatal(err)
	}
	return bodies
}

// readsOf counts the GetSecretValue requests the emulator received for a secret id.
func readsOf(t *testing.T, secretID string) int {
	t.Helper()
	n := 0
	for _, b := range emulatorBodies(t, "secretsmanager.GetSecretValue") {
		if strings.Contains(b, fmt.Sprintf("%q", secretID)) {
			n++
		}
	}
	return n
}

func annotateNamespace(t *testing.T, ns string, kv ...string) {
	t.Helper()
	kubectl(t, "", append([]string{"annotate", "--overwrite", "namespace", ns}, kv...)...)
}

// TestTenancy runs the controller cluster-wide with the shipped policy (allow-list) on the real
// stack: a namespace reads only what its Namespace allows, within --allowed-secret-ids; a denied
// read reaches neither AWS nor the cache; annotating a Namespace acts at once; a role-arn makes
// the controller read through STS AssumeRole, and the version cache never crosses roles.
func TestTenancy(t *testing.T) {
	teamA := newNamespace(t, "tenancy-team-a")
	teamB := newNamespace(t, "tenancy-team-b")
	annotateNamespace(t, teamA, tenancy.AnnotationAllowedSecretIDs+"=tenancy/team-a/*, outside/*")
	aV1 := createSecret(t, "tenancy/team-a/db", fmt.Sprintf(`{"password":%q}`, newValue("team-a")))
	bV1 := createSecret(t, "tenancy/team-b/db", fmt.Sprintf(`{"password":%q}`, newValue("team-b")))
	outV1 := createSecret(t, "outside/db", fmt.Sprintf(`{"password":%q}`, newValue("outside")))
	ctrl := startController(t, "controller", env.Kubeconfig, nil,
		"--namespace-policy=allow-list", "--allowed-secret-ids=tenancy/*")

	t.Run("allowed", func(t *testing.T) {
		createAWSSecret(t, teamA, "db", "tenancy/team-a/db", aV1)
		waitSynced(t, teamA, "db", aV1)
	})

	t.Run("another team's secret: denied before AWS", func(t *testing.T) {
		createAWSSecret(t, teamA, "steal", "tenancy/team-b/db", bV1)
		waitReason(t, teamA, "steal", v1alpha1.ReasonSecretNotAllowed)
		eventually(t, 10*time.Second, "a Warning event SecretNotAllowed", func() (bool, string) {
			return hasEvent(t, teamA, "steal", corev1.EventTypeWarning, v1alpha1.ReasonSecretNotAllowed), "no event yet"
		})
		if _, err := kube.CoreV1().Secrets(teamA).Get(t.Context(), "steal", metav1.GetOptions{}); err == nil {
			t.Error("a Secret was written for a denied AWSSecret")
		}
		if n := readsOf(t, "tenancy/team-b/db"); n != 0 {
			t.Errorf("the emulator served %d reads of a denied secret", n)
		}
	})

	t.Run("outside --allowed-secret-ids although the Namespace allows it", func(t *testing.T) {
		createAWSSecret(t, teamA, "outside", "outside/db", outV1)
		waitReason(t, teamA, "outside", v1alpha1.ReasonSecretNotAllowed)
		if n := readsOf(t, "outside/db"); n != 0 {
			t.Errorf("the emulator served %d reads of a secret outside --allowed-secret-ids", n)
		}
	})

	t.Run("unannotated namespace, then annotated", func(t *testing.T) {
		createAWSSecret(t, teamB, "db", "tenancy/team-b/db", bV1)
		waitReason(t, teamB, "db", v1alpha1.ReasonSecretNotAllowed)
		if n := readsOf(t, "tenancy/team-b/db"); n != 0 {
			t.Errorf("the emulator served %d reads for an unannotated namespace", n)
		}
		annotateNamespace(t, teamB, tenancy.AnnotationAllowedSecretIDs+"=tenancy/team-b/*")
		// Within seconds: the slow retry of a permanent error would take 30 s or more.
		start := time.Now()
		eventually(t, 10*time.Second, "synced after the Namespace was annotated", func() (bool, string) {
			s, err := kube.CoreV1().Secrets(teamB).Get(t.Context(), "db", metav1.GetOptions{})
			if err != nil {
				return false, err.Error()
			}
			return s.Annotations["aws-secret-controller.mumoshu.github.io/string-data-version-id"] == bV1, "not yet"
		})
		t.Logf("synced %s after the annotation", time.Since(start).Round(10*time.Millisecond))
	})

	t.Run("roles: AssumeRole per namespace, cache never crosses roles", func(t *testing.T) {
		const roleX, roleY = "arn:aws:iam::111111111111:role/tenancy-x", "arn:aws:iam::111111111111:role/tenancy-y"
		nsX, nsY := newNamespace(t, "tenancy-role-x"), newNamespace(t, "tenancy-role-y")
		annotateNamespace(t, nsX, tenancy.AnnotationAllowedSecretIDs+"=tenancy/shared/*", tenancy.AnnotationRoleARN+"="+roleX)
		annotateNamespace(t, nsY, tenancy.AnnotationAllowedSecretIDs+"=tenancy/shared/*", tenancy.AnnotationRoleARN+"="+roleY)
		shared := createSecret(t, "tenancy/shared/db", fmt.Sprintf(`{"password":%q}`, newValue("shared")))
		// Two AWSSecrets as role x (one call), one as role y (one call of its own).
		createAWSSecret(t, nsX, "one", "tenancy/shared/db", shared)
		waitSynced(t, nsX, "one", shared)
		createAWSSecret(t, nsX, "two", "tenancy/shared/db", shared)
		waitSynced(t, nsX, "two", shared)
		createAWSSecret(t, nsY, "one", "tenancy/shared/db", shared)
		waitSynced(t, nsY, "one", shared)
		if n := readsOf(t, "tenancy/shared/db"); n != 2 {
			t.Errorf("GetSecretValue calls for the shared version = %d, want 2: one per role, none shared across them", n)
		}
		assumed := map[string]string{}
		for _, b := range emulatorBodies(t, "AWSSecurityTokenServiceV20110615.AssumeRole") {
			// The SDK sends AssumeRole form-encoded (the query protocol).
			if unescaped, err := url.QueryUnescape(b); err == nil {
				b = unescaped
			}
			for _, role := range []string{roleX, roleY} {
				if strings.Contains(b, role) {
					assumed[role] = b
				}
			}
		}
		for role, ns := range map[string]string{roleX: nsX, roleY: nsY} {
			b, ok := assumed[role]
			if !ok {
				t.Errorf("no AssumeRole for %s in the emulator's log", role)
				continue
			}
			for _, want := range []string{"RoleSessionName=" + awssm.SessionName(ns), "Key=" + awssm.SessionTagKey, "Value=" + ns} {
				if !strings.Contains(b, want) {
					t.Errorf("AssumeRole for %s: %s lacks %s", role, b, want)
				}
			}
		}
		// The controller counts them too, one per role identity (the SDK caches credentials).
		if n := ctrl.metric(t, "aws_secret_controller_aws_sts_assume_role_calls_total", map[string]string{"result": "success"}); n < 2 {
			t.Errorf("AssumeRole calls by the controller's metric = %v, want at least 2 (two roles)", n)
		}
	})
}
