//go:build linux

package node

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/mumoshu/aws-secret-controller/pkg/tenancy"
	"github.com/mumoshu/aws-secret-controller/pkg/testenv"
	"github.com/mumoshu/aws-secret-controller/test/testutil"
)

const (
	// controllerNamespace is the cluster-wide install's (manifests/).
	controllerNamespace = "aws-secret-controller"
	controllerName      = testenv.ControllerName
	selector            = testenv.ControllerSelector
)

var (
	installOnce sync.Once
	installErr  string
)

// overlay writes the overlay over a shipped variant (a folder of manifests/) that the stack
// needs, with the local build of the image, and returns its folder.
func overlay(t *testing.T, variant, namespace string) string {
	t.Helper()
	dir := t.TempDir()
	if err := env.WriteInstallOverlay(dir, filepath.Join(repoRoot, variant), namespace, controllerImage); err != nil {
		t.Fatal(err)
	}
	return dir
}

// gettingStartedOverlay installs the cluster-wide variant the way docs/getting-started.md tells
// users to before the first release: the image from `make image` (the suite imports it into the
// node's containerd, as `ctr images import` does), and the overlay the page shows, with its tag
// set to the image's and its path to this repository's manifests/. Over it goes only what this
// stack needs (the emulator's endpoint, the API server's address), not the image.
func gettingStartedOverlay(t *testing.T) string {
	t.Helper()
	const head, path, docTag = "# my-overlay/kustomization.yaml\n", "../aws-secret-controller/manifests", "newTag: v0.0.0-local"
	blocks, _, err := testutil.ParseMarkdown(filepath.Join(repoRoot, "docs", "getting-started.md"))
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(blocks, func(b testutil.CodeBlock) bool { return b.Lang == "yaml" && strings.HasPrefix(b.Text, head) })
	if i < 0 {
		t.Fatalf("docs/getting-started.md has no yaml block starting %q", head)
	}
	documented := blocks[i].Text
	if !strings.Contains(documented, path) || !strings.Contains(documented, docTag) {
		t.Fatalf("the documented overlay no longer holds %q and %q, which this test replaces:\n%s", path, docTag, documented)
	}
	name, tag, ok := strings.Cut(controllerImage, ":")
	if !ok || name != testenv.ShippedImage {
		t.Fatalf("the image archive names %q, want %s:<tag> (make image's default IMAGE)", controllerImage, testenv.ShippedImage)
	}
	dir := t.TempDir()
	mine, stack := filepath.Join(dir, "my-overlay"), filepath.Join(dir, "stack")
	for _, d := range []string{mine, stack} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	manifests, err := filepath.Rel(mine, filepath.Join(repoRoot, "manifests"))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(mine, "kustomization.yaml"),
		strings.NewReplacer(path, manifests, docTag, "newTag: "+strconv.Quote(tag)).Replace(documented))
	if err := env.WriteInstallOverlay(stack, mine, "", ""); err != nil {
		t.Fatal(err)
	}
	return stack
}

// installed installs the CRD and the cluster-wide variant once, as getting started says, and waits
// for both replicas to be Ready.
func installed(t *testing.T) {
	t.Helper()
	installOnce.Do(func() {
		ok := t.Run("install", func(t *testing.T) {
			kubectl(t, "", "apply", "--server-side", "-k", filepath.Join(repoRoot, "manifests", "crd"))
			kubectl(t, "", "wait", "--for=condition=Established", "crd/awssecrets.mumoshu.github.io")
			// The shipped install runs --namespace-policy=allow-list.
			kubectl(t, "", "annotate", "--overwrite", "namespace", "default", tenancy.AnnotationAllowedSecretIDs+"=prod/*")
			kubectl(t, "", "apply", "-k", gettingStartedOverlay(t))
			waitReady(t, controllerNamespace, 2)
		})
		if !ok {
			installErr = "the install failed (see the install subtest)"
		}
	})
	if installErr != "" {
		t.Fatal(installErr)
	}
}

