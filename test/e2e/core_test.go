package e2e

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/mumoshu/aws-secret-controller/pkg/apis/mumoshu/v1alpha1"
	"github.com/mumoshu/aws-secret-controller/pkg/controller"
)

// These tests show, on the real API server, the fixes of the trustworthy-core review: what a
// fake clientset cannot show (validation of Secrets, dry runs, CEL in the CRD, what client-go
// logs, deletion in progress) happens here.

// patchAWSSecret applies a JSON merge patch to an AWSSecret.
func patchAWSSecret(t *testing.T, ns, name, patch string) {
	t.Helper()
	if _, err := client.MumoshuV1alpha1().AWSSecrets(ns).Patch(context.Background(), name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatalf("patching AWSSecret %s/%s: %v", ns, name, err)
	}
}

func getSecret(t *testing.T, ns, name string) *corev1.Secret {
	t.Helper()
	s, err := kube.CoreV1().Secrets(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("reading Secret %s/%s: %v", ns, name, err)
	}
	return s
}

// syncs is how many syncs a controller finished with result.
func (p *controllerProcess) syncs(t *testing.T, result string) int {
	t.Helper()
	return int(p.metric(t, "aws_secret_controller_syncs_total", map[string]string{"result": result}))
}

// TestTypeChange changes spec.type on the real API server, which validates each Secret type's
// required keys: a change the payload cannot satisfy is refused before anything is deleted, and
// one it can is carried out with other writers' labels kept.
func TestTypeChange(t *testing.T) {
	ns := newNamespace(t, "type-change")
	v1 := createSecret(t, "e2e/type-change", fmt.Sprintf(`{"username":"app","password":%q}`, newValue("type-change")))
	startController(t, "controller", env.Kubeconfig, nil, "--namespace", ns)

	t.Run("refused: the old Secret stays", func(t *testing.T) {
		createAWSSecret(t, ns, "to-tls", "e2e/type-change", v1)
		before := waitSynced(t, ns, "to-tls", v1)
		patchAWSSecret(t, ns, "to-tls", `{"spec":{"type":"kubernetes.io/tls"}}`)
		waitReason(t, ns, "to-tls", v1alpha1.ReasonInvalidSecret)
		after := getSecret(t, ns, "to-tls")
		if after.UID != before.UID || after.ResourceVersion != before.ResourceVersion || after.Type != corev1.SecretTypeOpaque {
			t.Errorf("the Secret changed: uid %s→%s, resourceVersion %s→%s, type %s", before.UID, after.UID, before.ResourceVersion, after.ResourceVersion, after.Type)
		}
		eventually(t, 10*time.Second, "a Warning event InvalidSecret", func() (bool, string) {
			return hasEvent(t, ns, "to-tls", corev1.EventTypeWarning, v1alpha1.ReasonInvalidSecret), "no event yet"
		})
	})

	t.Run("accepted: replaced, others' labels kept", func(t *testing.T) {
		createAWSSecret(t, ns, "to-basic-auth", "e2e/type-change", v1)
		before := waitSynced(t, ns, "to-basic-auth", v1)
		kubectl(t, "", "label", "secret", "-n", ns, "to-basic-auth", "policy.example.com/scanned=true")
		patchAWSSecret(t, ns, "to-basic-auth", `{"spec":{"type":"kubernetes.io/basic-auth"}}`)
		eventually(t, 30*time.Second, "the Secret replaced with type basic-auth", func() (bool, string) {
			s, err := kube.CoreV1().Secrets(ns).Get(context.Background(), "to-basic-auth", metav1.GetOptions{})
			if err != nil {
				return false, err.Error()
			}
			return s.Type == corev1.SecretTypeBasicAuth, string(s.Type)
		})
		after := waitSynced(t, ns, "to-basic-auth", v1)
		if after.UID == before.UID {
			t.Error("the Secret kept its UID: it was not replaced")
		}
		if after.Labels["policy.example.com/scanned"] != "true" {
			t.Errorf("another writer's label was lost: %v", after.Labels)
		}
		if !metav1.IsControlledBy(after, &metav1.ObjectMeta{UID: before.OwnerReferences[0].UID}) || len(after.Data["password"]) == 0 {
			t.Errorf("replacement: owners %v, keys %d", after.OwnerReferences, len(after.Data))
		}
	})

	t.Run("the CRD refuses service-account-token", func(t *testing.T) {
		a := &v1alpha1.AWSSecret{
			ObjectMeta: metav1.ObjectMeta{Name: "sa-token", Namespace: ns},
			Spec: v1alpha1.AWSSecretSpec{
				Type: corev1.SecretTypeServiceAccountToken,
				StringDataFrom: &v1alpha1.DataSource{SecretsManagerSecretRef: v1alpha1.SecretsManagerSecretRef{
					SecretID: "e2e/type-change", VersionID: v1,
				}},
			},
		}
		_, err := client.MumoshuV1alpha1().AWSSecrets(ns).Create(context.Background(), a, metav1.CreateOptions{})
		if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "token controller") {
			t.Errorf("creating an AWSSecret of type service-account-token: %v, want Invalid naming the token controller", err)
		}
	})
}

