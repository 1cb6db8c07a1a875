package main

import (
	"net/http"
	"regexp"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"k8s.io/client-go/util/workqueue"

	"github.com/mumoshu/aws-secret-controller/pkg/awssm"
)

const metricsNamespace = "aws_secret_controller"

// metrics are the controller's Prometheus metrics, in a registry of their own.
type metrics struct {
	registry     *prometheus.Registry
	awsCalls     *prometheus.CounterVec
	syncs        *prometheus.CounterVec
	syncDuration prometheus.Histogram
}

func newMetrics() *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		awsCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metricsNamespace,
			Name:      "aws_api_calls_total",
			Help:      "Calls to AWS Secrets Manager by operation and result (success or the Ready reason of the error).",
		}, []string{"operation", "result"}),
		syncs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metricsNamespace,
			Name:      "syncs_total",
			Help:      "Syncs of AWSSecrets by result: Unchanged, Created, Updated, Replaced, Deleting (being deleted, nothing written), or the Ready reason of a failure.",
		}, []string{"result"}),
		syncDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: metricsNamespace,
			Name:      "sync_duration_seconds",
			Help:      "How long one sync of an AWSSecret takes.",
			Buckets:   prometheus.ExponentialBuckets(0.0005, 4, 10),
		}),
	}
	m.registry.MustRegister(m.awsCalls, m.syncs, m.syncDuration,
		// go_gc_heap_live_bytes (the heap the last GC found live) on top of the default Go
		// metrics: the figure the memory sizing in docs/benchmarks.md is based on.
		collectors.NewGoCollector(collectors.WithGoCollectorRuntimeMetrics(collectors.GoRuntimeMetricsRule{Matcher: regexp.MustCompile(`^/gc/heap/live:bytes$`)})),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	workqueue.SetProvider(newWorkqueueMetrics(m.registry))
	return m
}

func (m *metrics) observeAWSCall(operation, result string) {
	m.awsCalls.WithLabelValues(operation, result).Inc()
}

func (m *metrics) observeSync(result string, d time.Duration) {
	m.syncs.WithLabelValues(result).Inc()
	m.syncDuration.Observe(d.Seconds())
}

// registerCache exports the version cache's counters.
func (m *metrics) registerCache(c *awssm.Cache) {
	m.registry.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: metricsNamespace, Name: "version_cache_hits_total",
			Help: "Reads of a secret version answered without a call of their own to Secrets Manager.",
		}, func() float64 { return float64(c.Stats().Hits) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: metricsNamespace, Name: "version_cache_misses_total",
			Help: "Reads of a secret version that called Secrets Manager.",
		}, func() float64 { return float64(c.Stats().Misses) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: metricsNamespace, Name: "version_cache_entries",
			Help: "Secret versions held in memory.",
		}, func() float64 { return float64(c.Stats().Entries) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: metricsNamespace, Name: "version_cache_bytes",
			Help: "Approximate memory held by cached secret versions.",
		}, func() float64 { return float64(c.Stats().Bytes) }),
	)
}

func (m *metrics) handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{}))
	return mux
}

// workqueueMetrics provides client-go's workqueue metrics under the names Kubernetes components
// use (workqueue_depth, workqueue_adds_total, ...), labelled by queue name.
type workqueueMetrics struct {
	depth, longestRunning, unfinished *prometheus.GaugeVec
	adds, retries                     *prometheus.CounterVec
	latency, workDuration             *prometheus.HistogramVec
}

func newWorkqueueMetrics(r prometheus.Registerer) *workqueueMetrics {
	labels := []string{"name"}
	buckets := prometheus.ExponentialBuckets(10e-9, 10, 12)
	w := &workqueueMetrics{
		depth: prometheus.NewGaugeVec(prometheus.GaugeOpts{Subsystem: "workqueue", Name: "depth",
			Help: "Current depth of the workqueue."}, labels),
		adds: prometheus.NewCounterVec(prometheus.CounterOpts{Subsystem: "workqueue", Name: "adds_total",
			Help: "Adds handled by the workqueue."}, labels),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Subsystem: "workqueue", Name: "queue_duration_seconds",
			Help: "Seconds an item stays in the workqueue before being processed.", Buckets: buckets}, labels),
		workDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Subsystem: "workqueue", Name: "work_duration_seconds",
			Help: "Seconds processing an item from the workqueue takes.", Buckets: buckets}, labels),
		unfinished: prometheus.NewGaugeVec(prometheus.GaugeOpts{Subsystem: "workqueue", Name: "unfinished_work_seconds",
			Help: "Seconds of work in progress not yet observed by work_duration."}, labels),
		longestRunning: prometheus.NewGaugeVec(prometheus.GaugeOpts{Subsystem: "workqueue", Name: "longest_running_processor_seconds",
			Help: "Seconds the longest running processor has been running."}, labels),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{Subsystem: "workqueue", Name: "retries_total",
			Help: "Retries handled by the workqueue."}, labels),
	}
	r.MustRegister(w.depth, w.adds, w.latency, w.workDuration, w.unfinished, w.longestRunning, w.retries)
	return w
}

func (w *workqueueMetrics) NewDepthMetric(name string) workqueue.GaugeMetric {
	return w.depth.WithLabelValues(name)
}
func (w *workqueueMetrics) NewAddsMetric(name string) workqueue.CounterMetric {
	return w.adds.WithLabelValues(name)
}
func (w *workqueueMetrics) NewLatencyMetric(name string) workqueue.HistogramMetric {
	return w.latency.WithLabelValues(name)
}
func (w *workqueueMetrics) NewWorkDurationMetric(name string) workqueue.HistogramMetric {
	return w.workDuration.WithLabelValues(name)
}
func (w *workqueueMetrics) NewUnfinishedWorkSecondsMetric(name string) workqueue.SettableGaugeMetric {
	return w.unfinished.WithLabelValues(name)
}
func (w *workqueueMetrics) NewLongestRunningProcessorSecondsMetric(name string) workqueue.SettableGaugeMetric {
	return w.longestRunning.WithLabelValues(name)
}
func (w *workqueueMetrics) NewRetriesMetric(name string) workqueue.CounterMetric {
	return w.retries.WithLabelValues(name)
}
