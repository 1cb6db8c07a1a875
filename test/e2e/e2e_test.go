package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/mumoshu/aws-secret-controller/pkg/apis/mumoshu/v1alpha1"
	"github.com/mumoshu/aws-secret-controller/pkg/controller"
	"github.com/mumoshu/aws-secret-controller/pkg/generated/clientset/versioned"
	"github.com/mumoshu/aws-secret-controller/pkg/tenancy"
	"github.com/mumoshu/aws-secret-controller/pkg/testenv"
)

const seedVersionID = "c43e66cb-d0fe-44c5-9b7e-d450441a04be"

// steadyState is how long TestSeedExampleRolloutSteadyStateRestart watches a synced namespace;
// E2E_STEADY_STATE shortens it for quick local runs.
func steadyState(t *testing.T) time.Duration {
	if s := os.Getenv("E2E_STEADY_STATE"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	return 30 * time.Second
}

// TestSeedExampleRolloutSteadyStateRestart walks the product's promise: the seed's example YAML
// syncs, a versionId bump costs exactly one AWS call, a synced namespace costs none (not even
// on resync), and neither does a restart.
func TestSeedExampleRolloutSteadyStateRestart(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t, "seed")
	token1 := newValue("seed-token")
	v1 := createSecret(t, "prod/mysecret", fmt.Sprintf(`{"foo":"bar","token":%q}`, token1))
	// A short resync period makes the steady state include resyncs of every object.
	ctrl := startController(t, "controller", env.Kubeconfig, nil, "--namespace", ns, "--resync-period", "5s")

	// The seed's example, verbatim but for the real versionId, applied with kubectl.
	example, err := os.ReadFile(filepath.Join(repoRoot, "manifests", "example", "awssecret.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	kubectl(t, strings.ReplaceAll(string(example), seedVersionID, v1), "apply", "-n", ns, "-f", "-")
	// Three more AWSSecrets pin the same version: still one AWS call in all.
	for i := range 3 {
		createAWSSecret(t, ns, fmt.Sprintf("copy-%d", i), "prod/mysecret", v1)
	}

	secret := waitSynced(t, ns, "example", v1)
	if got := string(secret.Data["foo"]); got != "bar" {
		t.Errorf("foo = %q, want bar", got)
	}
	if got := string(secret.Data["token"]); got != token1 {
		t.Errorf("token is not the stored value")
	}
	as, err := client.MumoshuV1alpha1().AWSSecrets(ns).Get(ctx, "example", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !metav1.IsControlledBy(secret, as) {
		t.Errorf("Secret is not controlled by the AWSSecret: %v", secret.OwnerReferences)
	}
	for i := range 3 {
		waitSynced(t, ns, fmt.Sprintf("copy-%d", i), v1)
	}
	if got := ctrl.awsCalls(t); got != 1 {
		t.Errorf("AWS calls for 4 AWSSecrets pinning one version = %d, want 1", got)
	}
	// The other metrics the runbook relies on are exported.
	for name, labels := range map[string]map[string]string{
		"aws_secret_controller_version_cache_hits_total":   nil,
		"aws_secret_controller_version_cache_misses_total": nil,
		"aws_secret_controller_syncs_total":                {"result": controller.ResultCreated},
		"workqueue_adds_total":                             {"name": controller.ComponentName},
		"aws_secret_controller_aws_api_attempts_total":     {"operation": "GetSecretValue", "result": "success"},
	} {
		if v := ctrl.metric(t, name, labels); v < 1 {
			t.Errorf("metric %s%v = %v, want at least 1", name, labels, v)
		}
	}

	// The table kubectl prints comes from the CRD's printer columns.
	table := kubectl(t, "", "get", "awssecret", "example", "-n", ns)
	for _, want := range []string{"SECRETID", "VERSIONID", "READY", "REASON", "AGE", "prod/mysecret", v1, "True", "Synced"} {
		if !strings.Contains(table, want) {
			t.Errorf("kubectl get awssecret does not show %q:\n%s", want, table)
		}
	}

	// Roll out a new version: exactly one more call, by the controller's count and the emulator's.
	metricsBefore, emulatorBefore := ctrl.awsCalls(t), emulatorCalls(t)
	token2 := newValue("seed-token")
	v2 := putSecretValue(t, "prod/mysecret", fmt.Sprintf(`{"foo":"baz","token":%q}`, token2))
	kubectl(t, "", "patch", "awssecret", "example", "-n", ns, "--type", "merge",
		"-p", fmt.Sprintf(`{"spec":{"stringDataFrom":{"secretsManagerSecretRef":{"versionId":%q}}}}`, v2))
	secret = waitSynced(t, ns, "example", v2)
	if got := string(secret.Data["foo"]); got != "baz" {
		t.Errorf("after the bump foo = %q, want baz", got)
	}
	if got := ctrl.awsCalls(t) - metricsBefore; got != 1 {
		t.Errorf("AWS calls for the bump by /metrics = %d, want 1", got)
	}
	if got := emulatorCalls(t) - emulatorBefore; got != 1 {
		t.Errorf("AWS calls for the bump by the emulator's log = %d, want 1", got)
	}

	// Steady state: no AWS call and no write, while resyncs go through every object.
	before := snapshot(t, ns)
	metricsBefore, emulatorBefore = ctrl.awsCalls(t), emulatorCalls(t)
	syncsBefore := ctrl.metric(t, "aws_secret_controller_syncs_total", map[string]string{"result": controller.ResultUnchanged})
	window := steadyState(t)
	for end := time.Now().Add(window); time.Now().Before(end); time.Sleep(time.Second) {
		if got := ctrl.awsCalls(t) - metricsBefore; got != 0 {
			t.Fatalf("AWS calls in steady state = %d, want 0", got)
		}
	}
	if got := emulatorCalls(t) - emulatorBefore; got != 0 {
		t.Errorf("emulator saw %d calls in steady state, want 0", got)
	}
	if window >= 10*time.Second {
		if resyncs := ctrl.metric(t, "aws_secret_controller_syncs_total", map[string]string{"result": controller.ResultUnchanged}) - syncsBefore; resyncs < 4 {
			t.Errorf("only %v unchanged syncs in %s of 5s resyncs: the window proves little", resyncs, window)
		}
	}
	if after := snapshot(t, ns); after != before {
		t.Errorf("objects were written in steady state:\nbefore %s\nafter  %s", before, after)
	}

	// Restart: the new process re-checks every object and calls AWS zero times.
	if took := ctrl.stop(t); took > 5*time.Second {
		t.Errorf("SIGTERM to exit took %s, want under 5s", took)
	}
	restartCostsNothing(t, ns, 4)
}

// restartCostsNothing starts a new controller on a namespace whose AWSSecrets are synced, waits
// until it has re-checked n of them, and fails if it called AWS (by its metrics and by the
// emulator's log) or wrote any object. It returns the new controller.
func restartCostsNothing(t *testing.T, ns string, n int) *controllerProcess {
	t.Helper()
	before, emulatorBefore := snapshot(t, ns), emulatorCalls(t)
	restarted := startController(t, "restarted", env.Kubeconfig, nil, "--namespace", ns)
	eventually(t, 30*time.Second, fmt.Sprintf("the restarted controller re-checks %d AWSSecrets", n), func() (bool, string) {
		got := restarted.syncs(t, controller.ResultUnchanged)
		return got >= n, fmt.Sprintf("%d Unchanged syncs", got)
	})
	if got := restarted.awsCalls(t); got != 0 {
		t.Errorf("GetSecretValue calls after restart = %d, want 0", got)
	}
	if got := emulatorCalls(t) - emulatorBefore; got != 0 {
		t.Errorf("emulator saw %d GetSecretValue calls after restart, want 0", got)
	}
	if after := snapshot(t, ns); after != before {
		t.Errorf("objects were written after restart:\nbefore %s\nafter  %s", before, after)
	}
	return restarted
}

// TestAPIServerRefusesInvalidAWSSecrets sends objects the CRD schema must refuse.
func TestAPIServerRefusesInvalidAWSSecrets(t *testing.T) {
	ns := newNamespace(t, "validation")
	dyn := dynamic.NewForConfigOrDie(env.Config)
	gvr := v1alpha1.SchemeGroupVersion.WithResource("awssecrets")
	ref := func(secretID, versionID any) map[string]any {
		r := map[string]any{}
		if secretID != nil {
			r["secretId"] = secretID
		}
		if versionID != nil {
			r["versionId"] = versionID
		}
		return map[string]any{"secretsManagerSecretRef": r}
	}
	tests := map[string]struct {
		spec any
		// wantMessage is part of the API server's answer.
		wantMessage string
	}{
		"no versionId":       {spec: map[string]any{"stringDataFrom": ref("prod/mysecret", nil)}, wantMessage: "versionId: Required value"},
		"no secretId":        {spec: map[string]any{"stringDataFrom": ref(nil, seedVersionID)}, wantMessage: "secretId: Required value"},
		"empty secretId":     {spec: map[string]any{"stringDataFrom": ref("", seedVersionID)}, wantMessage: "secretId"},
		"a version stage":    {spec: map[string]any{"stringDataFrom": ref("prod/mysecret", "AWSCURRENT")}, wantMessage: "versionId"},
		"dataFrom, no id":    {spec: map[string]any{"dataFrom": ref("prod/mysecret", nil)}, wantMessage: "versionId: Required value"},
		"empty spec":         {spec: map[string]any{}, wantMessage: "at least one of stringDataFrom, dataFrom or data is required"},
		"no spec":            {spec: nil, wantMessage: "spec: Required value"},
		"only a type":        {spec: map[string]any{"type": "Opaque"}, wantMessage: "at least one of stringDataFrom, dataFrom or data is required"},
		"versionId too long": {spec: map[string]any{"stringDataFrom": ref("prod/mysecret", strings.Repeat("a", 65))}, wantMessage: "versionId"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			obj := &unstructured.Unstructured{Object: map[string]any{
				"apiVersion": v1alpha1.SchemeGroupVersion.String(),
				"kind":       "AWSSecret",
				"metadata":   map[string]any{"name": "invalid"},
			}}
			if tc.spec != nil {
				obj.Object["spec"] = tc.spec
			}
			_, err := dyn.Resource(gvr).Namespace(ns).Create(context.Background(), obj, metav1.CreateOptions{})
			if !apierrors.IsInvalid(err) {
				t.Fatalf("err = %v, want Invalid", err)
			}
			if !strings.Contains(err.Error(), tc.wantMessage) {
				t.Errorf("err = %q, want it to say %q", err, tc.wantMessage)
			}
		})
	}
}

// TestFailuresKeepTheSecret breaks a synced AWSSecret in each way AWS can, and checks that the
// reason is reported while the Secret stays exactly as it was.
func TestFailuresKeepTheSecret(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t, "failures")
	good := fmt.Sprintf(`{"password":%q}`, newValue("failures"))
	v1 := createSecret(t, "e2e/failures", good)
	doomedV1 := createSecret(t, "e2e/doomed", good)
	doomedV2 := putSecretValue(t, "e2e/doomed", fmt.Sprintf(`{"password":%q}`, newValue("doomed")))
	notJSON := putSecretValue(t, "e2e/failures", newValue("not-json"))
	startController(t, "controller", env.Kubeconfig, nil, "--namespace", ns)

	tests := map[string]struct {
		secretID, versionID string
		// breakIt changes the AWSSecret, or AWS, once the Secret is synced.
		breakIt    func(t *testing.T, a *v1alpha1.AWSSecret)
		wantReason string
	}{
		"non-JSON secret": {
			secretID: "e2e/failures", versionID: v1,
			breakIt:    func(t *testing.T, a *v1alpha1.AWSSecret) { setRef(t, a, "e2e/failures", notJSON) },
			wantReason: v1alpha1.ReasonInvalidSecretFormat,
		},
		"missing version": {
			secretID: "e2e/failures", versionID: v1,
			breakIt:    func(t *testing.T, a *v1alpha1.AWSSecret) { setRef(t, a, "e2e/failures", string(uuid.NewUUID())) },
			wantReason: v1alpha1.ReasonVersionNotFound,
		},
		"missing secret": {
			secretID: "e2e/failures", versionID: v1,
			breakIt:    func(t *testing.T, a *v1alpha1.AWSSecret) { setRef(t, a, "e2e/no-such-secret", v1) },
			wantReason: v1alpha1.ReasonSecretNotFound,
		},
		"secret scheduled for deletion": {
			secretID: "e2e/doomed", versionID: doomedV1,
			breakIt: func(t *testing.T, a *v1alpha1.AWSSecret) {
				if _, err := sm.DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{
					SecretId: aws.String("e2e/doomed"), RecoveryWindowInDays: aws.Int64(7),
				}); err != nil {
					t.Fatal(err)
				}
				setRef(t, a, "e2e/doomed", doomedV2)
			},
			wantReason: v1alpha1.ReasonSecretScheduledForDeletion,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			objName := strings.ReplaceAll(name, " ", "-")
			objName = strings.ToLower(strings.ReplaceAll(objName, "JSON", "json"))
			createAWSSecret(t, ns, objName, tc.secretID, tc.versionID)
			synced := waitSynced(t, ns, objName, tc.versionID)
			a, err := client.MumoshuV1alpha1().AWSSecrets(ns).Get(ctx, objName, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			tc.breakIt(t, a)
			waitReason(t, ns, objName, tc.wantReason)

			now, err := kube.CoreV1().Secrets(ns).Get(ctx, objName, metav1.GetOptions{})
			if err != nil {
				t.Fatalf("the Secret is gone: %v", err)
			}
			if now.ResourceVersion != synced.ResourceVersion || !bytes.Equal(mustJSON(t, now.Data), mustJSON(t, synced.Data)) {
				t.Errorf("the Secret changed after %s", name)
			}
			eventually(t, 10*time.Second, "a Warning event "+tc.wantReason, func() (bool, string) {
				return hasEvent(t, ns, objName, corev1.EventTypeWarning, tc.wantReason), "no event yet"
			})
		})
	}
}

