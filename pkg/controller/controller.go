// Package controller keeps a Secret equal to the Secrets Manager versions each AWSSecret pins.
//
// It is a client-go controller in the style of k8s.io/sample-controller: informers feed a typed,
// rate-limited workqueue, and a sync handler compares each AWSSecret with its Secret in the
// informer's cache. Secrets Manager is called only when a pinned version is not yet in the
// Secret, so a synced cluster costs no AWS calls, not even after a restart.
//
// The package holds no globals and parses no flags: an embedding program passes everything in
// Options, starts its informer factories after NewController, and calls Run.
package controller

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/time/rate"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	"github.com/mumoshu/aws-secret-controller/pkg/apis/mumoshu/v1alpha1"
	"github.com/mumoshu/aws-secret-controller/pkg/awssm"
	"github.com/mumoshu/aws-secret-controller/pkg/fairqueue"
	clientset "github.com/mumoshu/aws-secret-controller/pkg/generated/clientset/versioned"
	informers "github.com/mumoshu/aws-secret-controller/pkg/generated/informers/externalversions/mumoshu/v1alpha1"
	listers "github.com/mumoshu/aws-secret-controller/pkg/generated/listers/mumoshu/v1alpha1"
	"github.com/mumoshu/aws-secret-controller/pkg/render"
	"github.com/mumoshu/aws-secret-controller/pkg/tenancy"
)

// ComponentName is the name the controller uses as event source, managed-by label value and
// workqueue name.
const ComponentName = "aws-secret-controller"

// Event reasons of the Normal events the controller records. Warning events carry the Ready
// condition's reason.
const (
	EventCreated  = "Created"
	EventUpdated  = "Updated"
	EventReplaced = "Replaced"
)

// Messages of the Normal events; they name versions and types, never values.
const (
	messageCreated  = "Created Secret %s from %s"
	messageUpdated  = "Updated Secret %s to %s"
	messageReplaced = "Replaced Secret %s to change its type from %s to %s"
)

// Sync results reported to Options.OnSync besides the Ready reasons of failed syncs.
const (
	ResultUnchanged = "Unchanged"
	ResultCreated   = EventCreated
	ResultUpdated   = EventUpdated
	ResultReplaced  = EventReplaced
	// ResultDeleting: the AWSSecret is being deleted, so nothing was written.
	ResultDeleting = "Deleting"
	// ResultWaiting: a version the AWSSecret needs is being read for another AWSSecret; it is
	// synced again when that read is done.
	ResultWaiting = "Waiting"
)

// VersionGetter returns one version of a Secrets Manager secret, read as an identity.
// *awssm.Cache implements it.
type VersionGetter interface {
	Get(ctx context.Context, id awssm.Identity, secretID, versionID string) (awssm.Version, error)
}

// VersionFetcher is a VersionGetter that need not keep a worker waiting: the controller uses
// Fetch when Options.Versions has it (*awssm.Cache does). A version being read for another
// AWSSecret answers awssm.ErrInFlight and wakes the AWSSecret when the read is done; an
// *awssm.Error with RetryAfter says when to ask again, one with Parked that a wake-up will come.
type VersionFetcher interface {
	VersionGetter
	Fetch(ctx context.Context, id awssm.Identity, secretID, versionID string, opts awssm.FetchOptions) (awssm.Version, error)
}

