package e2e

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/mumoshu/aws-secret-controller/internal/capacity"
	"github.com/mumoshu/aws-secret-controller/pkg/apis/mumoshu/v1alpha1"
	"github.com/mumoshu/aws-secret-controller/pkg/testenv"
)

const (
	crdName = "awssecrets.mumoshu.github.io"
	// controllerNamespace is the namespace the cluster-wide variant (manifests/) owns.
	controllerNamespace = "aws-secret-controller"
	// controllerName names the ServiceAccount, Role, ClusterRole and bindings of the manifests.
	controllerName = "aws-secret-controller"
	// releaseImage is the repository the release workflow pushes to; the manifests pin a tag of it.
	releaseImage = "ghcr.io/mumoshu/aws-secret-controller"
	// metricsServiceName names the Service in front of the replicas' /metrics.
	metricsServiceName = "aws-secret-controller-metrics"
)

var crdResource = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// TestManifestsCRDInstalledSeparately shows that only manifests/crd holds the CRD, so that
// uninstalling either variant of the controller can never delete it (and with it every
// AWSSecret in the cluster).
func TestManifestsCRDInstalledSeparately(t *testing.T) {
	crd := render(t, filepath.Join(repoRoot, "manifests", "crd"))
	if len(crd) != 1 || crd[0].GetKind() != "CustomResourceDefinition" || crd[0].GetName() != crdName {
		t.Errorf("manifests/crd renders %s, want only CustomResourceDefinition/%s", describe(crd), crdName)
	}
	for _, dir := range []string{"manifests", filepath.Join("manifests", "namespaced")} {
		objs := render(t, filepath.Join(repoRoot, dir))
		if len(ofKind(objs, "Deployment")) != 1 {
			t.Errorf("%s renders %s, want the controller's Deployment", dir, describe(objs))
		}
		if crds := ofKind(objs, "CustomResourceDefinition"); len(crds) != 0 {
			t.Errorf("%s renders %s: uninstalling it would delete every AWSSecret", dir, describe(crds))
		}
	}
}