// TestConflictingSecretIsUntouched creates an AWSSecret whose name a Secret already has.
func TestConflictingSecretIsUntouched(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t, "conflict")
	v1 := createSecret(t, "e2e/conflict", fmt.Sprintf(`{"k":%q}`, newValue("conflict")))
	theirs, err := kube.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "taken"},
		Data:       map[string][]byte{"mine": []byte("keep me")},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	startController(t, "controller", env.Kubeconfig, nil, "--namespace", ns)
	createAWSSecret(t, ns, "taken", "e2e/conflict", v1)
	waitReason(t, ns, "taken", v1alpha1.ReasonSecretConflict)
	now, err := kube.CoreV1().Secrets(ns).Get(ctx, "taken", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if now.ResourceVersion != theirs.ResourceVersion || string(now.Data["mine"]) != "keep me" || len(now.OwnerReferences) != 0 {
		t.Errorf("the conflicting Secret was changed: %v", now)
	}
}

// TestRBACClusterWide runs the controller as the ServiceAccount of `kubectl apply -k manifests/`,
// with the Deployment's own arguments.
func TestRBACClusterWide(t *testing.T) {
	dir := filepath.Join(repoRoot, "manifests")
	kubectl(t, "", "apply", "-k", dir)
	args := deploymentArgs(t, dir, "aws-secret-controller")
	kubeconfig := serviceAccountKubeconfig(t, "aws-secret-controller", "aws-secret-controller")

	ns := newNamespace(t, "rbac-cluster")
	// The shipped cluster-wide install runs --namespace-policy=allow-list.
	kubectl(t, "", "annotate", "namespace", ns, tenancy.AnnotationAllowedSecretIDs+"=e2e/rbac-cluster")
	v1 := createSecret(t, "e2e/rbac-cluster", fmt.Sprintf(`{"k":%q}`, newValue("rbac-cluster")))
	ctrl := startController(t, "controller", kubeconfig, []string{"POD_NAMESPACE=aws-secret-controller"}, args...)
	createAWSSecret(t, ns, "app", "e2e/rbac-cluster", v1)
	waitSynced(t, ns, "app", v1)
	assertNoForbidden(t, ctrl)
}