// Options are what the controller needs. The informers must come from factories the caller
// starts after NewController returns.
type Options struct {
	// KubeClient writes Secrets and, unless Recorder or EventsClient is set, Events.
	KubeClient kubernetes.Interface
	// AWSSecretClient writes AWSSecret status.
	AWSSecretClient clientset.Interface
	// AWSSecretInformer watches AWSSecrets. Register NewAWSSecretInformer with its factory
	// (InformerFor), so that AWSSecrets are trimmed as they arrive.
	AWSSecretInformer informers.AWSSecretInformer
	// SecretInformer watches Secrets. Register NewSecretInformer with its factory (InformerFor):
	// it caches only the controller's Secrets, with their data's digest instead of the data. Any
	// Secret informer works (the controller computes the digest itself when the cache holds
	// data), but then every value stays in memory.
	SecretInformer coreinformers.SecretInformer
	// Versions reads Secrets Manager; normally an *awssm.Cache shared by every AWSSecret.
	Versions VersionGetter

	// Policy decides which secret ids each namespace may read, before any cache lookup or AWS
	// call. The zero Policy is open: every namespace reads every secret id.
	Policy tenancy.Policy
	// NamespaceInformer watches Namespaces' metadata (client-go's metadatainformer for
	// namespaces), for the allow-list and role-arn annotations; an annotation change re-syncs
	// the namespace's AWSSecrets at once. Required in allow-list mode. Nil means no Namespace
	// is read: every namespace reads as the controller's own identity.
	NamespaceInformer cache.SharedIndexInformer

	// Recorder records events. Nil means the controller posts them through EventsClient.
	Recorder record.EventRecorder
	// EventsClient posts events when Recorder is nil. Nil means KubeClient. A client of its own
	// keeps event posts from spending KubeClient's rate limit, which Secret writes need.
	EventsClient kubernetes.Interface
	// Clock stamps condition transitions. Nil means the real clock.
	Clock clock.PassiveClock
	// QueueName names the workqueue in its metrics. Empty means ComponentName.
	QueueName string
	// RateLimiter paces retries of transient errors (throttling, network, API conflicts).
	// Nil means per-item exponential backoff from 50ms to 5 minutes, with a 50 qps bucket overall.
	RateLimiter workqueue.TypedRateLimiter[cache.ObjectName]
	// PermanentErrorRetry paces retries of errors that persist until something changes
	// (a missing secret, denied access, bad content, a conflicting Secret). A change in AWS
	// produces no watch event, so they are retried, slowly. Nil means per-item exponential
	// backoff from 30s to 10 minutes.
	PermanentErrorRetry workqueue.TypedRateLimiter[cache.ObjectName]
	// RenderLimits bound the rendering of one AWSSecret's Secret data (bytes produced, the
	// Secret's size, template loop steps, the spec's sizes). The zero value means
	// render.DefaultLimits.
	RenderLimits render.Limits
	// SyncTimeout bounds one sync, its rendering included. Zero means one minute.
	SyncTimeout time.Duration
	// DrainTimeout bounds how long the syncs in flight when Run's context ends may go on before
	// their own contexts are canceled. Queued work is not started. Zero means 10 seconds, well
	// inside a Pod's default 30 s grace period.
	DrainTimeout time.Duration
	// OnSync, if set, is told the result of every sync: one of the Result constants, or the
	// Ready reason of a failure.
	OnSync func(result string, duration time.Duration)
}

// Controller keeps the Secret of each AWSSecret equal to the versions the AWSSecret pins.
type Controller struct {
	// kubeClient writes Secrets; client writes AWSSecret status.
	kubeClient kubernetes.Interface
	client     clientset.Interface

	// The listers are the controller's only reads in steady state.
	awsSecretLister  listers.AWSSecretLister
	awsSecretsSynced cache.InformerSynced
	secretLister     corelisters.SecretLister
	secretsSynced    cache.InformerSynced

	// versions is the only way to Secrets Manager.
	versions VersionGetter

	// policy and the Namespace lister decide who may read what; namespaces is nil when no
	// Namespace informer was given.
	policy           tenancy.Policy
	namespaces       cache.GenericLister
	namespacesSynced cache.InformerSynced

	// queue holds the names of AWSSecrets to sync, in the order that order decides: namespaces
	// in turn, and edits before bulk work. retry (the queue's limiter) spaces out the retries
	// of transient errors, permanentRetry those of errors only a change can fix.
	queue          workqueue.TypedRateLimitingInterface[cache.ObjectName]
	order          *fairqueue.Queue[cache.ObjectName]
	retry          workqueue.TypedRateLimiter[cache.ObjectName]
	permanentRetry workqueue.TypedRateLimiter[cache.ObjectName]

	recorder record.EventRecorder
	// broadcaster is set when the controller made its own recorder, to start and stop it in Run;
	// eventsClient is where it posts.
	broadcaster  record.EventBroadcaster
	eventsClient kubernetes.Interface

	// statusWrites keeps a sync working from a lister that has not caught up with our last
	// status write from writing it again (and failing with a conflict).
	statusWrites statusMemo

	// renderLimits bound each rendering; renderFailures keeps a spec that failed to render from
	// being rendered again until it changes.
	renderLimits   render.Limits
	renderFailures renderMemo
	// readFailures lets an AWSSecret whose spec or policy changed read a held version again.
	readFailures readMemo

	// clock stamps condition transitions.
	clock clock.PassiveClock
	// syncTimeout bounds one sync; drainTimeout bounds the syncs in flight at shutdown.
	syncTimeout, drainTimeout time.Duration
	// onSync is told the result of every sync, for metrics.
	onSync func(string, time.Duration)
}