// TestManifestsDeploymentSafeguards checks what an operator expects of the shipped Deployment in
// both variants, as rendered and, for the namespaced variant applied into a namespace, as the API
// server stores it: a pinned release image, probes and a Service on the container's named ports
// (and on the ports the flags bind), replicas spread over nodes without ever staying Pending, a
// PodDisruptionBudget that covers exactly the Deployment's Pods, and memory as internal/capacity
// sizes it for capacity.DefaultObjects AWSSecrets.
func TestManifestsDeploymentSafeguards(t *testing.T) {
	ctx := context.Background()
	for name, dir := range map[string]string{
		"cluster-wide": filepath.Join(repoRoot, "manifests"),
		"namespaced":   filepath.Join(repoRoot, "manifests", "namespaced"),
	} {
		t.Run(name, func(t *testing.T) {
			checkWorkload(t, renderedWorkload(t, render(t, dir)))
		})
	}

	// The API server accepts the objects and keeps every field the checks read: a field it did
	// not know would be refused by kubectl's strict field validation or dropped here.
	ns := newNamespace(t, "manifests-safeguards")
	overlay := namespacedOverlay(t, ns)
	kubectl(t, "", "apply", "-k", overlay)
	t.Cleanup(func() { _, _ = env.Kubectl(ctx, "", "delete", "-k", overlay, "--wait=false", "--ignore-not-found") })
	var stored workload
	d, err := kube.AppsV1().Deployments(ns).Get(ctx, controllerName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	stored.deployment = *d
	pdbs, err := kube.PolicyV1().PodDisruptionBudgets(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	stored.pdbs = pdbs.Items
	services, err := kube.CoreV1().Services(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	stored.services = services.Items
	t.Run("namespaced-as-stored", func(t *testing.T) { checkWorkload(t, stored) })
}

// TestNamespacedUninstallKeepsUserNamespace follows docs/multi-tenancy.md for the namespaced variant in a
// namespace the user already has: the overlay renders no Namespace, and `kubectl delete -k` of
// it removes the controller but not the user's namespace.
func TestNamespacedUninstallKeepsUserNamespace(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t, "manifests-user-ns")
	overlay := namespacedOverlay(t, ns)

	objs := render(t, overlay)
	if namespaces := ofKind(objs, "Namespace"); len(namespaces) != 0 {
		t.Errorf("the namespaced variant renders %s: uninstalling it would delete the user's namespace", describe(namespaces))
	}
	for _, obj := range objs {
		if obj.GetNamespace() != "" && obj.GetNamespace() != ns {
			t.Errorf("%s/%s is in namespace %q, want the overlay's %q", obj.GetKind(), obj.GetName(), obj.GetNamespace(), ns)
		}
	}
	// The cluster-wide variant, by contrast, owns the namespace it made for itself.
	if namespaces := ofKind(render(t, filepath.Join(repoRoot, "manifests")), "Namespace"); len(namespaces) != 1 || namespaces[0].GetName() != controllerNamespace {
		t.Errorf("manifests/ renders %s, want Namespace/%s", describe(namespaces), controllerNamespace)
	}

	kubectl(t, "", "apply", "-k", overlay)
	if _, err := kube.CoreV1().ServiceAccounts(ns).Get(ctx, controllerName, metav1.GetOptions{}); err != nil {
		t.Fatalf("after apply -k: %v", err)
	}
	// Not waiting: a namespace, were it deleted, would stay Terminating here (no namespace
	// controller runs) and kubectl would wait for it; the API server shows what was deleted.
	kubectl(t, "", "delete", "-k", overlay, "--wait=false")
	eventually(t, 30*time.Second, "the overlay's ServiceAccount deleted", func() (bool, string) {
		_, err := kube.CoreV1().ServiceAccounts(ns).Get(ctx, controllerName, metav1.GetOptions{})
		return apierrors.IsNotFound(err), fmt.Sprint(err)
	})
	got, err := kube.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the user's namespace after delete -k: %v", err)
	}
	if got.DeletionTimestamp != nil || got.Status.Phase != corev1.NamespaceActive {
		t.Errorf("the user's namespace is being deleted: deletionTimestamp %v, phase %s", got.DeletionTimestamp, got.Status.Phase)
	}
}

// TestUninstallKeepsCRDAndData installs as docs/getting-started.md says (manifests/crd, then manifests/),
// uninstalls with `kubectl delete -k manifests/`, and finds the CRD, an AWSSecret and the
// Secret it owns untouched.
func TestUninstallKeepsCRDAndData(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(repoRoot, "manifests")
	// Every test shares the CRD: refuse to delete a kustomization that would remove it.
	if crds := ofKind(render(t, dir), "CustomResourceDefinition"); len(crds) != 0 {
		t.Fatalf("manifests/ renders %s: not uninstalling it on the shared stack", describe(crds))
	}
	crds := dynamic.NewForConfigOrDie(env.Config).Resource(crdResource)
	kubectl(t, "", "apply", "-k", filepath.Join(dir, "crd"))
	crdBefore, err := crds.Get(ctx, crdName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { purgeNamespace(t, controllerNamespace) })
	kubectl(t, "", "apply", "-k", dir)

	ns := newNamespace(t, "uninstall")
	owner, err := client.MumoshuV1alpha1().AWSSecrets(ns).Create(ctx, &v1alpha1.AWSSecret{
		ObjectMeta: metav1.ObjectMeta{Name: "app"},
		Spec: v1alpha1.AWSSecretSpec{StringDataFrom: &v1alpha1.DataSource{
			SecretsManagerSecretRef: v1alpha1.SecretsManagerSecretRef{SecretID: "e2e/uninstall", VersionID: seedVersionID},
		}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	secret, err := kube.CoreV1().Secrets(ns).Create(ctx, ownedSecret("app", owner, true), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}

	// Without a namespace controller the namespace stays Terminating, so kubectl must not wait
	// for it to go; the API server shows when the uninstall took effect.
	kubectl(t, "", "delete", "-k", dir, "--wait=false")
	eventually(t, 30*time.Second, "the controller uninstalled", func() (bool, string) {
		_, crErr := kube.RbacV1().ClusterRoles().Get(ctx, controllerName, metav1.GetOptions{})
		_, crbErr := kube.RbacV1().ClusterRoleBindings().Get(ctx, controllerName, metav1.GetOptions{})
		_, saErr := kube.CoreV1().ServiceAccounts(controllerNamespace).Get(ctx, controllerName, metav1.GetOptions{})
		n, nsErr := kube.CoreV1().Namespaces().Get(ctx, controllerNamespace, metav1.GetOptions{})
		nsGoing := apierrors.IsNotFound(nsErr) || (nsErr == nil && n.DeletionTimestamp != nil)
		return apierrors.IsNotFound(crErr) && apierrors.IsNotFound(crbErr) && apierrors.IsNotFound(saErr) && nsGoing,
			fmt.Sprintf("ClusterRole: %v, ClusterRoleBinding: %v, ServiceAccount: %v, namespace going: %v (%v)", crErr, crbErr, saErr, nsGoing, nsErr)
	})

	crdAfter, err := crds.Get(ctx, crdName, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the CRD after uninstall: %v", err)
	}
	if crdAfter.GetUID() != crdBefore.GetUID() || crdAfter.GetDeletionTimestamp() != nil {
		t.Errorf("the CRD was deleted or replaced: uid %s → %s, deletionTimestamp %v", crdBefore.GetUID(), crdAfter.GetUID(), crdAfter.GetDeletionTimestamp())
	}
	a, err := client.MumoshuV1alpha1().AWSSecrets(ns).Get(ctx, owner.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the AWSSecret after uninstall: %v", err)
	}
	if a.UID != owner.UID || a.DeletionTimestamp != nil {
		t.Errorf("the AWSSecret was deleted or replaced: uid %s → %s, deletionTimestamp %v", owner.UID, a.UID, a.DeletionTimestamp)
	}
	s, err := kube.CoreV1().Secrets(ns).Get(ctx, secret.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the Secret after uninstall: %v", err)
	}
	if s.UID != secret.UID || s.DeletionTimestamp != nil || !metav1.IsControlledBy(s, a) {
		t.Errorf("the Secret was deleted, replaced or orphaned: uid %s → %s, deletionTimestamp %v, owners %v", secret.UID, s.UID, s.DeletionTimestamp, s.OwnerReferences)
	}
}

// TestOwnerReferenceBlockingNeedsFinalizersRule is the negative control of the RBAC tests: with
// OwnerReferencesPermissionEnforcement on, the controller's identity may create a Secret whose
// controller ownerReference blocks the owner's deletion only because the shipped Role grants
// update on awssecrets/finalizers. A copy of the Role without that rule is refused.
func TestOwnerReferenceBlockingNeedsFinalizersRule(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t, "owner-references")
	overlay := namespacedOverlay(t, ns)
	kubectl(t, "", "apply", "-k", overlay)

	// The shipped Role, as rendered, less its finalizers rule, bound to a second ServiceAccount.
	var shipped rbacv1.Role
	roles := ofKind(render(t, overlay), "Role")
	i := slices.IndexFunc(roles, func(r *unstructured.Unstructured) bool { return r.GetName() == controllerName })
	if i < 0 {
		t.Fatalf("no Role/%s in the namespaced variant: %s", controllerName, describe(roles))
	}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(roles[i].Object, &shipped); err != nil {
		t.Fatal(err)
	}
	stripped := slices.DeleteFunc(slices.Clone(shipped.Rules), func(r rbacv1.PolicyRule) bool {
		return slices.Contains(r.Resources, "awssecrets/finalizers")
	})
	if len(stripped) != len(shipped.Rules)-1 {
		t.Fatalf("the shipped Role has %d rules on awssecrets/finalizers, want 1: %v", len(shipped.Rules)-len(stripped), shipped.Rules)
	}
	const noFinalizers = "no-finalizers"
	if _, err := kube.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: noFinalizers}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := kube.RbacV1().Roles(ns).Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: noFinalizers}, Rules: stripped}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := kube.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: noFinalizers},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: noFinalizers},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: noFinalizers, Namespace: ns}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	owner, err := client.MumoshuV1alpha1().AWSSecrets(ns).Create(ctx, &v1alpha1.AWSSecret{
		ObjectMeta: metav1.ObjectMeta{Name: "owner"},
		Spec: v1alpha1.AWSSecretSpec{StringDataFrom: &v1alpha1.DataSource{
			SecretsManagerSecretRef: v1alpha1.SecretsManagerSecretRef{SecretID: "e2e/owner", VersionID: seedVersionID},
		}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	withRole := serviceAccountClient(t, ns, controllerName)
	withoutRule := serviceAccountClient(t, ns, noFinalizers)

	// RBAC reaches the authorizer through an informer: once the stripped identity may create a
	// Secret (an ownerReference that does not block), its Role is in effect.
	eventually(t, 15*time.Second, "the stripped Role allows creating a Secret", func() (bool, string) {
		_, err := withoutRule.CoreV1().Secrets(ns).Create(ctx, ownedSecret("not-blocking", owner, false), metav1.CreateOptions{})
		return err == nil, fmt.Sprint(err)
	})
	_, err = withoutRule.CoreV1().Secrets(ns).Create(ctx, ownedSecret("blocking-without-rule", owner, true), metav1.CreateOptions{})
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "blockOwnerDeletion") {
		t.Errorf("blockOwnerDeletion without update on awssecrets/finalizers: err = %v, want Forbidden by OwnerReferencesPermissionEnforcement", err)
	}
	eventually(t, 15*time.Second, "the shipped Role allows blockOwnerDeletion", func() (bool, string) {
		_, err := withRole.CoreV1().Secrets(ns).Create(ctx, ownedSecret("blocking", owner, true), metav1.CreateOptions{})
		return err == nil, fmt.Sprint(err)
	})
}

// namespacedOverlay writes an overlay that moves manifests/namespaced into ns, as docs/multi-tenancy.md
// tells a user to, and returns its folder.
func namespacedOverlay(t *testing.T, ns string) string {
	t.Helper()
	overlay := t.TempDir()
	base, err := filepath.Rel(overlay, filepath.Join(repoRoot, "manifests", "namespaced"))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(overlay, "kustomization.yaml"), fmt.Sprintf("namespace: %s\nresources:\n- %s\n", ns, base))
	return overlay
}

