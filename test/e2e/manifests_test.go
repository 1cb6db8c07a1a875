package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/mumoshu/aws-secret-controller/pkg/apis/mumoshu/v1alpha1"
	"github.com/mumoshu/aws-secret-controller/pkg/testenv"
)

const (
	crdName = "awssecrets.mumoshu.github.io"
	// controllerNamespace is the namespace the cluster-wide variant (manifests/) owns.
	controllerNamespace = "aws-secret-controller"
	// controllerName names the ServiceAccount, Role, ClusterRole and bindings of the manifests.
	controllerName = "aws-secret-controller"
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

// TestNamespacedUninstallKeepsUserNamespace follows the README for the namespaced variant in a
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

// TestUninstallKeepsCRDAndData installs as the README says (manifests/crd, then manifests/),
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

// namespacedOverlay writes an overlay that moves manifests/namespaced into ns, as the README
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
