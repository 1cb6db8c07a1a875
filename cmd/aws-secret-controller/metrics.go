package main

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/tools/leaderelection"
	clientmetrics "k8s.io/client-go/tools/metrics"
	"k8s.io/client-go/util/workqueue"

	"github.com/mumoshu/aws-secret-controller/pkg/apis/mumoshu/v1alpha1"
	"github.com/mumoshu/aws-secret-controller/pkg/awssm"
	listers "github.com/mumoshu/aws-secret-controller/pkg/generated/listers/mumoshu/v1alpha1"
)

const metricsNamespace = "aws_secret_controller"

// metrics are the controller's Prometheus metrics, in a registry of their own.
type metrics struct {
	registry     *prometheus.Registry
	awsCalls     *prometheus.CounterVec
	awsAttempts  *prometheus.CounterVec
	assumeRole   *prometheus.CounterVec
	syncs        *prometheus.CounterVec
	syncDuration prometheus.Histogram
	// leader is client-go's leader_election_master_status: 1 while this replica leads.
	leader *prometheus.GaugeVec
	// restLatency and restResults are client-go's REST client metrics.
	restLatency *prometheus.HistogramVec
	restResults *prometheus.CounterVec
}

func newMetrics() *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		awsCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metricsNamespace,
			Name:      "aws_api_calls_total",
			Help:      "Operations on AWS Secrets Manager (each up to 3 SDK attempts) by operation and result (success or the Ready reason of the error).",
		}, []string{"operation", "result"}),
		awsAttempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metricsNamespace,
			Name:      "aws_api_attempts_total",
			Help:      "HTTP attempts on AWS Secrets Manager, SDK retries included, by operation and result (success, Throttled or error).",
		}, []string{"operation", "result"}),
		assumeRole: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metricsNamespace,
			Name:      "aws_sts_assume_role_calls_total",
			Help:      "STS AssumeRole calls for namespace roles, by result (success or the Ready reason of the error).",
		}, []string{"result"}),
		syncs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metricsNamespace,
			Name:      "syncs_total",
			Help:      "Syncs of AWSSecrets by result: Unchanged, Created, Updated, Replaced, Deleting (being deleted, nothing written), Waiting (parked on another sync's read of a version), or the Ready reason of a failure.",
		}, []string{"result"}),
		syncDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: metricsNamespace,
			Name:      "sync_duration_seconds",
			Help:      "How long one sync of an AWSSecret takes.",
			Buckets:   prometheus.ExponentialBuckets(0.0005, 4, 10),
		}),
	}
	m.leader = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "leader_election_master_status",
		Help: "1 while this replica leads (holds the Lease, or runs without leader election), else 0; by Lease name.",
	}, []string{"name"})
	m.restLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "rest_client_request_duration_seconds",
		Help:    "Latency of the controller's requests to the Kubernetes API, by verb and host.",
		Buckets: prometheus.ExponentialBuckets(0.001, 4, 9),
	}, []string{"verb", "host"})
	m.restResults = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "rest_client_requests_total",
		Help: "The controller's requests to the Kubernetes API, by HTTP status code, method and host.",
	}, []string{"code", "method", "host"})
	m.registry.MustRegister(m.leader, m.restLatency, m.restResults)
	// Exported from the start, so that rules and panels find a series before the first call.
	m.assumeRole.WithLabelValues("success")
	m.registry.MustRegister(m.awsCalls, m.awsAttempts, m.assumeRole, m.syncs, m.syncDuration,
		// go_gc_heap_live_bytes (the heap the last GC found live) on top of the default Go
		// metrics: the figure the memory sizing in docs/benchmarks.md is based on.
		collectors.NewGoCollector(collectors.WithGoCollectorRuntimeMetrics(collectors.GoRuntimeMetricsRule{Matcher: regexp.MustCompile(`^/gc/heap/live:bytes$`)})),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	workqueue.SetProvider(newWorkqueueMetrics(m.registry))
	// Both are process-wide and take the first registration only.
	leaderelection.SetProvider(leaderMetrics{m.leader})
	clientmetrics.Register(clientmetrics.RegisterOpts{RequestLatency: restLatency{m.restLatency}, RequestResult: restResults{m.restResults}})
	return m
}

// leaderMetrics sets leader_election_master_status from client-go's leader election.
type leaderMetrics struct{ g *prometheus.GaugeVec }

func (p leaderMetrics) NewLeaderMetric() leaderelection.LeaderMetric { return p }
func (p leaderMetrics) On(name string)                               { p.g.WithLabelValues(name).Set(1) }
func (p leaderMetrics) Off(name string)                              { p.g.WithLabelValues(name).Set(0) }
func (p leaderMetrics) SlowpathExercised(string)                     {}

type restLatency struct{ h *prometheus.HistogramVec }

func (r restLatency) Observe(_ context.Context, verb string, u url.URL, latency time.Duration) {
	r.h.WithLabelValues(verb, u.Host).Observe(latency.Seconds())
}