// NewController returns a controller wired to the given informers. It registers event handlers,
// so call it before starting the informer factories.
func NewController(ctx context.Context, opts Options) (*Controller, error) {
	switch {
	case opts.KubeClient == nil, opts.AWSSecretClient == nil:
		return nil, errors.New("controller: KubeClient and AWSSecretClient are required")
	case opts.AWSSecretInformer == nil, opts.SecretInformer == nil:
		return nil, errors.New("controller: AWSSecretInformer and SecretInformer are required")
	case opts.Versions == nil:
		return nil, errors.New("controller: Versions is required")
	case opts.Policy.Mode == tenancy.ModeAllowList && opts.NamespaceInformer == nil:
		return nil, errors.New("controller: the allow-list namespace policy needs a NamespaceInformer")
	}
	logger := klog.FromContext(ctx)
	opts = withDefaults(opts)

	c := &Controller{
		kubeClient:       opts.KubeClient,
		client:           opts.AWSSecretClient,
		awsSecretLister:  opts.AWSSecretInformer.Lister(),
		awsSecretsSynced: opts.AWSSecretInformer.Informer().HasSynced,
		secretLister:     opts.SecretInformer.Lister(),
		secretsSynced:    opts.SecretInformer.Informer().HasSynced,
		versions:         opts.Versions,
		policy:           opts.Policy,
		namespacesSynced: func() bool { return true },
		retry:            opts.RateLimiter,
		permanentRetry:   opts.PermanentErrorRetry,
		recorder:         opts.Recorder,
		eventsClient:     opts.EventsClient,
		clock:            opts.Clock,
		renderLimits:     opts.RenderLimits,
		syncTimeout:      opts.SyncTimeout,
		drainTimeout:     opts.DrainTimeout,
		onSync:           opts.OnSync,
	}
	if c.recorder == nil {
		// A scheme of our own, so the recorder can name AWSSecrets without touching client-go's
		// global scheme.
		scheme := runtime.NewScheme()
		if err := v1alpha1.AddToScheme(scheme); err != nil {
			return nil, err
		}
		c.broadcaster = record.NewBroadcaster(record.WithContext(ctx))
		c.recorder = c.broadcaster.NewRecorder(scheme, corev1.EventSource{Component: ComponentName})
	}
	// The queue serves namespaces in turn, and edits before the initial list and resyncs
	// (pkg/fairqueue); de-duplication, rate limiting, delays, draining and the metrics are
	// client-go's.
	c.order = fairqueue.New(func(k cache.ObjectName) string { return k.Namespace }, fairqueue.Options{})
	c.queue = fairqueue.NewRateLimitingQueue(c.order, c.retry, opts.QueueName)

	if opts.NamespaceInformer != nil {
		c.namespaces = cache.NewGenericLister(opts.NamespaceInformer.GetIndexer(), corev1.Resource("namespaces"))
		c.namespacesSynced = opts.NamespaceInformer.HasSynced
		if _, err := opts.NamespaceInformer.AddEventHandler(cache.ResourceEventHandlerDetailedFuncs{
			AddFunc: func(obj any, isInInitialList bool) { c.handleNamespace(obj, priorityOf(isInInitialList)) },
			UpdateFunc: func(old, new any) {
				if policyChanged(old, new) {
					c.handleNamespace(new, fairqueue.High)
				}
			},
		}); err != nil {
			return nil, err
		}
	}

	logger.V(4).Info("Setting up event handlers")
	// The initial list and resyncs are bulk work: an edit overtakes them.
	if _, err := opts.AWSSecretInformer.Informer().AddEventHandler(cache.ResourceEventHandlerDetailedFuncs{
		AddFunc: func(obj any, isInInitialList bool) { c.enqueueAWSSecret(obj, priorityOf(isInInitialList)) },
		// Resyncs (equal resourceVersions) are enqueued too: they re-check every AWSSecret
		// against the Secret cache, which costs no API or AWS call when nothing drifted.
		UpdateFunc: func(old, new any) {
			c.enqueueAWSSecret(new, priorityOf(old.(metav1.Object).GetResourceVersion() == new.(metav1.Object).GetResourceVersion()))
		},
	}); err != nil {
		return nil, err
	}
	// A change to a Secret (a hand edit, a deletion) wakes up the AWSSecret that controls it.
	// Secret resyncs are skipped: the AWSSecret's own resync covers them.
	if _, err := opts.SecretInformer.Informer().AddEventHandler(cache.ResourceEventHandlerDetailedFuncs{
		AddFunc: func(obj any, isInInitialList bool) { c.handleSecret(obj, priorityOf(isInInitialList)) },
		UpdateFunc: func(old, new any) {
			if old.(*corev1.Secret).ResourceVersion == new.(*corev1.Secret).ResourceVersion {
				return
			}
			c.handleSecret(new, fairqueue.High)
		},
		DeleteFunc: func(obj any) { c.handleSecret(obj, fairqueue.High) },
	}); err != nil {
		return nil, err
	}
	return c, nil
}