// waitReady waits until the controller's Deployment in ns has exactly n Pods, all of the current
// template and Ready, one of them holding the Lease (with n > 0), and returns the leader.
func waitReady(t *testing.T, ns string, n int32) string {
	t.Helper()
	leader, err := testenv.WaitControllerReady(context.Background(), kube, ns, n, 3*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return leader
}

// leader returns the name of the Pod holding the Lease in ns ("" if none).
func leader(ns string) string { return testenv.ControllerLeader(context.Background(), kube, ns) }

// syncedAWSSecret stores {key: value} as a new secret secretID in the emulator, creates an
// AWSSecret ns/name pinning that version, waits for its Secret, and returns the version id.
func syncedAWSSecret(t *testing.T, ns, name, secretID, key, value string) string {
	t.Helper()
	version := createSecret(t, secretID, fmt.Sprintf(`{%q:%q}`, key, value))
	awsSecret(t, ns, name, secretID, version)
	waitSecret(t, ns, name, key, value)
	return version
}

// bump points an AWSSecret at another version, as a commit that bumps versionId would.
func bump(t *testing.T, ns, name, versionID string) {
	t.Helper()
	patch := fmt.Sprintf(`{"spec":{"stringDataFrom":{"secretsManagerSecretRef":{"versionId":%q}}}}`, versionID)
	if _, err := client.MumoshuV1alpha1().AWSSecrets(ns).Patch(context.Background(), name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
}

// waitSecret waits until the Secret ns/name holds value under key. Failures name digests only.
func waitSecret(t *testing.T, ns, name, key, value string) {
	t.Helper()
	eventually(t, 2*time.Minute, fmt.Sprintf("Secret %s/%s holding %s=<%s>", ns, name, key, digest(value)), func() (bool, string) {
		s, err := kube.CoreV1().Secrets(ns).Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		return string(s.Data[key]) == value, fmt.Sprintf("%s=<%s>", key, digest(string(s.Data[key])))
	})
}

// digest is testapp's name for a value: what its log shows instead of the value.
func digest(v string) string {
	sum := sha256.Sum256([]byte(v))
	return hex.EncodeToString(sum[:8])
}

// TestInstall: the shipped manifests run as two Pods from the image; both pass their probes, one
// holds the Lease, and the leader syncs the seed example.
func TestInstall(t *testing.T) {
	installed(t)
	pods, err := kube.CoreV1().Pods(controllerNamespace).List(context.Background(), metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, pod := range pods.Items {
		names = append(names, pod.Name)
		if got := pod.Spec.Containers[0].Image; got != controllerImage {
			t.Errorf("Pod %s runs %s, want the local build %s", pod.Name, got, controllerImage)
		}
		if pod.Spec.NodeName != testenv.NodeName {
			t.Errorf("Pod %s on node %q, want %s", pod.Name, pod.Spec.NodeName, testenv.NodeName)
		}
	}
	if l := leader(controllerNamespace); !slices.Contains(names, l) {
		t.Errorf("Lease held by %q, want one of the Pods %v", l, names)
	}

	// The seed example, verbatim but for the versionId, which the emulator chooses.
	value := newValue("seed")
	v1 := createSecret(t, "prod/mysecret", fmt.Sprintf(`{"foo":%q}`, value))
	example := strings.ReplaceAll(readFile(t, filepath.Join(repoRoot, "manifests", "example", "awssecret.yaml")), "c43e66cb-d0fe-44c5-9b7e-d450441a04be", v1)
	kubectl(t, example, "apply", "-n", "default", "-f", "-")
	waitSecret(t, "default", "example", "foo", value)
}

// TestApplicationPods: a Pod that mounts the Secret as a volume sees a bumped version in place,
// after the kubelet's next sync of the Pod.
func TestApplicationPods(t *testing.T) {
	installed(t)
	ctx := context.Background()
	a, b := newValue("app-a"), newValue("app-b")
	syncedAWSSecret(t, "default", "app", "prod/app", "password", a)

	volumeApp := corev1.Container{Name: "app", Image: appImage, ImagePullPolicy: corev1.PullNever,
		Env:             []corev1.EnvVar{{Name: "FILE", Value: "/secret/password"}},
		VolumeMounts:    []corev1.VolumeMount{{Name: "secret", MountPath: "/secret", ReadOnly: true}},
		SecurityContext: &corev1.SecurityContext{AllowPrivilegeEscalation: ptr.To(false), ReadOnlyRootFilesystem: ptr.To(true)}}
	if _, err := kube.CoreV1().Pods("default").Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "volume-reader"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{volumeApp}, Volumes: []corev1.Volume{{
			Name: "secret", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "app"}},
		}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitLog(t, "volume-reader", "file="+digest(a))

	vb := putSecretValue(t, "prod/app", fmt.Sprintf(`{"password":%q}`, b))
	bump(t, "default", "app", vb)
	waitSecret(t, "default", "app", "password", b)
	waitLog(t, "volume-reader", "file="+digest(b))
}

// TestRolloutRecipe: the GitOps flow of manifests/example/rollout with update-aws-secret-ids. A
// new AWSCURRENT is bumped into the manifests by the tool and applied; the recipe's Deployment,
// which reads the Secret as an environment variable, rolls to a Pod that has the new value, never
// one started with the old (its Secret's name carries the version, so the kubelet waits for the
// controller to write it). The previous AWSSecret and Secret stay for the previous Pods.
func TestRolloutRecipe(t *testing.T) {
	installed(t)
	ctx := context.Background()
	const secretID = "prod/rollout"
	a, b := newValue("rollout-a"), newValue("rollout-b")
	va := createSecret(t, secretID, fmt.Sprintf(`{"password":%q}`, a))

	// The application's manifests as a team keeps them in Git, with the test app as the image.
	dir := t.TempDir()
	testutil.CopyDir(t, filepath.Join(repoRoot, "manifests", "example", "rollout"), filepath.Join(dir, "rollout"), "prod/app", secretID)
	overlay := filepath.Join(dir, "overlay")
	name, tag, _ := strings.Cut(appImage, ":")
	testutil.CopyDir(t, filepath.Join(repoRoot, "test", "node", "testdata", "rollout-overlay"), overlay,
		"APP_IMAGE_NAME", name, "APP_IMAGE_TAG", tag)
	// A bot's commit: --check says the manifests are behind, the tool bumps them, they are applied.
	commit := func(want string) {
		t.Helper()
		if code, stdout, stderr := testutil.UpdateAWSSecretIDs(t, env.BinDir, env.AWSEnv(), "--check", dir); code != 1 {
			t.Fatalf("--check: exit %d, want 1 (stdout %q, stderr %q)", code, stdout, stderr)
		}
		code, stdout, stderr := testutil.UpdateAWSSecretIDs(t, env.BinDir, env.AWSEnv(), dir)
		if code != 0 || !strings.HasSuffix(stdout, " -> "+want+"\n") {
			t.Fatalf("update-aws-secret-ids: exit %d, stdout %q, want a bump to %s (stderr %q)", code, stdout, want, stderr)
		}
		kubectl(t, "", "apply", "-k", overlay)
	}
	// The recipe pins an example version: the first commit pins the current one.
	commit(va)
	waitSecret(t, "default", "app."+va, "password", a)
	podA := waitEnvReader(t, "", "env="+digest(a))

	vb := putSecretValue(t, secretID, fmt.Sprintf(`{"password":%q}`, b))
	commit(vb)
	waitSecret(t, "default", "app."+vb, "password", b)
	podB := waitEnvReader(t, podA, "env="+digest(b))
	// No Pod of the Deployment ever reported another value.
	pods, err := kube.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=app"})
	if err != nil {
		t.Fatal(err)
	}
	for _, pod := range pods.Items {
		if pod.Name == podA || pod.Name == podB {
			continue
		}
		if log, err := kube.CoreV1().Pods("default").GetLogs(pod.Name, &corev1.PodLogOptions{}).DoRaw(ctx); err == nil && len(log) > 0 {
			t.Errorf("Pod %s of the rollout logged %q", pod.Name, log)
		}
	}
	// kubectl apply without --prune leaves the previous version for the previous ReplicaSet.
	if _, err := kube.CoreV1().Secrets("default").Get(ctx, "app."+va, metav1.GetOptions{}); err != nil {
		t.Errorf("the previous version's Secret: %v", err)
	}
}

// waitLog waits until a Pod in default has logged a line containing want.
func waitLog(t *testing.T, pod, want string) {
	t.Helper()
	eventually(t, 2*time.Minute, fmt.Sprintf("Pod %s logging %q", pod, want), func() (bool, string) {
		log, err := kube.CoreV1().Pods("default").GetLogs(pod, &corev1.PodLogOptions{}).DoRaw(context.Background())
		if err != nil {
			return false, err.Error()
		}
		return strings.Contains(string(log), want), string(log)
	})
}

// waitEnvReader waits until a running Pod of the recipe's Deployment other than not has logged
// want, and returns its name.
func waitEnvReader(t *testing.T, not, want string) string {
	t.Helper()
	var found string
	eventually(t, 2*time.Minute, fmt.Sprintf("a new Pod of Deployment app logging %q", want), func() (bool, string) {
		pods, err := kube.CoreV1().Pods("default").List(context.Background(), metav1.ListOptions{LabelSelector: "app=app"})
		if err != nil {
			return false, err.Error()
		}
		var seen []string
		for _, pod := range pods.Items {
			if pod.Name == not || pod.Status.Phase != corev1.PodRunning {
				continue
			}
			log, err := kube.CoreV1().Pods("default").GetLogs(pod.Name, &corev1.PodLogOptions{}).DoRaw(context.Background())
			if err == nil && strings.Contains(string(log), want) {
				found = pod.Name
				return true, ""
			}
			seen = append(seen, fmt.Sprintf("%s: %s", pod.Name, log))
		}
		return false, strings.Join(seen, "; ")
	})
	return found
}

// TestLeaderFailover: deleting the leader Pod hands the Lease to the other replica, which syncs a
// versionId bump made right after the old leader is gone.
func TestLeaderFailover(t *testing.T) {
	installed(t)
	ctx := context.Background()
	before, after := newValue("failover-before"), newValue("failover-after")
	syncedAWSSecret(t, "default", "failover", "prod/failover", "k", before)

	old := leader(controllerNamespace)
	if old == "" {
		t.Fatal("no leader")
	}
	keepLogs(t, controllerNamespace)
	if err := kube.CoreV1().Pods(controllerNamespace).Delete(ctx, old, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	// Until it has exited, the old leader may still sync what it had begun.
	eventually(t, 2*time.Minute, "the old leader Pod gone", func() (bool, string) {
		_, err := kube.CoreV1().Pods(controllerNamespace).Get(ctx, old, metav1.GetOptions{})
		return apierrors.IsNotFound(err), fmt.Sprint(err)
	})
	v2 := putSecretValue(t, "prod/failover", fmt.Sprintf(`{"k":%q}`, after))
	bump(t, "default", "failover", v2)
	waitSecret(t, "default", "failover", "k", after)
	if now := leader(controllerNamespace); now == old || now == "" {
		t.Errorf("Lease held by %q after the leader %s was deleted", now, old)
	}
	waitReady(t, controllerNamespace, 2)
}

// TestRestartCostsNoAWSCall: new controller Pods find every pinned version already in its Secret
// and call Secrets Manager zero times, by the emulator's own log.
// controllerPods returns the names of the controller's Pods in ns.
func controllerPods(t *testing.T, ns string) map[string]bool {
	t.Helper()
	pods, err := kube.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, pod := range pods.Items {
		names[pod.Name] = true
	}
	return names
}

// newLeaderSynced waits until a Pod that is not one of old holds the Lease in ns and has done
// its first pass over n AWSSecrets (by its syncs metric), and returns that Pod.
func newLeaderSynced(t *testing.T, ns string, old map[string]bool, n int) *corev1.Pod {
	t.Helper()
	ctx := context.Background()
	var pod *corev1.Pod
	eventually(t, 2*time.Minute, "a new Pod leading and done with its first pass over every AWSSecret", func() (bool, string) {
		l := leader(ns)
		if l == "" || old[l] {
			return false, fmt.Sprintf("leader %q", l)
		}
		var err error
		if pod, err = kube.CoreV1().Pods(ns).Get(ctx, l, metav1.GetOptions{}); err != nil {
			return false, err.Error()
		}
		syncs, err := testenv.ScrapeMetric(ctx, "http://"+net.JoinHostPort(pod.Status.PodIP, "8080")+"/metrics", "aws_secret_controller_syncs_total", nil)
		if err != nil {
			return false, err.Error()
		}
		return syncs >= float64(n), fmt.Sprintf("leader %s: %v syncs of %d AWSSecrets", l, syncs, n)
	})
	return pod
}

func TestRestartCostsNoAWSCall(t *testing.T) {
	installed(t)
	ctx := context.Background()
	all, err := client.MumoshuV1alpha1().AWSSecrets("").List(ctx, metav1.ListOptions{})
	if err != nil || len(all.Items) == 0 {
		t.Fatalf("want synced AWSSecrets to restart over, got %v (err %v)", all, err)
	}
	before, err := env.EmulatorRequests("GetSecretValue", "")
	if err != nil {
		t.Fatal(err)
	}
	oldPods := controllerPods(t, controllerNamespace)

	kubectl(t, "", "rollout", "restart", "-n", controllerNamespace, "deployment/"+controllerName)
	waitReady(t, controllerNamespace, 2)
	podIP := newLeaderSynced(t, controllerNamespace, oldPods, len(all.Items)).Status.PodIP
	after, err := env.EmulatorRequests("GetSecretValue", "")
	if err != nil {
		t.Fatal(err)
	}
	if after != before {
		t.Errorf("restarting the controller Pods cost %d GetSecretValue calls, want 0", after-before)
	}
	calls, err := testenv.ScrapeMetric(ctx, "http://"+net.JoinHostPort(podIP, "8080")+"/metrics", "aws_secret_controller_aws_api_calls_total", nil)
	if err != nil || calls != 0 {
		t.Errorf("the new leader counts %v AWS calls (err %v), want 0", calls, err)
	}
}

// TestGarbageCollection: deleting an AWSSecret deletes its Secret, by kube-controller-manager's
// garbage collector following the ownerReference.
func TestGarbageCollection(t *testing.T) {
	installed(t)
	ctx := context.Background()
	syncedAWSSecret(t, "default", "collected", "prod/gc", "k", newValue("gc"))
	if err := client.MumoshuV1alpha1().AWSSecrets("default").Delete(ctx, "collected", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*time.Minute, "the garbage collector deleting Secret collected", func() (bool, string) {
		_, err := kube.CoreV1().Secrets("default").Get(ctx, "collected", metav1.GetOptions{})
		return apierrors.IsNotFound(err), fmt.Sprint(err)
	})
}

// TestNamespacedVariant: manifests/namespaced installed for a namespace the test creates serves
// that namespace and no other. The cluster-wide install is scaled to zero meanwhile, so only the
// namespaced controller could sync anything.
func TestNamespacedVariant(t *testing.T) {
	installed(t)
	ctx := context.Background()
	keepLogs(t, controllerNamespace)
	kubectl(t, "", "scale", "-n", controllerNamespace, "deployment/"+controllerName, "--replicas=0")
	t.Cleanup(func() {
		kubectl(t, "", "scale", "-n", controllerNamespace, "deployment/"+controllerName, "--replicas=2")
		waitReady(t, controllerNamespace, 2)
	})
	waitReady(t, controllerNamespace, 0)

	served, other := "team-served", "team-other"
	for _, ns := range []string{served, other} {
		kubectl(t, "", "create", "namespace", ns)
	}
	value := newValue("team")
	version := createSecret(t, "team/db", fmt.Sprintf(`{"k":%q}`, value))
	awsSecret(t, other, "db", "team/db", version)
	awsSecret(t, served, "db", "team/db", version)

	install := overlay(t, filepath.Join("manifests", "namespaced"), served)
	kubectl(t, "", "apply", "-k", install)
	t.Cleanup(func() {
		keepLogs(t, served)
		kubectl(t, "", "delete", "-k", install, "--wait")
	})
	waitReady(t, served, 2)
	waitSecret(t, served, "db", "k", value)
	// The namespaced controller has synced its namespace; the other was there first and is not
	// its to read.
	if _, err := kube.CoreV1().Secrets(other).Get(ctx, "db", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("Secret %s/db: err = %v, want NotFound: the namespaced install served another namespace", other, err)
	}
	if a, err := client.MumoshuV1alpha1().AWSSecrets(other).Get(ctx, "db", metav1.GetOptions{}); err != nil || len(a.Status.Conditions) != 0 {
		t.Errorf("AWSSecret %s/db has status %+v (err %v), want none", other, a.Status, err)
	}
}

// TestNoSecretValueInPodLogs: nothing any controller Pod logged holds a value the tests stored:
// the Pods still running, and every Pod a test deleted or scaled away, whose logs keepLogs
// read before it went (those are the ones that fetched values).
func TestNoSecretValueInPodLogs(t *testing.T) {
	installed(t)
	keepLogs(t, "")
	stored := values.All()
	kept.Lock()
	defer kept.Unlock()
	// The Helm install, the failover's old leader, the scaled-away cluster-wide Pods and the
	// namespaced controller, and the Pods running now.
	if len(kept.logs) < 4 {
		t.Errorf("only %d controller Pods' logs were kept: the check would miss the Pods that fetched values", len(kept.logs))
	}
	for pod, log := range kept.logs {
		if log == "" {
			t.Errorf("Pod %s logged nothing: the check would prove nothing", pod)
		}
		for i, v := range stored {
			if strings.Contains(log, v) {
				t.Errorf("Pod %s logged stored value #%d", pod, i)
			}
		}
	}
}

// kept holds the logs of every controller Pod the tests saw, by namespace/name, read before a
// test deletes the Pod or scales it away (kubelet removes a deleted Pod's logs).
var kept struct {
	sync.Mutex
	logs map[string]string
}

// keepLogs reads the logs of the controller Pods running in namespace ("" for all) into kept.
func keepLogs(t *testing.T, namespace string) {
	t.Helper()
	ctx := context.Background()
	pods, err := kube.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		t.Fatal(err)
	}
	kept.Lock()
	defer kept.Unlock()
	if kept.logs == nil {
		kept.logs = map[string]string{}
	}
	for _, pod := range pods.Items {
		if pod.Status.Phase != corev1.PodRunning {
			continue
		}
		log, err := kube.CoreV1().Pods(pod.Namespace).GetLogs(pod.Name, &corev1.PodLogOptions{}).DoRaw(ctx)
		if err != nil {
			t.Fatalf("%v: %s\n%s", err, log, env.LogTail("kubelet", 20))
		}
		// A log only grows: keep the longest read.
		if key := pod.Namespace + "/" + pod.Name; len(log) >= len(kept.logs[key]) {
			kept.logs[key] = string(log)
		}
	}
}