// TestNoSecretValueAtAnyVerbosity runs the real binary at -v=10, where client-go would log
// request and response bodies (protobuf ones as a hex dump), through a create, a version bump
// and a hand edit, and looks for every value in every encoding it could take in the log.
func TestNoSecretValueAtAnyVerbosity(t *testing.T) {
	ns := newNamespace(t, "verbosity")
	first, second := newValue("verbose-one"), newValue("verbose-two")
	v1 := createSecret(t, "e2e/verbosity", fmt.Sprintf(`{"token":%q}`, first))
	v2 := putSecretValue(t, "e2e/verbosity", fmt.Sprintf(`{"token":%q}`, second))
	p := startController(t, "controller", env.Kubeconfig, nil, "--namespace", ns, "-v", "10")

	createAWSSecret(t, ns, "app", "e2e/verbosity", v1)
	waitSynced(t, ns, "app", v1)
	a, err := client.MumoshuV1alpha1().AWSSecrets(ns).Get(context.Background(), "app", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	setRef(t, a, "e2e/verbosity", v2)
	synced := waitSynced(t, ns, "app", v2)
	// A hand edit makes the controller read the Secret's data back and write it again.
	edited := synced.DeepCopy()
	edited.Data["token"] = []byte("edited")
	if _, err := kube.CoreV1().Secrets(ns).Update(context.Background(), edited, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "the hand edit undone", func() (bool, string) {
		s := getSecret(t, ns, "app")
		return string(s.Data["token"]) == second, "still edited"
	})
	p.stop(t)

	log := p.log(t)
	if !strings.Contains(log, "Verbosity capped") {
		t.Error("the log does not say that -v=10 was capped")
	}
	if !strings.Contains(log, `verb="PUT"`) || !strings.Contains(log, "headers=<") {
		t.Error("the log shows no client-go request headers (-v=7): the run did not test a high verbosity")
	}
	for _, bodyMark := range []string{"Request Body", "Response Body", "curl -v"} {
		if strings.Contains(log, bodyMark) {
			t.Errorf("the log contains %q lines", bodyMark)
		}
	}
	for _, v := range []string{first, second} {
		// The values are "verbose-one-" or "verbose-two-" and 16 random hex digits: every
		// pattern looks for the random part, which nothing else could print.
		raw := []byte(v)
		random := raw[len(raw)-16:]
		for name, enc := range map[string]string{
			"plain":  v,
			"random": string(random),
			"base64": base64.StdEncoding.EncodeToString(raw),
			"hex":    hex.EncodeToString(random),
			// hex.Dump writes 16 bytes a line: bytes 16 to 23 of the value start its second line.
			"hex dump": fmt.Sprintf("% x", raw[16:24]),
		} {
			if strings.Contains(log, enc) {
				t.Errorf("the log at -v=10 contains a secret value (%s form, %d bytes)", name, len(enc))
			}
		}
	}
}

// TestOtherWritersKeepTheirMarks: labels and annotations that other writers (a mutating
// webhook, a scanner, a person) put on the Secret are theirs: they cause no write, survive a
// version bump, and only the keys the controller set follow spec.metadata.
func TestOtherWritersKeepTheirMarks(t *testing.T) {
	ns := newNamespace(t, "other-writers")
	v1 := createSecret(t, "e2e/other-writers", fmt.Sprintf(`{"k":%q}`, newValue("other-writers")))
	value2 := newValue("other-writers")
	v2 := putSecretValue(t, "e2e/other-writers", fmt.Sprintf(`{"k":%q}`, value2))
	p := startController(t, "controller", env.Kubeconfig, nil, "--namespace", ns)
	createAWSSecret(t, ns, "app", "e2e/other-writers", v1)
	patchAWSSecret(t, ns, "app", `{"spec":{"metadata":{"labels":{"team":"payments"}}}}`)
	eventually(t, 30*time.Second, "the spec label on the Secret", func() (bool, string) {
		s, err := kube.CoreV1().Secrets(ns).Get(context.Background(), "app", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		return s.Labels["team"] == "payments", fmt.Sprintf("labels %v", s.Labels)
	})
	updated, unchanged := p.syncs(t, controller.ResultUpdated), p.syncs(t, controller.ResultUnchanged)

	kubectl(t, "", "label", "secret", "-n", ns, "app", "policy.example.com/scanned=true")
	kubectl(t, "", "annotate", "secret", "-n", ns, "app", "scanner.example.com/report=clean")
	// Each edit wakes the controller; wait until it has looked at the Secret after both.
	eventually(t, 30*time.Second, "the controller syncing after the edits", func() (bool, string) {
		s := getSecret(t, ns, "app")
		n := p.syncs(t, controller.ResultUnchanged)
		return n >= unchanged+2 && s.Annotations["scanner.example.com/report"] == "clean", fmt.Sprintf("%d Unchanged syncs", n)
	})
	if n := p.syncs(t, controller.ResultUpdated); n != updated {
		t.Errorf("Updated syncs went from %d to %d: the controller rewrote another writer's marks", updated, n)
	}

	a, err := client.MumoshuV1alpha1().AWSSecrets(ns).Get(context.Background(), "app", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	setRef(t, a, "e2e/other-writers", v2)
	s := waitSynced(t, ns, "app", v2)
	if s.Labels["policy.example.com/scanned"] != "true" || s.Annotations["scanner.example.com/report"] != "clean" {
		t.Errorf("a version bump removed another writer's marks: labels %v, annotations %v", s.Labels, s.Annotations)
	}

	patchAWSSecret(t, ns, "app", `{"spec":{"metadata":{"labels":null}}}`)
	eventually(t, 30*time.Second, "the label dropped from spec.metadata removed", func() (bool, string) {
		s := getSecret(t, ns, "app")
		_, has := s.Labels["team"]
		return !has, fmt.Sprintf("labels %v", s.Labels)
	})
	s = getSecret(t, ns, "app")
	if s.Labels["policy.example.com/scanned"] != "true" || s.Labels[controller.ManagedByLabel] != controller.ComponentName {
		t.Errorf("labels after dropping the spec label: %v", s.Labels)
	}
	// The label changes were patches of the marks (the controller keeps no data to send): the
	// data stay whole, and the digest the controller keeps in memory never reaches the Secret.
	if string(s.Data["k"]) != value2 || len(s.Data) != 1 {
		t.Errorf("the Secret's data changed with its labels (%d keys)", len(s.Data))
	}
	for k := range s.Annotations {
		if strings.HasPrefix(k, "cache.") {
			t.Errorf("the controller's in-memory annotation %s reached the Secret", k)
		}
	}
}

// TestNoWritesWhileTheOwnerIsBeingDeleted deletes an AWSSecret in the foreground, as Argo CD
// prunes: the AWSSecret waits (with a deletionTimestamp) for its Secret to go. The controller
// must not recreate the Secret that the garbage collector deletes. No garbage collector runs
// on this stack, so the test deletes the Secret itself, as the collector would.
func TestNoWritesWhileTheOwnerIsBeingDeleted(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t, "foreground")
	v1 := createSecret(t, "e2e/foreground", fmt.Sprintf(`{"k":%q}`, newValue("foreground")))
	p := startController(t, "controller", env.Kubeconfig, nil, "--namespace", ns)
	createAWSSecret(t, ns, "app", "e2e/foreground", v1)
	waitSynced(t, ns, "app", v1)
	t.Cleanup(func() {
		// Let the AWSSecret go: nothing else will remove the foregroundDeletion finalizer here.
		_, _ = client.MumoshuV1alpha1().AWSSecrets(ns).Patch(ctx, "app", types.MergePatchType, []byte(`{"metadata":{"finalizers":null}}`), metav1.PatchOptions{})
	})

	foreground := metav1.DeletePropagationForeground
	if err := client.MumoshuV1alpha1().AWSSecrets(ns).Delete(ctx, "app", metav1.DeleteOptions{PropagationPolicy: &foreground}); err != nil {
		t.Fatal(err)
	}
	deleting := p.syncs(t, controller.ResultDeleting)
	if err := kube.CoreV1().Secrets(ns).Delete(ctx, "app", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "the controller syncing the AWSSecret being deleted", func() (bool, string) {
		n := p.syncs(t, controller.ResultDeleting)
		return n > deleting, fmt.Sprintf("%d Deleting syncs", n)
	})
	if _, err := kube.CoreV1().Secrets(ns).Get(ctx, "app", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the Secret of an AWSSecret being deleted was recreated (err %v)", err)
	}
}

// TestConflictAfterRestartCostsNoAWSCall: a Secret in the way is found before Secrets Manager is
// asked, once the AWSSecret's status records the conflict; a restarted controller spends no
// call on it.
func TestConflictAfterRestartCostsNoAWSCall(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t, "conflict-restart")
	v1 := createSecret(t, "e2e/conflict-restart", fmt.Sprintf(`{"k":%q}`, newValue("conflict-restart")))
	if _, err := kube.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "taken"},
		Data:       map[string][]byte{"mine": []byte("keep me")},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	first := startController(t, "first", env.Kubeconfig, nil, "--namespace", ns)
	createAWSSecret(t, ns, "taken", "e2e/conflict-restart", v1)
	waitReason(t, ns, "taken", v1alpha1.ReasonSecretConflict)
	first.stop(t)

	restarted := startController(t, "restarted", env.Kubeconfig, nil, "--namespace", ns)
	eventually(t, 30*time.Second, "the restarted controller syncing the conflict", func() (bool, string) {
		n := restarted.syncs(t, v1alpha1.ReasonSecretConflict)
		return n >= 1, fmt.Sprintf("%d SecretConflict syncs", n)
	})
	if n := restarted.awsCalls(t); n != 0 {
		t.Errorf("the restarted controller made %d GetSecretValue calls for a known conflict, want 0", n)
	}
}