// TestRBACNamespaced installs the namespaced variant into one namespace and shows that the
// controller works there and can neither read nor write Secrets in another.
func TestRBACNamespaced(t *testing.T) {
	ctx := context.Background()
	const mine, other = "rbac-team-a", "rbac-team-b"
	// The variant runs in a namespace the user already has, moved there by an overlay.
	newNamespace(t, mine)
	overlay := namespacedOverlay(t, mine)
	kubectl(t, "", "apply", "-k", overlay)
	newNamespace(t, other)
	args := deploymentArgs(t, overlay, mine)
	kubeconfig := serviceAccountKubeconfig(t, mine, "aws-secret-controller")

	v1 := createSecret(t, "e2e/rbac-namespaced", fmt.Sprintf(`{"k":%q}`, newValue("rbac-ns")))
	ctrl := startController(t, "controller", kubeconfig, []string{"POD_NAMESPACE=" + mine}, args...)
	createAWSSecret(t, mine, "app", "e2e/rbac-namespaced", v1)
	waitSynced(t, mine, "app", v1)
	assertNoForbidden(t, ctrl)

	// The controller's identity is confined to its namespace.
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	sa := kubernetes.NewForConfigOrDie(cfg)
	if _, err := sa.CoreV1().Secrets(mine).List(ctx, metav1.ListOptions{}); err != nil {
		t.Errorf("listing Secrets in its own namespace: %v", err)
	}
	checks := map[string]error{}
	_, checks["list Secrets"] = sa.CoreV1().Secrets(other).List(ctx, metav1.ListOptions{})
	_, checks["get a Secret"] = sa.CoreV1().Secrets(other).Get(ctx, "any", metav1.GetOptions{})
	_, checks["create a Secret"] = sa.CoreV1().Secrets(other).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "x"}}, metav1.CreateOptions{})
	_, checks["list Secrets cluster-wide"] = sa.CoreV1().Secrets("").List(ctx, metav1.ListOptions{})
	_, checks["list AWSSecrets"] = versioned.NewForConfigOrDie(cfg).MumoshuV1alpha1().AWSSecrets(other).List(ctx, metav1.ListOptions{})
	for what, err := range checks {
		if !apierrors.IsForbidden(err) {
			t.Errorf("%s in %s: err = %v, want Forbidden", what, other, err)
		}
	}
}

