package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	yaml "go.yaml.in/yaml/v3"
	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// alertRules is files/alerts.yaml.
type alertRules struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

func alertsFile() string {
	return filepath.Join(repoRoot, "charts", "aws-secret-controller", "files", "alerts.yaml")
}

func readAlerts(t *testing.T) alertRules {
	t.Helper()
	var r alertRules
	b, err := os.ReadFile(alertsFile())
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	return r
}

// TestMonitoringFilesAgree: the kustomize files carry the chart's alerts and dashboard.
func TestMonitoringFilesAgree(t *testing.T) {
	chart, _ := os.ReadFile(filepath.Join(repoRoot, "charts", "aws-secret-controller", "files", "dashboard.json"))
	plain, _ := os.ReadFile(filepath.Join(repoRoot, "manifests", "monitoring", "dashboard.json"))
	if len(chart) == 0 || !bytes.Equal(chart, plain) {
		t.Error("manifests/monitoring/dashboard.json differs from the chart's files/dashboard.json")
	}
	var rule struct {
		Spec any `yaml:"spec"`
	}
	var alerts any
	b, _ := os.ReadFile(filepath.Join(repoRoot, "manifests", "monitoring", "prometheusrule.yaml"))
	a, _ := os.ReadFile(alertsFile())
	if err := yaml.Unmarshal(b, &rule); err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(a, &alerts); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(rule.Spec, alerts) {
		t.Error("manifests/monitoring/prometheusrule.yaml's spec differs from the chart's files/alerts.yaml")
	}
}

// scrape is one reading of a controller's /metrics, in the text format.
type scrape struct {
	at   time.Time
	text string
}

func scrapeMetrics(t *testing.T, p *controllerProcess) scrape {
	t.Helper()
	resp, err := http.Get("http://" + p.MetricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %d, %v", resp.StatusCode, err)
	}
	return scrape{at: time.Now(), text: string(out)}
}

// inputSeries turns two scrapes into promtool input series over 40 minutes at one sample a
// minute: counters (and histogram buckets, counts and sums) go on at the rate measured between
// the scrapes, gauges stay at the second's value. up{job="aws-secret-controller"} is 1 unless
// absent.
func inputSeries(a, b scrape, up bool) []map[string]string {
	dt := b.at.Sub(a.at).Seconds()
	type sample struct {
		labels  string
		v       float64
		counter bool
	}
	flatten := func(s scrape) map[string]sample {
		out := map[string]sample{}
		var parser expfmt.TextParser
		families, err := parser.TextToMetricFamilies(strings.NewReader(s.text))
		if err != nil {
			panic(err)
		}
		for name, f := range families {
			for _, m := range f.GetMetric() {
				base := map[string]string{"job": "aws-secret-controller", "instance": "controller"}
				for _, l := range m.GetLabel() {
					base[l.GetName()] = l.GetValue()
				}
				add := func(n string, extra map[string]string, v float64, counter bool) {
					ls := map[string]string{}
					for k, v := range base {
						ls[k] = v
					}
					for k, v := range extra {
						ls[k] = v
					}
					key := n + labelString(ls)
					out[key] = sample{labelString(ls), v, counter}
				}
				switch f.GetType().String() {
				case "COUNTER":
					add(name, nil, m.GetCounter().GetValue(), true)
				case "GAUGE":
					add(name, nil, m.GetGauge().GetValue(), false)
				case "UNTYPED":
					add(name, nil, m.GetUntyped().GetValue(), false)
				case "HISTOGRAM":
					h := m.GetHistogram()
					for _, bk := range h.GetBucket() {
						add(name+"_bucket", map[string]string{"le": fmt.Sprint(bk.GetUpperBound())}, float64(bk.GetCumulativeCount()), true)
					}
					add(name+"_bucket", map[string]string{"le": "+Inf"}, float64(h.GetSampleCount()), true)
					add(name+"_count", nil, float64(h.GetSampleCount()), true)
					add(name+"_sum", nil, h.GetSampleSum(), true)
				}
			}
		}
		return out
	}
	before, after := flatten(a), flatten(b)
	var series []map[string]string
	keys := make([]string, 0, len(after))
	for k := range after {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		s := after[k]
		var values []string
		for i := range 41 {
			v := s.v
			if s.counter {
				v = before[k].v + (s.v-before[k].v)*float64(i)*60/dt
			}
			values = append(values, formatValue(v))
		}
		name := k[:strings.Index(k, "{")]
		series = append(series, map[string]string{"series": name + s.labels, "values": strings.Join(values, " ")})
	}
	if up {
		series = append(series, map[string]string{"series": `up{job="aws-secret-controller",instance="controller"}`, "values": "1x40"})
	}
	return series
}