// withDefaults fills in the options left empty.
func withDefaults(opts Options) Options {
	if opts.PermanentErrorRetry == nil {
		opts.PermanentErrorRetry = workqueue.NewTypedItemExponentialFailureRateLimiter[cache.ObjectName](30*time.Second, 10*time.Minute)
	}
	if opts.RateLimiter == nil {
		opts.RateLimiter = workqueue.NewTypedMaxOfRateLimiter(
			workqueue.NewTypedItemExponentialFailureRateLimiter[cache.ObjectName](50*time.Millisecond, 5*time.Minute),
			&workqueue.TypedBucketRateLimiter[cache.ObjectName]{Limiter: rate.NewLimiter(rate.Limit(50), 300)},
		)
	}
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	if opts.EventsClient == nil {
		opts.EventsClient = opts.KubeClient
	}
	if opts.RenderLimits == (render.Limits{}) {
		opts.RenderLimits = render.DefaultLimits
	}
	if opts.SyncTimeout == 0 {
		opts.SyncTimeout = time.Minute
	}
	if opts.DrainTimeout == 0 {
		opts.DrainTimeout = 10 * time.Second
	}
	if opts.QueueName == "" {
		opts.QueueName = ComponentName
	}
	return opts
}

// HasSynced reports whether the informers have filled their caches; it suits a readiness probe.
func (c *Controller) HasSynced() bool {
	return c.awsSecretsSynced() && c.secretsSynced() && c.namespacesSynced()
}

// Run waits for the informer caches, then syncs with the given number of workers until ctx is
// canceled. On cancellation it starts no more work (what is still queued is left to the next
// run or leader), gives the syncs in flight up to DrainTimeout to finish, and returns once they
// have.
func (c *Controller) Run(ctx context.Context, workers int) error {
	defer utilruntime.HandleCrashWithContext(ctx)
	logger := klog.FromContext(ctx)

	if c.broadcaster != nil {
		c.broadcaster.StartStructuredLogging(3)
		c.broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: c.eventsClient.CoreV1().Events("")})
		defer c.broadcaster.Shutdown()
	}

	logger.Info("Starting controller", "workers", workers)
	if !cache.WaitForNamedCacheSyncWithContext(ctx, c.awsSecretsSynced, c.secretsSynced, c.namespacesSynced) {
		c.queue.ShutDown()
		return errors.New("failed to wait for caches to sync")
	}

	// Syncs run on a context that outlives ctx by at most drainTimeout, so that a sync in flight
	// at shutdown finishes instead of leaving half-done work, but a slow one cannot hold the
	// process past its grace period. Each write is one API call, so a canceled sync leaves
	// nothing half-written either.
	workCtx, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	stopDrainTimer := context.AfterFunc(ctx, func() {
		time.AfterFunc(c.drainTimeout, cancelWork)
	})
	defer stopDrainTimer()

	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c.processNextWorkItem(ctx, workCtx) {
			}
		}()
	}
	logger.Info("Started workers")
	<-ctx.Done()
	logger.Info("Shutting down workers")
	c.queue.ShutDown()
	wg.Wait()
	logger.Info("Workers stopped")
	return nil
}

// processNextWorkItem syncs one AWSSecret from the queue on workCtx. It returns false when the
// queue is shut down or ctx is done: a shut-down queue still hands out what it holds, and
// none of that is started.
func (c *Controller) processNextWorkItem(ctx, workCtx context.Context) bool {
	key, shutdown := c.queue.Get()
	if shutdown {
		return false
	}
	defer c.queue.Done(key)
	if ctx.Err() != nil {
		return false
	}
	syncCtx, cancel := context.WithTimeout(workCtx, c.syncTimeout)
	defer cancel()
	c.handleErr(syncCtx, key, c.syncHandler(syncCtx, key))
	return true
}