// TestLeaderElection runs two replicas: only the leader syncs; when it stops, the other takes
// over and syncs.
func TestLeaderElection(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t, "leader-election")
	v1 := createSecret(t, "e2e/leader", fmt.Sprintf(`{"k":%q}`, newValue("leader")))
	args := []string{"--namespace", ns, "--leader-elect", "--leader-elect-namespace", ns, "--leader-elect-id", "e2e"}
	a := startController(t, "replica-a", env.Kubeconfig, nil, args...)
	b := startController(t, "replica-b", env.Kubeconfig, nil, args...)

	var leader, follower *controllerProcess
	eventually(t, 30*time.Second, "a leader", func() (bool, string) {
		switch {
		case strings.Contains(a.log(t), "Became leader"):
			leader, follower = a, b
		case strings.Contains(b.log(t), "Became leader"):
			leader, follower = b, a
		}
		return leader != nil, "no replica logged Became leader"
	})
	if status, body := httpGet("http://" + leader.HealthAddr + "/healthz"); status != 200 {
		t.Errorf("leader /healthz = %d %s", status, body)
	}
	createAWSSecret(t, ns, "first", "e2e/leader", v1)
	waitSynced(t, ns, "first", v1)
	if n := follower.metric(t, "aws_secret_controller_syncs_total", nil); n != 0 {
		t.Errorf("the follower synced %v times", n)
	}
	if strings.Contains(follower.log(t), "Became leader") {
		t.Errorf("both replicas became leader")
	}

	if took := leader.stop(t); took > 5*time.Second {
		t.Errorf("SIGTERM to exit took %s, want under 5s", took)
	}
	eventually(t, 30*time.Second, "the follower takes over", func() (bool, string) {
		return strings.Contains(follower.log(t), "Became leader"), "not yet"
	})
	lease, err := kube.CoordinationV1().Leases(ns).Get(ctx, "e2e", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if holder := aws.ToString(lease.Spec.HolderIdentity); !strings.Contains(follower.log(t), holder) {
		t.Errorf("Lease holder %q is not the follower", holder)
	}
	createAWSSecret(t, ns, "second", "e2e/leader", v1)
	waitSynced(t, ns, "second", v1)
}