// TestShutdownLeavesQueuedWork: SIGTERM during a cold-start burst finishes the syncs in flight
// and starts no more, so the process exits well inside a Pod's grace period. The client is
// slowed to 2 requests per second so that the burst would take a minute to drain.
func TestShutdownLeavesQueuedWork(t *testing.T) {
	const objects = 60
	ns := newNamespace(t, "shutdown")
	v1 := createSecret(t, "e2e/shutdown", fmt.Sprintf(`{"k":%q}`, newValue("shutdown")))
	for i := range objects {
		createAWSSecret(t, ns, fmt.Sprintf("app-%d", i), "e2e/shutdown", v1)
	}
	p := startController(t, "controller", env.Kubeconfig, nil, "--namespace", ns,
		"--workers", "2", "--kube-api-qps", "2", "--kube-api-burst", "1")
	eventually(t, 30*time.Second, "the burst under way", func() (bool, string) {
		n := p.syncs(t, controller.ResultCreated)
		return n >= 1, fmt.Sprintf("%d Secrets created", n)
	})
	took := p.stop(t)
	secrets, err := kube.CoreV1().Secrets(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(secrets.Items) >= objects {
		t.Errorf("all %d Secrets were written after SIGTERM: the queue was drained", objects)
	}
	t.Logf("SIGTERM to exit: %s, with %d of %d Secrets written", took.Round(time.Millisecond), len(secrets.Items), objects)
}

// TestTypeChangeRefusedByAdmission: an admission policy (as Gatekeeper or Kyverno would) refuses
// the replacement Secret that the controller's own per-type check accepts. The dry run meets the
// refusal before anything is deleted, so the old Secret stays.
func TestTypeChangeRefusedByAdmission(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t, "type-change-admission")
	v1 := createSecret(t, "e2e/type-change-admission", fmt.Sprintf(`{"username":"app","password":%q}`, newValue("type-change-admission")))
	policyName := "e2e-no-basic-auth-" + ns
	policy := &admissionregistrationv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: policyName},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
			FailurePolicy: ptr.To(admissionregistrationv1.Fail),
			MatchConstraints: &admissionregistrationv1.MatchResources{ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{{
				RuleWithOperations: admissionregistrationv1.RuleWithOperations{
					Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
					Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"secrets"}},
				},
			}}},
			Validations: []admissionregistrationv1.Validation{{
				Expression: "object.type != 'kubernetes.io/basic-auth'",
				Message:    "basic-auth Secrets are not allowed here",
			}},
		},
	}
	if _, err := kube.AdmissionregistrationV1().ValidatingAdmissionPolicies().Create(ctx, policy, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = kube.AdmissionregistrationV1().ValidatingAdmissionPolicies().Delete(context.Background(), policyName, metav1.DeleteOptions{})
	})
	binding := &admissionregistrationv1.ValidatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: policyName},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec{
			PolicyName:        policyName,
			ValidationActions: []admissionregistrationv1.ValidationAction{admissionregistrationv1.Deny},
			MatchResources: &admissionregistrationv1.MatchResources{NamespaceSelector: &metav1.LabelSelector{
				MatchLabels: map[string]string{"kubernetes.io/metadata.name": ns},
			}},
		},
	}
	if _, err := kube.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = kube.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings().Delete(context.Background(), policyName, metav1.DeleteOptions{})
	})
	// The policy takes effect once the API server has loaded it: probe with a dry run.
	eventually(t, 30*time.Second, "the admission policy in force", func() (bool, string) {
		_, err := kube.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{GenerateName: "probe-"},
			Type:       corev1.SecretTypeBasicAuth,
			Data:       map[string][]byte{"username": []byte("u")},
		}, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		return err != nil, fmt.Sprintf("dry run: %v", err)
	})

	startController(t, "controller", env.Kubeconfig, nil, "--namespace", ns)
	createAWSSecret(t, ns, "app", "e2e/type-change-admission", v1)
	before := waitSynced(t, ns, "app", v1)
	patchAWSSecret(t, ns, "app", `{"spec":{"type":"kubernetes.io/basic-auth"}}`)
	eventually(t, 30*time.Second, "the refusal in the status", func() (bool, string) {
		a, err := client.MumoshuV1alpha1().AWSSecrets(ns).Get(ctx, "app", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		for _, c := range a.Status.Conditions {
			if c.Type == v1alpha1.ConditionReady && c.Status == metav1.ConditionFalse && strings.Contains(c.Message, "dry run") {
				return true, ""
			}
		}
		return false, fmt.Sprintf("%+v", a.Status.Conditions)
	})
	after := getSecret(t, ns, "app")
	if after.UID != before.UID || after.Type != corev1.SecretTypeOpaque {
		t.Errorf("the Secret was replaced or lost although admission refuses the replacement: uid %s→%s, type %s", before.UID, after.UID, after.Type)
	}
}