func labelString(ls map[string]string) string {
	keys := make([]string, 0, len(ls))
	for k := range ls {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%q", k, ls[k]))
	}
	return "{" + strings.Join(parts, ",") + "}"
}

func formatValue(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.IsNaN(v):
		return "NaN"
	}
	return fmt.Sprintf("%g", v)
}

// firing is an alert expected to fire: its labels besides alertname and the rule's own.
type firing map[string]string

// promtoolCase is one promtool test: input series and, for every alert, what fires at 35 minutes.
type promtoolCase struct {
	name   string
	series []map[string]string
	fires  map[string][]firing
}

// runPromtool evaluates every alert in every case with promtool, which fails on any alert that
// fires when it should not, or does not when it should.
func runPromtool(t *testing.T, rules alertRules, cases []promtoolCase) {
	t.Helper()
	promtool := filepath.Join(env.BinDir, "promtool")
	var tests []any
	for _, c := range cases {
		var alertTests []any
		for _, g := range rules.Groups {
			for _, r := range g.Rules {
				exp := []any{}
				for _, f := range c.fires[r.Alert] {
					labels := map[string]string{}
					for k, v := range r.Labels {
						labels[k] = v
					}
					for k, v := range f {
						if !strings.HasPrefix(k, "$") {
							labels[k] = v
						}
					}
					annotations := map[string]string{}
					for k, v := range r.Annotations {
						annotations[k] = renderAnnotation(v, f)
					}
					exp = append(exp, map[string]any{"exp_labels": labels, "exp_annotations": annotations})
				}
				alertTests = append(alertTests, map[string]any{"eval_time": "35m", "alertname": r.Alert, "exp_alerts": exp})
			}
		}
		tests = append(tests, map[string]any{"name": c.name, "interval": "1m", "input_series": c.series, "alert_rule_test": alertTests})
	}
	b, err := yaml.Marshal(map[string]any{"rule_files": []string{alertsFile()}, "evaluation_interval": "1m", "tests": tests})
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "alerts_test.yaml")
	if err := os.WriteFile(file, b, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(promtool, "test", "rules", file).CombinedOutput()
	if err != nil {
		t.Errorf("promtool test rules: %v\n%s", err, out)
	}
}

// renderAnnotation fills in what the alerts' annotations use: $labels.x and $value (given as
// the label "$value").
func renderAnnotation(s string, f firing) string {
	s = strings.ReplaceAll(s, "{{ $value }}", f["$value"])
	return regexp.MustCompile(`\{\{ \$labels\.(\w+) \}\}`).ReplaceAllStringFunc(s, func(m string) string {
		return f[regexp.MustCompile(`\$labels\.(\w+)`).FindStringSubmatch(m)[1]]
	})
}

