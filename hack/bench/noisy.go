package main

import (
	"context"
	"fmt"
	"math"
	"sort"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"

	"github.com/mumoshu/aws-secret-controller/hack/internal/drive"
	"github.com/mumoshu/aws-secret-controller/pkg/apis/mumoshu/v1alpha1"
	"github.com/mumoshu/aws-secret-controller/pkg/controller"
	externalversions "github.com/mumoshu/aws-secret-controller/pkg/generated/informers/externalversions"
)

// quietTenant is a namespace with one synced AWSSecret whose versionId the driver bumps at a
// fixed interval, each time to a new version created beforehand, and whose Secret it watches:
// the latency of a bump is from the driver's Update of the AWSSecret to the moment the Secret
// holds the new version (its string-data-version-id annotation), as the driver's watch sees it.
type quietTenant struct {
	b        *bench
	ns, name string
	secretID string
	versions []string
	index    map[string]int

	mu     sync.Mutex
	held   int // index of the version the Secret holds; -1 before the first
	bumps  []bump
	change chan struct{} // signalled on every change of held
}

// bump is one versionId bump of the quiet tenant.
type bump struct {
	Index int       `json:"index"`
	Sent  time.Time `json:"sent"`
	// Landed is when the Secret first held this version or a later one; zero if never.
	Landed time.Time `json:"landed,omitempty"`
	// Superseded: the Secret went straight to a later version.
	Superseded bool `json:"superseded,omitempty"`
}

// latencyStats summarises the bumps of a quiet tenant.
type latencyStats struct {
	Bumps      int       `json:"bumps"`
	Landed     int       `json:"landed"`
	Superseded int       `json:"superseded"`
	Unlanded   int       `json:"unlanded"`
	P50ms      float64   `json:"p50Ms"`
	P99ms      float64   `json:"p99Ms"`
	MaxMs      float64   `json:"maxMs"`
	Ms         []float64 `json:"latenciesMs"`
}

func newQuietTenant(b *bench, ns, secretID string, versions int) *quietTenant {
	return &quietTenant{b: b, ns: ns, name: "app", secretID: secretID, versions: make([]string, versions), index: map[string]int{}, held: -1, change: make(chan struct{}, 1)}
}

// setup creates the versions in the emulator, the namespace and the AWSSecret pinning the first
// version, and starts the watch on its Secret.
func (q *quietTenant) setup(ctx context.Context) error {
	for i := range q.versions {
		value := aws.String(fmt.Sprintf(`{"username":"quiet","password":%q,"n":"%d"}`, drive.RandomString(), i))
		var id *string
		if i == 0 {
			out, err := q.b.sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(q.secretID), SecretString: value})
			if err != nil {
				return err
			}
			id = out.VersionId
		} else {
			out, err := q.b.sm.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String(q.secretID), SecretString: value})
			if err != nil {
				return err
			}
			id = out.VersionId
		}
		q.versions[i] = aws.ToString(id)
		q.index[q.versions[i]] = i
	}
	// The versions must all still be there: an emulator (or AWS) that drops old versions would
	// make the later bumps fail for a reason that is not the controller's.
	for _, i := range []int{0, len(q.versions) / 2} {
		if _, err := q.b.sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(q.secretID), VersionId: aws.String(q.versions[i])}); err != nil {
			return fmt.Errorf("version %d of %s is gone from the emulator after %d versions: %w", i, q.secretID, len(q.versions), err)
		}
	}
	if err := q.b.ensureNamespace(ctx, q.ns); err != nil {
		return err
	}
	if _, err := q.b.client.MumoshuV1alpha1().AWSSecrets(q.ns).Create(ctx, &v1alpha1.AWSSecret{
		ObjectMeta: metav1.ObjectMeta{Name: q.name},
		Spec: v1alpha1.AWSSecretSpec{StringDataFrom: &v1alpha1.DataSource{SecretsManagerSecretRef: v1alpha1.SecretsManagerSecretRef{
			SecretID: q.secretID, VersionID: q.versions[0],
		}}},
	}, metav1.CreateOptions{}); err != nil {
		return err
	}
	factory := informers.NewSharedInformerFactoryWithOptions(q.b.kube, 0, informers.WithNamespace(q.ns),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("metadata.name", q.name).String()
		}))
	informer := factory.Core().V1().Secrets().Informer()
	observe := func(obj any) {
		if s, ok := obj.(*corev1.Secret); ok {
			q.observe(s.Annotations[controller.AnnotationStringDataVersionID])
		}
	}
	if _, err := informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    observe,
		UpdateFunc: func(_, obj any) { observe(obj) },
	}); err != nil {
		return err
	}
	factory.Start(ctx.Done())
	factory.WaitForCacheSync(ctx.Done())
	return nil
}