// handleErr decides when an AWSSecret is synced again: not at all on success; soon, with
// per-item backoff, after a transient error; slowly after an error only a change can fix
// (already in the status and an event; retrying fast would only spend AWS calls).
func (c *Controller) handleErr(ctx context.Context, key cache.ObjectName, err error) {
	logger := klog.FromContext(ctx)
	if err == nil {
		c.queue.Forget(key)
		c.permanentRetry.Forget(key)
		return
	}
	switch f := classify(err); {
	case f.parked:
		// Something wakes it: the read it waits for, or Secrets Manager answering again.
		logger.V(4).Info("Sync parked until its read can be answered", "awsSecret", key, "reason", f.reason)
		c.queue.Forget(key)
	case f.retryAfter > 0:
		// A failed read, held for every AWSSecret that pins the version and logged once by the
		// version cache: asked again when the hold ends, not before.
		c.queue.Forget(key)
		logger.V(4).Info("Sync failed; will retry when the read's hold ends", "awsSecret", key, "reason", f.reason, "err", err, "after", f.retryAfter)
		c.queue.AddAfter(key, f.retryAfter)
	case f.quiet:
		logger.V(4).Info("Sync raced a stale cache; requeuing", "awsSecret", key, "err", err)
		c.queue.AddRateLimited(key)
	case !f.transient:
		c.queue.Forget(key)
		delay := c.permanentRetry.When(key)
		logger.V(2).Info("Sync failed; will retry", "awsSecret", key, "reason", f.reason, "err", err, "after", delay)
		c.queue.AddAfter(key, delay)
	default:
		c.queue.AddRateLimited(key)
		utilruntime.HandleErrorWithContext(ctx, err, "Error syncing; requeuing for later retry", "awsSecret", key)
	}
}

// priorityOf is the priority of an event: Low for bulk work (an informer's initial list, a
// resync), High for a change someone made.
func priorityOf(bulk bool) fairqueue.Priority {
	if bulk {
		return fairqueue.Low
	}
	return fairqueue.High
}

// enqueue adds an AWSSecret to the queue at a priority. Every add carries its priority, so that
// an edit collapsed into an item being processed still comes back ahead of bulk work.
func (c *Controller) enqueue(key cache.ObjectName, p fairqueue.Priority) {
	c.order.Hint(key, p)
	c.queue.Add(key)
}

func (c *Controller) enqueueAWSSecret(obj any, p fairqueue.Priority) {
	key, err := cache.ObjectToName(obj)
	if err != nil {
		utilruntime.HandleError(err)
		return
	}
	c.enqueue(key, p)
}

// handleSecret enqueues the AWSSecret that controls a Secret, if any. The sync handler looks the
// AWSSecret up, so a Secret whose owner is gone costs one lister miss.
func (c *Controller) handleSecret(obj any, p fairqueue.Priority) {
	if tombstone, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tombstone.Obj
	}
	object, ok := obj.(metav1.Object)
	if !ok {
		utilruntime.HandleError(fmt.Errorf("unexpected object of type %T", obj))
		return
	}
	owner := metav1.GetControllerOf(object)
	if owner == nil || owner.Kind != "AWSSecret" || owner.APIVersion != v1alpha1.SchemeGroupVersion.String() {
		return
	}
	c.enqueue(cache.ObjectName{Namespace: object.GetNamespace(), Name: owner.Name}, p)
}

// handleNamespace enqueues every AWSSecret of a Namespace whose policy annotations appeared or
// changed, so that a policy edit acts at once instead of after the slow retry.
func (c *Controller) handleNamespace(obj any, p fairqueue.Priority) {
	ns, err := meta.Accessor(obj)
	if err != nil {
		utilruntime.HandleError(err)
		return
	}
	awsSecrets, err := c.awsSecretLister.AWSSecrets(ns.GetName()).List(labels.Everything())
	if err != nil {
		utilruntime.HandleError(err)
		return
	}
	for _, a := range awsSecrets {
		c.enqueue(cache.MetaObjectToName(a), p)
	}
}

// policyChanged says whether a Namespace update touched an annotation the policy reads.
func policyChanged(old, new any) bool {
	o, err1 := meta.Accessor(old)
	n, err2 := meta.Accessor(new)
	if err1 != nil || err2 != nil {
		return true
	}
	for _, k := range []string{tenancy.AnnotationAllowedSecretIDs, tenancy.AnnotationRoleARN} {
		ov, ook := o.GetAnnotations()[k]
		nv, nok := n.GetAnnotations()[k]
		if ov != nv || ook != nok {
			return true
		}
	}
	return false
}