// render returns the objects `kubectl kustomize dir` prints.
func render(t *testing.T, dir string) []*unstructured.Unstructured {
	t.Helper()
	objs, err := testenv.DecodeManifests(strings.NewReader(kubectl(t, "", "kustomize", dir)))
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

func ofKind(objs []*unstructured.Unstructured, kind string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, obj := range objs {
		if obj.GetKind() == kind {
			out = append(out, obj)
		}
	}
	return out
}

func describe(objs []*unstructured.Unstructured) string {
	var names []string
	for _, obj := range objs {
		names = append(names, obj.GetKind()+"/"+obj.GetName())
	}
	return fmt.Sprintf("%v", names)
}

// workload is the controller's Deployment and the objects that serve it.
type workload struct {
	deployment appsv1.Deployment
	pdbs       []policyv1.PodDisruptionBudget
	services   []corev1.Service
}

// renderedWorkload picks the workload out of rendered manifests.
func renderedWorkload(t *testing.T, objs []*unstructured.Unstructured) workload {
	t.Helper()
	var w workload
	deployments := ofKind(objs, "Deployment")
	if len(deployments) != 1 {
		t.Fatalf("rendered %s, want one Deployment", describe(objs))
	}
	fromUnstructured(t, deployments[0], &w.deployment)
	for _, obj := range ofKind(objs, "PodDisruptionBudget") {
		var pdb policyv1.PodDisruptionBudget
		fromUnstructured(t, obj, &pdb)
		w.pdbs = append(w.pdbs, pdb)
	}
	for _, obj := range ofKind(objs, "Service") {
		var svc corev1.Service
		fromUnstructured(t, obj, &svc)
		w.services = append(w.services, svc)
	}
	return w
}

func fromUnstructured(t *testing.T, obj *unstructured.Unstructured, into any) {
	t.Helper()
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(obj.Object, into); err != nil {
		t.Fatalf("%s/%s: %v", obj.GetKind(), obj.GetName(), err)
	}
}

// releaseTag is what the release workflow tags an image with (it runs on tags v*).
var releaseTag = regexp.MustCompile(`^v[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$`)

// checkWorkload holds w to what the manifests promise.
func checkWorkload(t *testing.T, w workload) {
	t.Helper()
	d := w.deployment
	pods := labels.Set(d.Spec.Template.Labels)
	i := slices.IndexFunc(d.Spec.Template.Spec.Containers, func(c corev1.Container) bool { return c.Name == "controller" })
	if i < 0 {
		t.Fatalf("Deployment/%s has no container named controller", d.Name)
	}
	c := d.Spec.Template.Spec.Containers[i]

	// The image: a pinned release (tag or digest), never a moving tag, never pulled on every start.
	ref, digest, hasDigest := strings.Cut(c.Image, "@")
	repo, tag, hasTag := strings.Cut(ref, ":")
	switch {
	case repo != releaseImage:
		t.Errorf("image %q, want %s:<release tag>", c.Image, releaseImage)
	case !hasTag && !hasDigest:
		t.Errorf("image %q has neither tag nor digest: that is :latest", c.Image)
	case hasTag && !releaseTag.MatchString(tag):
		t.Errorf("image %q: tag %q is not a release tag (v<major>.<minor>.<patch>)", c.Image, tag)
	case hasDigest && !strings.HasPrefix(digest, "sha256:"):
		t.Errorf("image %q: digest %q is not sha256", c.Image, digest)
	}
	if c.ImagePullPolicy != corev1.PullIfNotPresent {
		t.Errorf("imagePullPolicy %q, want %q", c.ImagePullPolicy, corev1.PullIfNotPresent)
	}

	// Named ports, on the ports the flags bind, and probes and the metrics Service that use the names.
	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	for name, flag := range map[string]string{"metrics": "--metrics-bind-address", "health": "--health-probe-bind-address"} {
		port, ok := ports[name]
		if !ok {
			t.Errorf("no container port named %s: %v", name, c.Ports)
			continue
		}
		if bound := flagPort(t, c.Args, flag); bound != port {
			t.Errorf("%s binds port %d, the container port named %s is %d", flag, bound, name, port)
		}
	}
	for what, p := range map[string]struct {
		probe *corev1.Probe
		path  string
	}{"livenessProbe": {c.LivenessProbe, "/healthz"}, "readinessProbe": {c.ReadinessProbe, "/readyz"}} {
		switch {
		case p.probe == nil || p.probe.HTTPGet == nil:
			t.Errorf("%s is not an HTTP GET: %+v", what, p.probe)
		case p.probe.HTTPGet.Path != p.path:
			t.Errorf("%s path %q, want %q", what, p.probe.HTTPGet.Path, p.path)
		case p.probe.HTTPGet.Port.Type != intstr.String || p.probe.HTTPGet.Port.StrVal != "health":
			t.Errorf("%s port %s, want the named port health", what, p.probe.HTTPGet.Port.String())
		}
	}
	j := slices.IndexFunc(w.services, func(s corev1.Service) bool { return s.Name == metricsServiceName })
	if j < 0 {
		t.Errorf("no Service/%s", metricsServiceName)
	} else {
		svc := w.services[j]
		if len(svc.Spec.Selector) == 0 || !labels.SelectorFromSet(svc.Spec.Selector).Matches(pods) || svc.Namespace != d.Namespace {
			t.Errorf("Service/%s in %q selects %v, want the Deployment's Pods %v in %q", svc.Name, svc.Namespace, svc.Spec.Selector, pods, d.Namespace)
		}
		k := slices.IndexFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == "metrics" })
		if k < 0 || svc.Spec.Ports[k].TargetPort != intstr.FromString("metrics") {
			t.Errorf("Service/%s ports %+v, want one named metrics with targetPort metrics", svc.Name, svc.Spec.Ports)
		}
	}

	// Spread over nodes, but never at the price of a Pending replica (a one-node cluster).
	spread := d.Spec.Template.Spec.TopologySpreadConstraints
	if !slices.ContainsFunc(spread, func(c corev1.TopologySpreadConstraint) bool {
		return c.TopologyKey == corev1.LabelHostname && c.MaxSkew == 1
	}) {
		t.Errorf("no topology spread over %s with maxSkew 1: %+v", corev1.LabelHostname, spread)
	}
	for _, c := range spread {
		if c.WhenUnsatisfiable != corev1.ScheduleAnyway {
			t.Errorf("topology spread over %s is %s: a replica would stay Pending where it cannot spread", c.TopologyKey, c.WhenUnsatisfiable)
		}
		if sel, err := metav1.LabelSelectorAsSelector(c.LabelSelector); err != nil || sel.Empty() || !sel.Matches(pods) {
			t.Errorf("topology spread over %s counts %v (%v), want the Deployment's Pods %v", c.TopologyKey, c.LabelSelector, err, pods)
		}
	}

	// One PodDisruptionBudget for exactly the Deployment's Pods: an empty or wider selector would
	// count (and block evictions of) other Pods of the namespace.
	if len(w.pdbs) != 1 {
		t.Errorf("%d PodDisruptionBudgets, want 1", len(w.pdbs))
	} else {
		pdb := w.pdbs[0]
		if pdb.Spec.MaxUnavailable == nil || *pdb.Spec.MaxUnavailable != intstr.FromInt32(1) || pdb.Spec.MinAvailable != nil {
			t.Errorf("PodDisruptionBudget/%s maxUnavailable %v, minAvailable %v, want maxUnavailable 1 only", pdb.Name, pdb.Spec.MaxUnavailable, pdb.Spec.MinAvailable)
		}
		if sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector); err != nil || sel.Empty() || !sel.Matches(pods) ||
			!equality.Semantic.DeepEqual(pdb.Spec.Selector, d.Spec.Selector) || pdb.Namespace != d.Namespace {
			t.Errorf("PodDisruptionBudget/%s in %q selects %v (%v), want the Deployment's selector %v in %q", pdb.Name, pdb.Namespace, pdb.Spec.Selector, err, d.Spec.Selector, d.Namespace)
		}
		if p := pdb.Spec.UnhealthyPodEvictionPolicy; p == nil || *p != policyv1.AlwaysAllow {
			t.Errorf("PodDisruptionBudget/%s unhealthyPodEvictionPolicy %v, want AlwaysAllow (a crash-looping replica must not block a drain)", pdb.Name, p)
		}
	}

	// Resources: requests within limits, and memory as internal/capacity sizes it for
	// capacity.DefaultObjects AWSSecrets (its test holds the formula to every benchmark run).
	for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory, corev1.ResourceEphemeralStorage} {
		req, hasReq := c.Resources.Requests[r]
		limit, hasLimit := c.Resources.Limits[r]
		if !hasReq || (r != corev1.ResourceCPU && !hasLimit) {
			t.Errorf("%s: requests %v, limits %v: want both", r, c.Resources.Requests, c.Resources.Limits)
		} else if hasLimit && req.Cmp(limit) > 0 {
			t.Errorf("%s: request %s above limit %s", r, req.String(), limit.String())
		}
	}
	want := capacity.For(capacity.DefaultObjects)
	if got := c.Resources.Requests.Memory().Value(); got != want.RequestMiB<<20 {
		t.Errorf("requests.memory %s, want %dMi (internal/capacity for %d AWSSecrets)", c.Resources.Requests.Memory(), want.RequestMiB, capacity.DefaultObjects)
	}
	if got := c.Resources.Limits.Memory().Value(); got != want.LimitMiB<<20 {
		t.Errorf("limits.memory %s, want %dMi (internal/capacity for %d AWSSecrets)", c.Resources.Limits.Memory(), want.LimitMiB, capacity.DefaultObjects)
	}
	k := slices.IndexFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == "GOMEMLIMIT" })
	if k < 0 {
		t.Errorf("no GOMEMLIMIT in %v", c.Env)
		return
	}
	memLimit, err := parseGoMemLimit(c.Env[k].Value)
	if err != nil {
		t.Errorf("GOMEMLIMIT %q: %v", c.Env[k].Value, err)
		return
	}
	if memLimit != want.GoMemLimitMiB<<20 {
		t.Errorf("GOMEMLIMIT %s, want %dMiB (internal/capacity for %d AWSSecrets)", c.Env[k].Value, want.GoMemLimitMiB, capacity.DefaultObjects)
	}
}

