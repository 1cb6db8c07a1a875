package fairqueue

import (
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"
)

// Config configures NewRateLimitingQueueWithConfig.
type Config struct {
	// Name labels the queue's metrics. Empty means no metrics, as in client-go.
	Name string
	// Clock drives delayed adds (AddAfter, AddRateLimited) and the metrics' timings; nil
	// means the real clock. Tests pass a fake clock.
	Clock clock.WithTicker
	// MetricsProvider overrides the provider set with workqueue.SetProvider; nil means that
	// global provider.
	MetricsProvider workqueue.MetricsProvider
}

// NewRateLimitingQueue returns client-go's rate-limiting workqueue with fq deciding the order
// of pending items. name labels its metrics as client-go's own queues do. fq must not be shared
// with another workqueue: its items are that queue's pending set.
func NewRateLimitingQueue[T comparable](fq *Queue[T], limiter workqueue.TypedRateLimiter[T], name string) workqueue.TypedRateLimitingInterface[T] {
	return NewRateLimitingQueueWithConfig(fq, limiter, Config{Name: name})
}

// NewRateLimitingQueueWithConfig is NewRateLimitingQueue with a clock and metrics provider.
//
// The composition is Typed (with fq as its Queue) inside a delaying queue inside a rate-limiting
// queue, and Name is passed to each level on purpose. In client-go v0.34.2 the levels register
// disjoint metrics: Typed registers depth, adds, queue latency, work duration, unfinished work
// and longest running processor; the delaying queue registers only retries (and builds no inner
// queue of its own because one is given); the rate-limiting queue registers nothing and ignores
// Name because a delaying queue is given. So leaving Name off the inner level would lose the
// depth and latency metrics, leaving it off the delaying level would lose retries, and nothing
// is registered twice. TestMetricsRegisteredOnce pins this, so a client-go upgrade that changes
// it fails a test instead of silently double counting.
func NewRateLimitingQueueWithConfig[T comparable](fq *Queue[T], limiter workqueue.TypedRateLimiter[T], cfg Config) workqueue.TypedRateLimitingInterface[T] {
	return compose[T](fq, limiter, cfg)
}

// compose builds the client-go stack around any workqueue.Queue, so tests can wrap a Queue to
// observe pop order under the exact composition the controller uses.
func compose[T comparable](order workqueue.Queue[T], limiter workqueue.TypedRateLimiter[T], cfg Config) workqueue.TypedRateLimitingInterface[T] {
	inner := workqueue.NewTypedWithConfig(workqueue.TypedQueueConfig[T]{
		Name:            cfg.Name,
		MetricsProvider: cfg.MetricsProvider,
		Clock:           cfg.Clock,
		Queue:           order,
	})
	delaying := workqueue.NewTypedDelayingQueueWithConfig(workqueue.TypedDelayingQueueConfig[T]{
		Name:            cfg.Name,
		MetricsProvider: cfg.MetricsProvider,
		Clock:           cfg.Clock,
		Queue:           inner,
	})
	return workqueue.NewTypedRateLimitingQueueWithConfig(limiter, workqueue.TypedRateLimitingQueueConfig[T]{
		Name:            cfg.Name,
		MetricsProvider: cfg.MetricsProvider,
		Clock:           cfg.Clock,
		DelayingQueue:   delaying,
	})
}