// observe records that the Secret holds a version, and lands every bump up to it.
func (q *quietTenant) observe(version string) {
	now := time.Now()
	i, ok := q.index[version]
	if !ok {
		return
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if i <= q.held {
		return
	}
	q.held = i
	for j := range q.bumps {
		if bp := &q.bumps[j]; bp.Landed.IsZero() && bp.Index <= i {
			bp.Landed, bp.Superseded = now, bp.Index < i
		}
	}
	select {
	case q.change <- struct{}{}:
	default:
	}
}

// waitHeld waits until the Secret holds version i or a later one.
func (q *quietTenant) waitHeld(ctx context.Context, i int, timeout time.Duration) error {
	deadline := time.After(timeout)
	for {
		q.mu.Lock()
		held := q.held
		q.mu.Unlock()
		if held >= i {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline:
			return fmt.Errorf("the Secret %s/%s does not hold version %d within %s (holds %d)", q.ns, q.name, i, timeout, held)
		case <-q.change:
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// bumpLoop bumps the AWSSecret every interval until done says so and at least minBumps were
// sent, or deadline passes, or the versions run out. It returns the number of bumps sent.
func (q *quietTenant) bumpLoop(ctx context.Context, interval time.Duration, minBumps int, done func() bool, deadline time.Time) (int, error) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	sent := 0
	for {
		select {
		case <-ctx.Done():
			return sent, ctx.Err()
		case <-tick.C:
		}
		if time.Now().After(deadline) || (sent >= minBumps && done()) {
			return sent, nil
		}
		next := sent + 1
		if next >= len(q.versions) {
			drive.Logf("%s: out of versions after %d bumps", q.ns, sent)
			return sent, nil
		}
		if err := q.bump(ctx, next); err != nil {
			return sent, err
		}
		sent = next
	}
}

// bump updates the AWSSecret to version i: Get, then Update, again on a conflict with the
// controller's status writes. The clock starts just before the Update that succeeds is sent.
func (q *quietTenant) bump(ctx context.Context, i int) error {
	for {
		a, err := q.b.client.MumoshuV1alpha1().AWSSecrets(q.ns).Get(ctx, q.name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		a.Spec.StringDataFrom.SecretsManagerSecretRef.VersionID = q.versions[i]
		start := time.Now()
		q.mu.Lock()
		q.bumps = append(q.bumps, bump{Index: i, Sent: start})
		q.mu.Unlock()
		_, err = q.b.client.MumoshuV1alpha1().AWSSecrets(q.ns).Update(ctx, a, metav1.UpdateOptions{})
		if err == nil {
			return nil
		}
		q.mu.Lock()
		q.bumps = q.bumps[:len(q.bumps)-1]
		q.mu.Unlock()
		if !apierrors.IsConflict(err) {
			return err
		}
	}
}

// lastBump is the index of the last bump sent; 0 if none.
func (q *quietTenant) lastBump() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.bumps) == 0 {
		return 0
	}
	return q.bumps[len(q.bumps)-1].Index
}

// stats summarises the bumps; a bump that never landed counts in Unlanded and not in the
// percentiles.
func (q *quietTenant) stats() latencyStats {
	q.mu.Lock()
	defer q.mu.Unlock()
	s := latencyStats{Bumps: len(q.bumps)}
	for _, bp := range q.bumps {
		if bp.Landed.IsZero() {
			s.Unlanded++
			continue
		}
		s.Landed++
		if bp.Superseded {
			s.Superseded++
		}
		s.Ms = append(s.Ms, float64(bp.Landed.Sub(bp.Sent).Microseconds())/1000)
	}
	sorted := append([]float64(nil), s.Ms...)
	sort.Float64s(sorted)
	s.P50ms, s.P99ms = percentile(sorted, 0.50), percentile(sorted, 0.99)
	if len(sorted) > 0 {
		s.MaxMs = sorted[len(sorted)-1]
	}
	return s
}

// percentile is the nearest-rank percentile of sorted values.
func percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[max(0, min(rank, len(sorted)-1))]
}

// readyTracker follows the AWSSecrets of a namespace with an informer and tells when every one
// of them has a Ready condition for its generation (settled) or a True one (ready). The counts
// are kept as objects change, so that 10,000 objects cost the driver little.
type readyTracker struct {
	mu       sync.Mutex
	objects  map[string]*v1alpha1.AWSSecret
	state    map[string]objectState
	ready    int
	settled  int
	want     int
	allReady time.Time // when all want objects were first Ready
	settleAt time.Time // when all want objects first had a Ready condition at their generation
	change   chan struct{}
}

type objectState struct{ ready, settled bool }

func (b *bench) trackAWSSecrets(ctx context.Context, ns string, want int) (*readyTracker, error) {
	t := &readyTracker{objects: map[string]*v1alpha1.AWSSecret{}, state: map[string]objectState{}, want: want, change: make(chan struct{}, 1)}
	if want == 0 { // nothing to wait for: e.g. N1 with --noisy-objects 0, the quiet tenant alone
		t.allReady, t.settleAt = time.Now(), time.Now()
	}
	factory := externalversions.NewSharedInformerFactoryWithOptions(b.client, 0, externalversions.WithNamespace(ns))
	informer := factory.Mumoshu().V1alpha1().AWSSecrets().Informer()
	if _, err := informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    t.observe,
		UpdateFunc: func(_, obj any) { t.observe(obj) },
	}); err != nil {
		return nil, err
	}
	factory.Start(ctx.Done())
	factory.WaitForCacheSync(ctx.Done())
	return t, nil
}