// setRef points an AWSSecret at another version.
func setRef(t *testing.T, a *v1alpha1.AWSSecret, secretID, versionID string) {
	t.Helper()
	patch := fmt.Sprintf(`{"spec":{"stringDataFrom":{"secretsManagerSecretRef":{"secretId":%q,"versionId":%q}}}}`, secretID, versionID)
	if _, err := client.MumoshuV1alpha1().AWSSecrets(a.Namespace).Patch(context.Background(), a.Name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
}

// waitSynced waits until an AWSSecret is Ready with versionID and returns its Secret.
func waitSynced(t *testing.T, ns, name, versionID string) *corev1.Secret {
	t.Helper()
	var secret *corev1.Secret
	eventually(t, 30*time.Second, fmt.Sprintf("%s/%s synced to %s", ns, name, versionID), func() (bool, string) {
		a, err := client.MumoshuV1alpha1().AWSSecrets(ns).Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		cond := meta.FindStatusCondition(a.Status.Conditions, v1alpha1.ConditionReady)
		if cond == nil || cond.Status != metav1.ConditionTrue || a.Status.StringDataFrom == nil ||
			a.Status.StringDataFrom.VersionID != versionID || a.Status.ObservedGeneration != a.Generation {
			return false, fmt.Sprintf("status %+v", a.Status)
		}
		if secret, err = kube.CoreV1().Secrets(ns).Get(context.Background(), name, metav1.GetOptions{}); err != nil {
			return false, err.Error()
		}
		return secret.Annotations[controller.AnnotationStringDataVersionID] == versionID, fmt.Sprintf("annotations %v", secret.Annotations)
	})
	return secret
}

// waitReason waits until an AWSSecret is not Ready for reason.
func waitReason(t *testing.T, ns, name, reason string) {
	t.Helper()
	eventually(t, 30*time.Second, fmt.Sprintf("%s/%s Ready=False %s", ns, name, reason), func() (bool, string) {
		a, err := client.MumoshuV1alpha1().AWSSecrets(ns).Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		cond := meta.FindStatusCondition(a.Status.Conditions, v1alpha1.ConditionReady)
		if cond == nil {
			return false, "no Ready condition"
		}
		return cond.Status == metav1.ConditionFalse && cond.Reason == reason && a.Status.ObservedGeneration == a.Generation,
			fmt.Sprintf("%s %s: %s", cond.Status, cond.Reason, cond.Message)
	})
}

// snapshot names every AWSSecret and Secret of a namespace with its resourceVersion.
func snapshot(t *testing.T, ns string) string {
	t.Helper()
	ctx := context.Background()
	var b strings.Builder
	awsSecrets, err := client.MumoshuV1alpha1().AWSSecrets(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range awsSecrets.Items {
		fmt.Fprintf(&b, "awssecret/%s@%s ", a.Name, a.ResourceVersion)
	}
	secrets, err := kube.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range secrets.Items {
		fmt.Fprintf(&b, "secret/%s@%s ", s.Name, s.ResourceVersion)
	}
	return b.String()
}

func hasEvent(t *testing.T, ns, name, eventType, reason string) bool {
	t.Helper()
	events, err := kube.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range events.Items {
		if e.InvolvedObject.Name == name && e.InvolvedObject.Kind == "AWSSecret" && e.Type == eventType && e.Reason == reason {
			return true
		}
	}
	return false
}

// deploymentArgs renders a kustomization with kubectl and returns its Deployment's container
// arguments, with $(POD_NAMESPACE) expanded as the kubelet would.
func deploymentArgs(t *testing.T, dir, podNamespace string) []string {
	t.Helper()
	objs, err := testenv.DecodeManifests(strings.NewReader(kubectl(t, "", "kustomize", dir)))
	if err != nil {
		t.Fatal(err)
	}
	for _, obj := range objs {
		if obj.GetKind() != "Deployment" {
			continue
		}
		var d appsv1.Deployment
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(obj.Object, &d); err != nil {
			t.Fatal(err)
		}
		var args []string
		for _, a := range d.Spec.Template.Spec.Containers[0].Args {
			args = append(args, strings.ReplaceAll(a, "$(POD_NAMESPACE)", podNamespace))
		}
		return args
	}
	t.Fatalf("no Deployment in %s", dir)
	return nil
}

// serviceAccountKubeconfig writes a kubeconfig with a token of a ServiceAccount.
func serviceAccountKubeconfig(t *testing.T, ns, name string) string {
	t.Helper()
	tr, err := kube.CoreV1().ServiceAccounts(ns).CreateToken(context.Background(), name, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: aws.Int64(3600)},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("TokenRequest for %s/%s: %v", ns, name, err)
	}
	path := filepath.Join(t.TempDir(), "sa.kubeconfig")
	if err := env.WriteTokenKubeconfig(ns+"-"+name, tr.Status.Token, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// assertNoForbidden fails if the controller was refused anything.
func assertNoForbidden(t *testing.T, p *controllerProcess) {
	t.Helper()
	if log := p.log(t); strings.Contains(strings.ToLower(log), "forbidden") {
		t.Errorf("the controller was refused something:\n%s", grep(log, "orbidden"))
	}
}

func grep(s, substr string) string {
	var out []string
	for _, line := range strings.Split(s, "\n") {
		if strings.Contains(line, substr) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

func httpGet(url string) (int, string) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
