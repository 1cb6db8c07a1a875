package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/mumoshu/aws-secret-controller/hack/internal/drive"
	"github.com/mumoshu/aws-secret-controller/pkg/apis/mumoshu/v1alpha1"
	"github.com/mumoshu/aws-secret-controller/pkg/controller"
	"github.com/mumoshu/aws-secret-controller/pkg/generated/clientset/versioned"
	"github.com/mumoshu/aws-secret-controller/pkg/testenv"
)

// auditPolicy logs, once each request is answered, what the figures count: writes and reads of
// the objects the controller touches, and its Lease. Watches are logged when they start
// (ResponseStarted, which only long-running requests have): a streamed list is a watch.
const auditPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
- level: Metadata
  resources:
  - group: ""
    resources: ["secrets", "events"]
  - group: "mumoshu.github.io"
    resources: ["awssecrets", "awssecrets/status"]
  - group: "events.k8s.io"
    resources: ["events"]
  - group: "coordination.k8s.io"
    resources: ["leases"]
- level: None
`

// version is one Secrets Manager version the run created.
type version struct{ id, password string }

// world is one scenario's stack: a fresh etcd, kube-apiserver and kumo, the fault proxy in front
// of kumo, N AWSSecrets over K secrets, the controller processes and a checker that watches the
// Secrets for the whole run.
type world struct {
	cfg    config
	env    *testenv.Env
	proxy  *testenv.FaultProxy
	kube   kubernetes.Interface
	client versioned.Interface
	sm     *secretsmanager.Client
	fleet  *fleet

	mu       sync.Mutex
	versions [][]version // versions[k]: the versions of faults/secret-k, oldest first
	pinned   []int       // pinned[i]: the index in versions[i%K] AWSSecret i pins

	checker *checker
}

func newWorld(ctx context.Context, cfg config, name string) (*world, error) {
	dir := filepath.Join(cfg.workDir, name)
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	env, err := testenv.New(ctx, testenv.Options{
		BinDir:      cfg.binDir,
		Dir:         dir,
		CRDs:        []string{filepath.Join(cfg.repo, "manifests", "crd", "mumoshu.github.io_awssecrets.yaml")},
		AuditPolicy: auditPolicy,
	})
	if err != nil {
		return nil, err
	}
	w := &world{cfg: cfg, env: env}
	if w.proxy, err = testenv.NewFaultProxy(env.SecretsManagerEndpoint); err != nil {
		_ = env.Stop()
		return nil, err
	}
	fast := rest.CopyConfig(env.Config)
	fast.QPS, fast.Burst = 2000, 4000
	w.kube = kubernetes.NewForConfigOrDie(fast)
	w.client = versioned.NewForConfigOrDie(fast)
	w.sm = env.SecretsManager()
	w.fleet = &fleet{w: w}
	return w, nil
}

// stop stops the controllers, the checker, the proxy and the stack.
func (w *world) stop() {
	w.fleet.stopAll(30 * time.Second)
	if w.checker != nil {
		w.checker.stop()
	}
	_ = w.proxy.Close()
	_ = w.env.Stop()
}

func (w *world) namespace(i int) string { return fmt.Sprintf("faults-%02d", i%w.cfg.namespaces) }
func (w *world) name(i int) string      { return fmt.Sprintf("app-%05d", i) }
func secretID(k int) string             { return fmt.Sprintf("faults/secret-%04d", k) }

// populate creates K secrets in kumo (directly, not through the proxy) and N AWSSecrets, and
// starts the checker.
func (w *world) populate(ctx context.Context) error {
	k := w.cfg.versions
	w.versions = make([][]version, k)
	w.pinned = make([]int, w.cfg.objects)
	if err := drive.Parallel(ctx, k, 16, func(ctx context.Context, k int) error {
		pw := drive.RandomString()
		out, err := w.sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{
			Name: aws.String(secretID(k)), SecretString: aws.String(fmt.Sprintf(`{"username":"user-%d","password":%q}`, k, pw)),
		})
		if err != nil {
			return err
		}
		w.mu.Lock()
		w.versions[k] = []version{{id: aws.ToString(out.VersionId), password: pw}}
		w.mu.Unlock()
		return nil
	}); err != nil {
		return err
	}
	for n := range w.cfg.namespaces {
		if _, err := w.kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: w.namespace(n)}}, metav1.CreateOptions{}); err != nil {
			return err
		}
	}
	if err := drive.Parallel(ctx, w.cfg.objects, 32, func(ctx context.Context, i int) error {
		return w.createAWSSecret(ctx, w.namespace(i), w.name(i), i%k)
	}); err != nil {
		return err
	}
	w.checker = startChecker(w)
	return nil
}

func (w *world) createAWSSecret(ctx context.Context, ns, name string, k int) error {
	w.mu.Lock()
	v := w.versions[k][0]
	w.mu.Unlock()
	_, err := w.client.MumoshuV1alpha1().AWSSecrets(ns).Create(ctx, &v1alpha1.AWSSecret{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1alpha1.AWSSecretSpec{StringDataFrom: &v1alpha1.DataSource{SecretsManagerSecretRef: v1alpha1.SecretsManagerSecretRef{
			SecretID: secretID(k), VersionID: v.id,
		}}},
	}, metav1.CreateOptions{})
	return err
}

// rollout puts a new version of the secrets from..to-1 and bumps every AWSSecret that pins one
// of them, as a Git change that bumps their versionIds would.
func (w *world) rollout(ctx context.Context, from, to int) error {
	if err := drive.Parallel(ctx, to-from, 16, func(ctx context.Context, j int) error {
		k := from + j
		pw := drive.RandomString()
		out, err := w.sm.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{
			SecretId: aws.String(secretID(k)), SecretString: aws.String(fmt.Sprintf(`{"username":"user-%d","password":%q}`, k, pw)),
		})
		if err != nil {
			return err
		}
		w.mu.Lock()
		w.versions[k] = append(w.versions[k], version{id: aws.ToString(out.VersionId), password: pw})
		w.mu.Unlock()
		return nil
	}); err != nil {
		return err
	}
	var objects []int
	for i := range w.cfg.objects {
		if k := i % w.cfg.versions; k >= from && k < to {
			objects = append(objects, i)
		}
	}
	return drive.Parallel(ctx, len(objects), 32, func(ctx context.Context, j int) error {
		i := objects[j]
		w.mu.Lock()
		vs := w.versions[i%w.cfg.versions]
		latest := vs[len(vs)-1]
		w.pinned[i] = len(vs) - 1
		w.mu.Unlock()
		patch := fmt.Sprintf(`{"spec":{"stringDataFrom":{"secretsManagerSecretRef":{"versionId":%q}}}}`, latest.id)
		_, err := w.client.MumoshuV1alpha1().AWSSecrets(w.namespace(i)).Patch(ctx, w.name(i), types.MergePatchType, []byte(patch), metav1.PatchOptions{})
		return err
	})
}

// state is what the cluster holds now, compared with what the run asked for.
type state struct {
	awsSecrets, notReady, secrets, wrong int
	// stale AWSSecrets have no status for their generation yet; reasons are the Ready reasons of
	// those that have one and are not Ready.
	stale   int
	reasons map[string]int
}

func (s state) converged(n int) bool {
	return s.awsSecrets == n && s.notReady == 0 && s.secrets == n && s.wrong == 0
}

func (s state) String() string {
	return fmt.Sprintf("%d AWSSecrets, %d not Ready (%d not synced at their generation yet, reasons of the others %v); %d Secrets, %d not holding their pinned version",
		s.awsSecrets, s.notReady, s.stale, s.reasons, s.secrets, s.wrong)
}

// observe lists the AWSSecrets and Secrets and checks each Secret against the version its
// AWSSecret pins now.
func (w *world) observe(ctx context.Context) (state, error) {
	st := state{reasons: map[string]int{}}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	opts := metav1.ListOptions{Limit: 500}
	for {
		list, err := w.client.MumoshuV1alpha1().AWSSecrets("").List(ctx, opts)
		if err != nil {
			return st, err
		}
		for _, a := range list.Items {
			if !strings.HasPrefix(a.Namespace, "faults-") || !strings.HasPrefix(a.Name, "app-") {
				continue
			}
			st.awsSecrets++
			c := meta.FindStatusCondition(a.Status.Conditions, v1alpha1.ConditionReady)
			switch {
			case c == nil || a.Status.ObservedGeneration != a.Generation:
				// Not synced at this generation yet: the status is the previous one's.
				st.notReady++
				st.stale++
			case c.Status != metav1.ConditionTrue:
				st.notReady++
				st.reasons[c.Reason]++
			}
		}
		if opts.Continue = list.Continue; opts.Continue == "" {
			break
		}
	}
	secrets, err := w.listSecrets(ctx)
	if err != nil {
		return st, err
	}
	for _, s := range secrets {
		i, ok := w.index(s.Namespace, s.Name)
		if !ok {
			continue
		}
		st.secrets++
		w.mu.Lock()
		want := w.versions[i%w.cfg.versions][w.pinned[i]]
		w.mu.Unlock()
		if !w.holds(s, i%w.cfg.versions, want) {
			st.wrong++
		}
	}
	return st, nil
}

func (w *world) listSecrets(ctx context.Context) ([]corev1.Secret, error) {
	var all []corev1.Secret
	opts := metav1.ListOptions{Limit: 500}
	for {
		list, err := w.kube.CoreV1().Secrets("").List(ctx, opts)
		if err != nil {
			return nil, err
		}
		all = append(all, list.Items...)
		if opts.Continue = list.Continue; opts.Continue == "" {
			return all, nil
		}
	}
}

var objectName = regexp.MustCompile(`^app-(\d{5})$`)

// index is the number of the AWSSecret a Secret belongs to.
func (w *world) index(ns, name string) (int, bool) {
	m := objectName.FindStringSubmatch(name)
	if m == nil || !strings.HasPrefix(ns, "faults-") {
		return 0, false
	}
	var i int
	_, _ = fmt.Sscanf(m[1], "%d", &i)
	return i, i < w.cfg.objects && w.namespace(i) == ns
}

// holds tells whether a Secret holds exactly version v of secret k: both keys, their values,
// nothing else, and the annotation naming the version.
func (w *world) holds(s corev1.Secret, k int, v version) bool {
	return len(s.Data) == 2 &&
		string(s.Data["username"]) == fmt.Sprintf("user-%d", k) &&
		string(s.Data["password"]) == v.password &&
		s.Annotations[controller.AnnotationStringDataVersionID] == v.id
}

// holdsSome tells whether a Secret holds exactly one of the versions of its secret: what a
// Secret may hold at any moment of a run.
func (w *world) holdsSome(s corev1.Secret, i int) bool {
	k := i % w.cfg.versions
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, v := range w.versions[k] {
		if w.holds(s, k, v) {
			return true
		}
	}
	return false
}

// waitConverged polls until every AWSSecret is Ready at its generation and every Secret holds
// its pinned version, and returns when that was first seen.
func (w *world) waitConverged(ctx context.Context) (time.Time, error) {
	deadline := time.Now().Add(w.cfg.timeout)
	var last state
	var lastErr error
	for {
		st, err := w.observe(ctx)
		if err == nil && st.converged(w.cfg.objects) {
			return time.Now(), nil
		}
		last, lastErr = st, err
		if time.Now().After(deadline) {
			return time.Time{}, fmt.Errorf("not converged within %s: %v (last error: %v)", w.cfg.timeout, last, lastErr)
		}
		select {
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// checker lists the Secrets every 500 ms for the whole run and counts the ones that hold
// anything but exactly one version of their secret: a Secret blanked, partly written, or
// mixing versions. Lists that fail (the API server is down) are counted, not fatal.
type checker struct {
	cancel context.CancelFunc
	done   chan struct{}

	mu          sync.Mutex
	lists       int
	failedLists int
	bad         map[string]bool
}

func startChecker(w *world) *checker {
	ctx, cancel := context.WithCancel(context.Background())
	c := &checker{cancel: cancel, done: make(chan struct{}), bad: map[string]bool{}}
	go func() {
		defer close(c.done)
		for {
			lctx, lcancel := context.WithTimeout(ctx, 10*time.Second)
			secrets, err := w.listSecrets(lctx)
			lcancel()
			c.mu.Lock()
			c.lists++
			if err != nil {
				c.failedLists++
			}
			for _, s := range secrets {
				if i, ok := w.index(s.Namespace, s.Name); ok && !w.holdsSome(s, i) {
					c.bad[s.Namespace+"/"+s.Name] = true
				}
			}
			c.mu.Unlock()
			select {
			case <-ctx.Done():
				return
			case <-time.After(500 * time.Millisecond):
			}
		}
	}()
	return c
}

func (c *checker) stop() {
	c.cancel()
	<-c.done
}

// badSecrets is how many Secrets were ever seen holding anything but one whole version.
func (c *checker) badSecrets() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.bad)
}

func (c *checker) listsDone() (lists, failed int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lists, c.failedLists
}

// values are every secret value the run stored: the leak check looks for them in the logs.
func (w *world) values() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for _, vs := range w.versions {
		for _, v := range vs {
			out = append(out, v.password)
		}
	}
	return out
}

// waitMetric polls a metric of the replica's current process until it reaches n.
func waitMetric(ctx context.Context, r *replica, name string, labels map[string]string, n float64, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if v, err := r.current().Metric(name, labels); err == nil && v >= n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s%v did not reach %v within %s", name, labels, n, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}