func mib(q resource.Quantity) string { return fmt.Sprintf("%.1f MiB", float64(q.Value())/(1<<20)) }

// flagPort is the port of a --flag=host:port argument.
func flagPort(t *testing.T, args []string, flag string) int32 {
	t.Helper()
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, flag+"="); ok {
			_, port, err := net.SplitHostPort(v)
			if err != nil {
				t.Fatalf("%s: %v", a, err)
			}
			n, err := strconv.ParseInt(port, 10, 32)
			if err != nil {
				t.Fatalf("%s: %v", a, err)
			}
			return int32(n)
		}
	}
	t.Fatalf("no %s= in %v", flag, args)
	return 0
}

// parseGoMemLimit reads GOMEMLIMIT as the Go runtime does: a byte count with an optional unit
// B, KiB, MiB, GiB or TiB.
func parseGoMemLimit(s string) (int64, error) {
	for _, u := range []struct {
		suffix string
		shift  uint
	}{{"TiB", 40}, {"GiB", 30}, {"MiB", 20}, {"KiB", 10}, {"B", 0}} {
		if n, ok := strings.CutSuffix(s, u.suffix); ok {
			v, err := strconv.ParseUint(n, 10, int(63-u.shift))
			return int64(v) << u.shift, err
		}
	}
	v, err := strconv.ParseUint(s, 10, 63)
	return int64(v), err
}