// TestRestartStreamsTheInitialLists: the controller streams its informers' initial lists
// (client-go's WatchListClient), so that every Secret passes through TransformForCache as it
// arrives instead of a whole LIST, values included, sitting in memory at once. A restart still
// finds every Secret as written: no AWS call, no write.
func TestRestartStreamsTheInitialLists(t *testing.T) {
	ns := newNamespace(t, "streamed-lists")
	v1 := createSecret(t, "e2e/streamed-lists", fmt.Sprintf(`{"k":%q}`, newValue("streamed-lists")))
	first := startController(t, "first", env.Kubeconfig, nil, "--namespace", ns)
	for i := range 3 {
		createAWSSecret(t, ns, fmt.Sprintf("app-%d", i), "e2e/streamed-lists", v1)
	}
	for i := range 3 {
		waitSynced(t, ns, fmt.Sprintf("app-%d", i), v1)
	}
	first.stop(t)

	restarted := startController(t, "restarted", env.Kubeconfig, nil, "--namespace", ns)
	eventually(t, 30*time.Second, "the restarted controller syncing the 3 AWSSecrets", func() (bool, string) {
		n := restarted.syncs(t, controller.ResultUnchanged)
		return n >= 3, fmt.Sprintf("%d Unchanged syncs", n)
	})
	for _, result := range []string{controller.ResultCreated, controller.ResultUpdated, controller.ResultReplaced} {
		if n := restarted.syncs(t, result); n != 0 {
			t.Errorf("the restarted controller wrote: %d %s syncs", n, result)
		}
	}
	if n := restarted.awsCalls(t); n != 0 {
		t.Errorf("the restarted controller made %d AWS calls, want 0", n)
	}
	log := restarted.log(t)
	if !strings.Contains(log, "streamedLists=true") {
		t.Error("the controller does not say streamedLists=true")
	}
	if strings.Contains(log, "falling back to the standard LIST") {
		t.Error("the API server did not stream the initial lists: client-go fell back to LIST")
	}
}