type restResults struct{ c *prometheus.CounterVec }

func (r restResults) Increment(_ context.Context, code, method, host string) {
	r.c.WithLabelValues(code, method, host).Inc()
}

// registerAWSSecrets exports how many AWSSecrets there are by namespace, Ready status and
// reason, counted from the informer's cache at each scrape: right after restarts and
// deletions, and bounded by namespaces times reasons, never one series per object. An AWSSecret
// whose current generation has no Ready condition yet counts as Unknown, Pending.
func (m *metrics) registerAWSSecrets(lister listers.AWSSecretLister) {
	m.registry.MustRegister(&awsSecretsCollector{lister: lister, desc: prometheus.NewDesc(
		metricsNamespace+"_awssecrets",
		"AWSSecrets by namespace, Ready status (True, False, Unknown) and reason (Synced, a failure's reason, or Pending before the current generation's first sync).",
		[]string{"namespace", "ready", "reason"}, nil)})
}

type awsSecretsCollector struct {
	lister listers.AWSSecretLister
	desc   *prometheus.Desc
}

func (c *awsSecretsCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *awsSecretsCollector) Collect(ch chan<- prometheus.Metric) {
	all, err := c.lister.List(labels.Everything())
	if err != nil {
		return
	}
	type key struct{ namespace, ready, reason string }
	counts := map[key]int{}
	for _, a := range all {
		k := key{a.Namespace, "Unknown", "Pending"}
		if cond := meta.FindStatusCondition(a.Status.Conditions, v1alpha1.ConditionReady); cond != nil && cond.ObservedGeneration >= a.Generation {
			k.ready, k.reason = string(cond.Status), cond.Reason
		}
		counts[k]++
	}
	for k, n := range counts {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(n), k.namespace, k.ready, k.reason)
	}
}

func (m *metrics) observeAWSCall(operation, result string) {
	m.awsCalls.WithLabelValues(operation, result).Inc()
}

func (m *metrics) observeAWSAttempt(operation, result string) {
	m.awsAttempts.WithLabelValues(operation, result).Inc()
}

func (m *metrics) observeAssumeRole(result string) {
	m.assumeRole.WithLabelValues(result).Inc()
}

func (m *metrics) observeSync(result string, d time.Duration) {
	m.syncs.WithLabelValues(result).Inc()
	m.syncDuration.Observe(d.Seconds())
}

// counter and gauge read a metric's value from a function at each scrape.
func counter(name, help string, value func() float64) prometheus.Collector {
	return prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: metricsNamespace, Name: name, Help: help}, value)
}

func gauge(name, help string, value func() float64) prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: metricsNamespace, Name: name, Help: help}, value)
}

// registerCache exports the version cache's counters, its holds and its circuit.
func (m *metrics) registerCache(c *awssm.Cache) {
	stat := func(f func(awssm.CacheStats) float64) func() float64 {
		return func() float64 { return f(c.Stats()) }
	}
	m.registry.MustRegister(
		counter("version_cache_hits_total", "Reads of a secret version answered without a call of their own to Secrets Manager.",
			stat(func(s awssm.CacheStats) float64 { return float64(s.Hits) })),
		counter("version_cache_misses_total", "Reads of a secret version that called Secrets Manager.",
			stat(func(s awssm.CacheStats) float64 { return float64(s.Misses) })),
		gauge("version_cache_entries", "Secret versions held in memory.",
			stat(func(s awssm.CacheStats) float64 { return float64(s.Entries) })),
		gauge("version_cache_bytes", "Approximate memory held by cached secret versions.",
			stat(func(s awssm.CacheStats) float64 { return float64(s.Bytes) })),
		gauge("aws_read_holds", "Secret versions whose last read failed and that every AWSSecret pinning them waits for (no call until the hold ends).",
			stat(func(s awssm.CacheStats) float64 { return float64(s.Holds) })),
		gauge("aws_circuit_open", "1 while Secrets Manager is not answering and reads are stopped but for one probe at a time, else 0.",
			stat(func(s awssm.CacheStats) float64 {
				if s.CircuitOpen {
					return 1
				}
				return 0
			})),
		gauge("aws_circuit_parked_reads", "Reads waiting for the circuit to close.",
			stat(func(s awssm.CacheStats) float64 { return float64(s.Parked) })),
	)
}

// registerPacer exports the rate the pacer allows, and how often throttling lowered it.
func (m *metrics) registerPacer(p *awssm.Pacer) {
	m.registry.MustRegister(
		gauge("aws_api_rate_limit", "Requests per second to Secrets Manager the controller allows itself now: +Inf with no cap and no throttling.",
			func() float64 { return p.Stats().Limit }),
		counter("aws_api_rate_decreases_total", "Times throttling by Secrets Manager lowered the request rate (at most once a second).",
			func() float64 { return float64(p.Stats().Decreases) }),
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