// TestAlerts runs the real controller in a healthy state and in broken ones (a bad versionId,
// Secrets Manager unreachable, a Lease another holder keeps), scrapes it twice in each, and has
// promtool evaluate every alert over those series: each broken state fires its alert, the
// healthy state fires none. The alerts no state here can bring about (throttling, a queue
// backing up) are given series made from the healthy scrape with the one metric they watch
// changed, and must fire on those. Every metric a rule or a dashboard panel names must be in
// the scraped output.
func TestAlerts(t *testing.T) {
	if _, err := os.Stat(filepath.Join(env.BinDir, "promtool")); err != nil {
		t.Fatalf("no promtool in %s: `make test` and `make alerts-test` build it (%v)", env.BinDir, err)
	}
	rules := readAlerts(t)
	ns := newNamespace(t, "alerts")
	good := createSecret(t, "e2e/alerts/good", `{"k":"v"}`)
	createAWSSecret(t, ns, "good", "e2e/alerts/good", good)
	ctrl := startController(t, "alerts", env.Kubeconfig, nil, "--namespace", ns)
	waitSynced(t, ns, "good", good)
	healthy := [2]scrape{scrapeMetrics(t, ctrl)}
	time.Sleep(3 * time.Second) // two readings some seconds apart: the rates come from them
	healthy[1] = scrapeMetrics(t, ctrl)

	createAWSSecret(t, ns, "bad", "e2e/alerts/good", "00000000-0000-4000-8000-000000000000")
	waitReason(t, ns, "bad", "VersionNotFound")
	bad := [2]scrape{scrapeMetrics(t, ctrl)}
	time.Sleep(3 * time.Second)
	bad[1] = scrapeMetrics(t, ctrl)

	// Secrets Manager unreachable: a controller of its own, pointed at a closed port.
	nsDown := newNamespace(t, "alerts-down")
	createAWSSecret(t, nsDown, "needs-aws", "e2e/alerts/good", good)
	down := startController(t, "alerts-down", env.Kubeconfig, nil, "--namespace", nsDown, "--aws-endpoint", "http://127.0.0.1:1")
	waitReason(t, nsDown, "needs-aws", "AWSError")
	eventually(t, 30*time.Second, "the circuit to open", func() (bool, string) {
		return down.metric(t, "aws_secret_controller_aws_circuit_open", nil) == 1, "still closed"
	})
	unreachable := [2]scrape{scrapeMetrics(t, down)}
	time.Sleep(3 * time.Second)
	unreachable[1] = scrapeMetrics(t, down)

	// No leader: the Lease is held by someone else for an hour.
	nsFollower := newNamespace(t, "alerts-follower")
	now := metav1.NewMicroTime(time.Now())
	if _, err := kube.CoordinationV1().Leases(nsFollower).Create(context.Background(), &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: "aws-secret-controller"},
		Spec:       coordinationv1.LeaseSpec{HolderIdentity: ptr.To("someone-else"), LeaseDurationSeconds: ptr.To[int32](3600), AcquireTime: &now, RenewTime: &now},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	follower := startController(t, "alerts-follower", env.Kubeconfig, nil, "--namespace", nsFollower, "--leader-elect", "--leader-elect-namespace", nsFollower)
	eventually(t, 30*time.Second, "the follower's metrics", func() (bool, string) {
		return strings.Contains(scrapeMetrics(t, follower).text, `leader_election_master_status{name="aws-secret-controller"} 0`), "no leader metric yet"
	})
	noLeader := [2]scrape{scrapeMetrics(t, follower)}
	time.Sleep(3 * time.Second)
	noLeader[1] = scrapeMetrics(t, follower)

	// Every metric a rule or panel names is exported.
	var exprs []string
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			exprs = append(exprs, r.Expr)
		}
	}
	dashboard, _ := os.ReadFile(filepath.Join(repoRoot, "charts", "aws-secret-controller", "files", "dashboard.json"))
	for _, m := range regexp.MustCompile(`"expr": "((?:[^"\\]|\\.)*)"`).FindAllStringSubmatch(string(dashboard), -1) {
		exprs = append(exprs, strings.ReplaceAll(m[1], `\"`, `"`))
	}
	exported := healthy[1].text + unreachable[1].text + noLeader[1].text
	for _, name := range metricNames(exprs) {
		if name == "up" {
			continue // Prometheus's own
		}
		if !regexp.MustCompile(`(?m)^` + name + `[{ ]`).MatchString(exported) {
			t.Errorf("%s, named by a rule or a panel, is not exported", name)
		}
	}

	withoutUp := inputSeries(healthy[0], healthy[1], false)
	notReady := firing{"namespace": ns, "reason": "VersionNotFound", "$value": "1"}
	downNotReady := firing{"namespace": nsDown, "reason": "AWSError", "$value": "1"}
	runPromtool(t, rules, []promtoolCase{
		{name: "healthy", series: inputSeries(healthy[0], healthy[1], true)},
		{name: "a bad versionId", series: inputSeries(bad[0], bad[1], true), fires: map[string][]firing{"AWSSecretNotReady": {notReady}}},
		{name: "Secrets Manager unreachable", series: inputSeries(unreachable[0], unreachable[1], true), fires: map[string][]firing{
			"AWSSecretControllerAWSFailing": {{}}, "AWSSecretNotReady": {downNotReady},
		}},
		{name: "no leader", series: inputSeries(noLeader[0], noLeader[1], true), fires: map[string][]firing{"AWSSecretControllerNoLeader": {{}}}},
		{name: "no scrape target", series: withoutUp, fires: map[string][]firing{"AWSSecretControllerAbsent": {{}}}},
		{name: "throttled (the healthy series and a throttled attempt a second)", series: append(inputSeries(healthy[0], healthy[1], true),
			map[string]string{"series": `aws_secret_controller_aws_api_attempts_total{job="aws-secret-controller",instance="controller",operation="GetSecretValue",result="Throttled"}`, "values": "0+60x40"}),
			fires: map[string][]firing{"AWSSecretControllerThrottled": {{}}}},
		{name: "queue backing up (the healthy series and a queue whose items wait 10 to 100 s)", series: append(dropMetric(inputSeries(healthy[0], healthy[1], true), "workqueue_"),
			map[string]string{"series": `workqueue_depth{job="aws-secret-controller",instance="controller",name="aws-secret-controller"}`, "values": "500x40"},
			map[string]string{"series": `workqueue_queue_duration_seconds_bucket{job="aws-secret-controller",instance="controller",name="aws-secret-controller",le="10"}`, "values": "0x40"},
			map[string]string{"series": `workqueue_queue_duration_seconds_bucket{job="aws-secret-controller",instance="controller",name="aws-secret-controller",le="100"}`, "values": "0+60x40"},
			map[string]string{"series": `workqueue_queue_duration_seconds_bucket{job="aws-secret-controller",instance="controller",name="aws-secret-controller",le="+Inf"}`, "values": "0+60x40"}),
			fires: map[string][]firing{"AWSSecretControllerQueueBackingUp": {{}}}},
	})
}

// dropMetric leaves out the series whose name starts with prefix.
func dropMetric(series []map[string]string, prefix string) []map[string]string {
	return slices.DeleteFunc(series, func(s map[string]string) bool { return strings.HasPrefix(s["series"], prefix) })
}

// metricNames returns the metric names PromQL expressions use: identifiers outside braces,
// by(...) lists and string literals that are not functions or keywords.
func metricNames(exprs []string) []string {
	keywords := map[string]bool{"sum": true, "by": true, "rate": true, "max": true, "histogram_quantile": true, "absent": true,
		"or": true, "and": true, "on": true, "le": true, "without": true, "increase": true, "min": true, "avg": true}
	seen := map[string]bool{}
	var names []string
	for _, e := range exprs {
		e = regexp.MustCompile(`\{[^}]*\}|"[^"]*"|\[[^\]]*\]|\b(by|without) \([^)]*\)`).ReplaceAllString(e, " ")
		for _, id := range regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`).FindAllString(e, -1) {
			if !keywords[id] && !seen[id] {
				seen[id] = true
				names = append(names, id)
			}
		}
	}
	sort.Strings(names)
	return names
}