// ownedSecret is a Secret whose controller is the AWSSecret, as the controller writes it.
func ownedSecret(name string, owner *v1alpha1.AWSSecret, blockOwnerDeletion bool) *corev1.Secret {
	return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{
		Name: name,
		OwnerReferences: []metav1.OwnerReference{{
			APIVersion:         v1alpha1.SchemeGroupVersion.String(),
			Kind:               "AWSSecret",
			Name:               owner.Name,
			UID:                owner.UID,
			Controller:         ptrTo(true),
			BlockOwnerDeletion: ptrTo(blockOwnerDeletion),
		}},
	}}
}

func ptrTo[T any](v T) *T { return &v }

// serviceAccountClient is a client that acts as a ServiceAccount, with a token from the
// TokenRequest API.
func serviceAccountClient(t *testing.T, ns, name string) kubernetes.Interface {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", serviceAccountKubeconfig(t, ns, name))
	if err != nil {
		t.Fatal(err)
	}
	return kubernetes.NewForConfigOrDie(cfg)
}

// purgeNamespace does, for a namespace being deleted, what kube-controller-manager's namespace
// controller would (none runs on this stack): it deletes what is left in it, removes the
// kubernetes finalizer and deletes it for good, so that a later `kubectl apply -k manifests/`
// can create it afresh. It does nothing to a namespace that is not being deleted.
func purgeNamespace(t *testing.T, name string) {
	t.Helper()
	ctx := context.Background()
	ns, err := kube.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return
	}
	if err != nil {
		t.Errorf("purging namespace %s: %v", name, err)
		return
	}
	if ns.DeletionTimestamp == nil {
		// The test failed before its uninstall: uninstall now.
		if _, err := env.Kubectl(ctx, "", "delete", "-k", filepath.Join(repoRoot, "manifests"), "--wait=false", "--ignore-not-found"); err != nil {
			t.Errorf("purging namespace %s: %v", name, err)
			return
		}
	}
	resources, err := kube.Discovery().ServerPreferredNamespacedResources()
	if err != nil {
		t.Errorf("purging namespace %s: %v", name, err)
		return
	}
	dyn := dynamic.NewForConfigOrDie(env.Config)
	for _, list := range resources {
		gv, err := schema.ParseGroupVersion(list.GroupVersion)
		if err != nil {
			t.Errorf("purging namespace %s: %v", name, err)
			continue
		}
		for _, r := range list.APIResources {
			if strings.Contains(r.Name, "/") || !slices.Contains(r.Verbs, "deletecollection") {
				continue
			}
			if err := dyn.Resource(gv.WithResource(r.Name)).Namespace(name).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{}); err != nil {
				t.Errorf("purging %s in namespace %s: %v", r.Name, name, err)
			}
		}
	}
	if ns, err = kube.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{}); err == nil {
		ns.Spec.Finalizers = nil
		_, err = kube.CoreV1().Namespaces().Finalize(ctx, ns, metav1.UpdateOptions{})
	}
	if err == nil {
		err = kube.CoreV1().Namespaces().Delete(ctx, name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: ptrTo(ns.UID)}})
	}
	if err != nil && !apierrors.IsNotFound(err) {
		t.Errorf("purging namespace %s: %v", name, err)
		return
	}
	eventually(t, 30*time.Second, "namespace "+name+" gone", func() (bool, string) {
		_, err := kube.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
		return apierrors.IsNotFound(err), fmt.Sprint(err)
	})
}
