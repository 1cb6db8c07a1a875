package node

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/mumoshu/aws-secret-controller/pkg/tenancy"
	"github.com/mumoshu/aws-secret-controller/pkg/testenv"
	"github.com/mumoshu/aws-secret-controller/test/testutil"
)

// helm runs bin/helm against the stack.
func helm(t *testing.T, args ...string) string {
	t.Helper()
	out, err := testutil.Helm(t, env.BinDir, append(args, "--kubeconfig", env.Kubeconfig)...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestHelmInstall installs the chart with its defaults (two replicas, leader election, the
// allow-list policy, the CRD from crds/) on the node, before any other test has installed
// anything: only the image and the stack's addresses are set. The seed example syncs; `helm
// uninstall` removes the controller and leaves the CRD, the AWSSecret and its Secret. (This file
// sorts before node_test.go, so it runs before the kustomize install.)
func TestHelmInstall(t *testing.T) {
	ctx := context.Background()
	const release, ns, appNS = "aws-secret-controller", "helm", "helm-app"
	if _, err := kube.AppsV1().Deployments(controllerNamespace).Get(ctx, testenv.ControllerName, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("the kustomize install is already there (%v): this test must run first", err)
	}
	values := filepath.Join(t.TempDir(), "values.yaml")
	if err := env.WriteHelmValues(values, controllerImage); err != nil {
		t.Fatal(err)
	}
	chart := filepath.Join(repoRoot, "charts", "aws-secret-controller")
	helm(t, "install", release, chart, "--namespace", ns, "--create-namespace", "--values", values, "--wait", "--timeout", "3m")
	waitReady(t, ns, 2)

	// An application namespace that may read its own secrets, as the policy asks.
	if _, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name: appNS, Annotations: map[string]string{tenancy.AnnotationAllowedSecretIDs: "prod/helm-*"},
	}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	value := newValue("helm-seed")
	v := createSecret(t, "prod/helm-example", fmt.Sprintf(`{"foo":%q}`, value))
	example := strings.NewReplacer("c43e66cb-d0fe-44c5-9b7e-d450441a04be", v, "prod/mysecret", "prod/helm-example").
		Replace(readFile(t, filepath.Join(repoRoot, "manifests", "example", "awssecret.yaml")))
	kubectl(t, example, "apply", "-n", appNS, "-f", "-")
	waitSecret(t, appNS, "example", "foo", value)

	// helm upgrade with changed values rolls the Pods and keeps the rest: the same Lease, the
	// same AWSSecret and Secret, and no AWS call (the new leader reads the Secret it finds).
	upgradeKeepsEverything(t, release, ns, appNS, values, chart)
	waitSecret(t, appNS, "example", "foo", value)

	keepLogs(t, ns)
	helm(t, "uninstall", release, "--namespace", ns, "--wait", "--timeout", "2m")
	if _, err := kube.AppsV1().Deployments(ns).Get(ctx, testenv.ControllerName, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the controller's Deployment after helm uninstall: %v, want NotFound", err)
	}
	if _, err := kube.RbacV1().ClusterRoles().Get(ctx, testenv.ControllerName, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the ClusterRole after helm uninstall: %v, want NotFound", err)
	}
	kubectl(t, "", "get", "crd", "awssecrets.mumoshu.github.io")
	if _, err := client.MumoshuV1alpha1().AWSSecrets(appNS).Get(ctx, "example", metav1.GetOptions{}); err != nil {
		t.Errorf("the AWSSecret after helm uninstall: %v", err)
	}
	// The garbage collector runs (kube-controller-manager): a Secret still there is kept, not
	// merely not yet collected, since its owner, the AWSSecret, is still there.
	waitSecret(t, appNS, "example", "foo", value)
}

// upgradeKeepsEverything runs `helm upgrade` of release with changed values (fewer workers, more
// logging, a Pod annotation), waits until a Pod of the new template leads and has synced every
// AWSSecret of appNS, and checks that the Lease, the AWSSecrets and their Secrets are the same
// objects as before and that the upgrade cost no GetSecretValue call.
func upgradeKeepsEverything(t *testing.T, release, ns, appNS, values, chart string) {
	t.Helper()
	ctx := context.Background()
	uids := func() map[string]types.UID {
		out := map[string]types.UID{}
		if l, err := kube.CoordinationV1().Leases(ns).Get(ctx, testenv.ControllerName, metav1.GetOptions{}); err == nil {
			out["Lease/"+l.Name] = l.UID
		}
		as, _ := client.MumoshuV1alpha1().AWSSecrets(appNS).List(ctx, metav1.ListOptions{})
		for _, a := range as.Items {
			out["AWSSecret/"+a.Name] = a.UID
			if s, err := kube.CoreV1().Secrets(appNS).Get(ctx, a.Name, metav1.GetOptions{}); err == nil {
				out["Secret/"+s.Name] = s.UID
			}
		}
		return out
	}
	before := uids()
	calls, err := env.EmulatorRequests("GetSecretValue", "")
	if err != nil {
		t.Fatal(err)
	}
	oldPods := controllerPods(t, ns)
	synced := 0
	for k := range before {
		if strings.HasPrefix(k, "AWSSecret/") {
			synced++
		}
	}
	if synced == 0 || len(before) != 1+2*synced || len(oldPods) == 0 {
		t.Fatalf("before the upgrade: %v, Pods %v: want the Lease, and each AWSSecret with its Secret", before, oldPods)
	}

	helm(t, "upgrade", release, chart, "--namespace", ns, "--values", values,
		"--set", "workers=8", "--set", "logLevel=2", "--set", "podAnnotations.upgraded=yes", "--wait", "--timeout", "3m")
	waitReady(t, ns, 2)
	if l := newLeaderSynced(t, ns, oldPods, synced); l.Annotations["upgraded"] != "yes" {
		t.Errorf("the new leader %s lacks the upgraded values' annotation: %v", l.Name, l.Annotations)
	}
	if after := uids(); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("helm upgrade replaced objects:\nbefore %v\nafter  %v", before, after)
	}
	if n, err := env.EmulatorRequests("GetSecretValue", ""); err != nil || n != calls {
		t.Errorf("helm upgrade cost %d GetSecretValue calls (err %v), want 0", n-calls, err)
	}
}