func (t *readyTracker) observe(obj any) {
	a, ok := obj.(*v1alpha1.AWSSecret)
	if !ok {
		return
	}
	now := time.Now()
	var st objectState
	if c := meta.FindStatusCondition(a.Status.Conditions, v1alpha1.ConditionReady); c != nil && a.Status.ObservedGeneration == a.Generation {
		st = objectState{ready: c.Status == metav1.ConditionTrue, settled: true}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	old := t.state[a.Name]
	t.objects[a.Name], t.state[a.Name] = a, st
	t.ready += b2i(st.ready) - b2i(old.ready)
	t.settled += b2i(st.settled) - b2i(old.settled)
	if t.allReady.IsZero() && t.ready >= t.want {
		t.allReady = now
	}
	if t.settleAt.IsZero() && t.settled >= t.want {
		t.settleAt = now
	}
	select {
	case t.change <- struct{}{}:
	default:
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// counts returns how many objects are Ready and how many settled now.
func (t *readyTracker) counts() (ready, settled int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.ready, t.settled
}

// snapshot returns the objects as last seen.
func (t *readyTracker) snapshot() []*v1alpha1.AWSSecret {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]*v1alpha1.AWSSecret, 0, len(t.objects))
	for _, o := range t.objects {
		out = append(out, o)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (t *readyTracker) times() (allReady, settled time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.allReady, t.settleAt
}

// wait waits until cond holds or the deadline passes; it tells whether cond held.
func (t *readyTracker) wait(ctx context.Context, cond func() bool, deadline time.Time) (bool, error) {
	for {
		if cond() {
			return true, nil
		}
		if time.Now().After(deadline) {
			return false, nil
		}
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-t.change:
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// noisyResult is what N1 measured.
type noisyResult struct {
	Objects        int           `json:"objects"`
	Versions       int           `json:"versions"`
	CreateWorkers  int           `json:"createWorkers"`
	CreateSeconds  float64       `json:"createSeconds"`
	Converged      bool          `json:"converged"`
	ConvergeSecs   float64       `json:"convergeSeconds"`
	ReadyAtEnd     int           `json:"readyAtEnd"`
	Quiet          latencyStats  `json:"quietTenant"`
	Restarts       int           `json:"restarts"`
	PeakRSSKiB     int64         `json:"peakRssKiB"`
	MemoryLimitMiB int           `json:"memoryLimitMiB"`
	Incarnations   []incarnation `json:"incarnations"`
	Notes          string        `json:"notes,omitempty"`
}

const noisyVersions = 4

// n1Noisy: a namespace creates N AWSSecrets at once while a quiet one bumps its only AWSSecret
// every bump interval; B's bump latency is the figure.
func (b *bench) n1Noisy(ctx context.Context) (scenario, error) {
	s := scenario{Name: "N1 noisy neighbour"}
	res := &noisyResult{Objects: b.cfg.noisyObjects, Versions: noisyVersions, CreateWorkers: b.cfg.noisyWorkers, MemoryLimitMiB: b.cfg.memoryLimitMiB}
	b.n1 = res
	if err := b.freshStart(ctx); err != nil {
		return s, err
	}
	const floodNS = "n1-flood"
	quiet := newQuietTenant(b, "n1-quiet", "n1/quiet", int(b.cfg.noisyTimeout/b.cfg.bumpInterval)+b.cfg.minBumps+2)
	drive.Logf("N1: creating %d quiet versions and %d flood versions", len(quiet.versions), noisyVersions)
	if err := quiet.setup(ctx); err != nil {
		return s, err
	}
	floodVersions := make([]string, noisyVersions)
	for k := range floodVersions {
		out, err := b.sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{
			Name:         aws.String(fmt.Sprintf("n1/flood-%d", k)),
			SecretString: aws.String(fmt.Sprintf(`{"username":"flood-%d","password":%q}`, k, drive.RandomString())),
		})
		if err != nil {
			return s, err
		}
		floodVersions[k] = aws.ToString(out.VersionId)
	}
	if err := b.ensureNamespace(ctx, floodNS); err != nil {
		return s, err
	}

	sup := newSupervisor(b, "n1")
	defer sup.stop()
	if err := sup.start(ctx); err != nil {
		return s, err
	}
	if err := quiet.waitHeld(ctx, 0, time.Minute); err != nil {
		return s, err
	}
	tracker, err := b.trackAWSSecrets(ctx, floodNS, b.cfg.noisyObjects)
	if err != nil {
		return s, err
	}
	before, err := b.counters(ctx)
	if err != nil {
		return s, err
	}
	callsBefore := sup.metric("aws_secret_controller_aws_api_calls_total", map[string]string{"operation": "GetSecretValue"})

	start := time.Now()
	deadline := start.Add(b.cfg.noisyTimeout)
	converged := func() bool { r, _ := tracker.times(); return !r.IsZero() }
	bumpsDone := make(chan error, 1)
	go func() {
		_, err := quiet.bumpLoop(ctx, b.cfg.bumpInterval, b.cfg.minBumps, converged, deadline)
		bumpsDone <- err
	}()
	drive.Logf("N1: flooding %s with %d AWSSecrets (%d client workers)", floodNS, b.cfg.noisyObjects, b.cfg.noisyWorkers)
	if err := drive.Parallel(ctx, b.cfg.noisyObjects, b.cfg.noisyWorkers, func(ctx context.Context, i int) error {
		k := i % noisyVersions
		_, err := b.client.MumoshuV1alpha1().AWSSecrets(floodNS).Create(ctx, &v1alpha1.AWSSecret{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("flood-%05d", i)},
			Spec: v1alpha1.AWSSecretSpec{StringDataFrom: &v1alpha1.DataSource{SecretsManagerSecretRef: v1alpha1.SecretsManagerSecretRef{
				SecretID: fmt.Sprintf("n1/flood-%d", k), VersionID: floodVersions[k],
			}}},
		}, metav1.CreateOptions{})
		return err
	}); err != nil {
		return s, err
	}
	res.CreateSeconds = time.Since(start).Seconds()
	drive.Logf("N1: created in %.1fs; waiting for all Ready (at most until %s)", res.CreateSeconds, deadline.Format("15:04:05"))
	if _, err := tracker.wait(ctx, converged, deadline); err != nil {
		return s, err
	}
	if at, _ := tracker.times(); !at.IsZero() {
		res.Converged, res.ConvergeSecs = true, max(0, at.Sub(start).Seconds())
	} else {
		res.ConvergeSecs = time.Since(start).Seconds()
	}
	res.ReadyAtEnd, _ = tracker.counts()
	drive.Logf("N1: flood converged=%v after %.1fs (%d Ready); waiting for the quiet tenant's bumps", res.Converged, res.ConvergeSecs, res.ReadyAtEnd)
	if err := <-bumpsDone; err != nil {
		return s, err
	}
	if err := quiet.waitHeld(ctx, quiet.lastBump(), time.Minute); err != nil {
		drive.Logf("N1: %v", err)
	}
	res.Quiet = quiet.stats()
	s.Seconds = res.ConvergeSecs
	// One call per flood version, and one per version B's Secret came to hold (a superseded
	// bump's version was never read).
	s.WantAWSCalls = min(noisyVersions, res.Objects) + res.Quiet.Landed - res.Quiet.Superseded
	if err := b.fillSupervised(ctx, &s, sup, before, callsBefore); err != nil {
		return s, err
	}
	res.Incarnations, res.Restarts, res.PeakRSSKiB = sup.summary()
	s.PeakRSSKiB = max(res.PeakRSSKiB, s.RSSKiB) // the last sample may predate the RSS read
	_, s.GoMemLimitMiB = b.controllerEnv(true)
	s.Notes = fmt.Sprintf("%d AWSSecrets created at once in one namespace; the quiet namespace's bumps: p50 %.0f ms, p99 %.0f ms, max %.0f ms over %d", res.Objects, res.Quiet.P50ms, res.Quiet.P99ms, res.Quiet.MaxMs, res.Quiet.Landed)
	drive.Logf("N1: quiet tenant %d bumps, p50 %.0f ms, p99 %.0f ms, max %.0f ms, %d unlanded; restarts %d; peak RSS %.1f MiB",
		res.Quiet.Bumps, res.Quiet.P50ms, res.Quiet.P99ms, res.Quiet.MaxMs, res.Quiet.Unlanded, res.Restarts, mib(res.PeakRSSKiB))
	sup.keepLogs(b.cfg.keepLogs)
	sup.stop()
	return s, b.cleanNamespaces(ctx, floodNS, quiet.ns)
}

// fillSupervised completes a scenario row for a supervised controller: the differences since
// before, and the running process's memory.
func (b *bench) fillSupervised(ctx context.Context, s *scenario, sup *supervisor, before counters, callsBefore float64) error {
	after, err := b.settledCounters(ctx)
	if err != nil {
		return err
	}
	s.AWSCallsMetrics = int(sup.metric("aws_secret_controller_aws_api_calls_total", map[string]string{"operation": "GetSecretValue"}) - callsBefore)
	s.AWSCallsKumo = after.kumoCalls - before.kumoCalls
	s.Writes = map[string]float64{}
	for k, v := range after.writes {
		if d := v - before.writes[k]; d != 0 {
			s.Writes[k] = d
		}
	}
	if c := sup.current(); c != nil && !stopped(c) {
		s.RSSKiB = procStatusKiB(c.PID(), "VmRSS:")
	}
	s.HeapInuseMiB = sup.metric("go_memstats_heap_inuse_bytes", nil) / (1 << 20)
	return nil
}

// freshStart stops the controller of the S scenarios, if any ran, and deletes their objects, so
// that N1 and H1 start from an empty cluster whatever ran before.
func (b *bench) freshStart(ctx context.Context) error {
	if b.ctrl != nil {
		if _, err := b.ctrl.Stop(30 * time.Second); err != nil {
			drive.Logf("stopping the S scenarios' controller: %v", err)
		}
		b.ctrl = nil
	}
	if !b.sSetup {
		return nil
	}
	var namespaces []string
	for n := range b.cfg.namespaces {
		namespaces = append(namespaces, b.namespace(n))
	}
	b.sSetup = false
	return b.cleanNamespaces(ctx, namespaces...)
}

// cleanNamespaces deletes the AWSSecrets and Secrets of namespaces (the stack runs no namespace
// controller, so the namespaces themselves stay, empty).
func (b *bench) cleanNamespaces(ctx context.Context, namespaces ...string) error {
	for _, ns := range namespaces {
		if err := b.client.MumoshuV1alpha1().AWSSecrets(ns).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{}); err != nil {
			return err
		}
		if err := b.kube.CoreV1().Secrets(ns).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{}); err != nil {
			return err
		}
	}
	return nil
}

func (b *bench) ensureNamespace(ctx context.Context, ns string) error {
	_, err := b.kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}
