package testenv

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Metric returns the sum of the samples of a metric whose labels include the given ones, from
// the controller's /metrics; 0 when there are none.
func (c *Controller) Metric(name string, labels map[string]string) (float64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return ScrapeMetric(ctx, "http://"+c.MetricsAddr+"/metrics", name, labels)
}

// APIServerMetric returns the sum of a kube-apiserver metric's samples whose labels include
// the given ones, e.g. apiserver_request_total{verb="POST",resource="secrets"}.
func (e *Env) APIServerMetric(ctx context.Context, name string, labels map[string]string) (float64, error) {
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsConfig(e.caData)}}
	body, status := get(ctx, client, e.APIServerURL+"/metrics", e.tokens["admin"])
	if status != http.StatusOK {
		return 0, fmt.Errorf("GET kube-apiserver /metrics: status %d", status)
	}
	return sumSamples(bytes.NewReader(body), name, labels)
}

// sumSamples adds up the samples of the metric name, in Prometheus text format, whose labels
// include labels.
func sumSamples(r io.Reader, name string, labels map[string]string) (float64, error) {
	var parser expfmt.TextParser
	families, err := parser.TextToMetricFamilies(r)
	if err != nil {
		return 0, err
	}
	family, ok := families[name]
	if !ok {
		return 0, nil
	}
	samples, err := expfmt.ExtractSamples(&expfmt.DecodeOptions{Timestamp: model.Now()}, family)
	if err != nil {
		return 0, err
	}
	var sum float64
next:
	for _, s := range samples {
		for k, v := range labels {
			if string(s.Metric[model.LabelName(k)]) != v {
				continue next
			}
		}
		sum += float64(s.Value)
	}
	return sum, nil
}

// tlsConfig trusts the API server's CA.
func tlsConfig(caData []byte) *tls.Config {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caData)
	return &tls.Config{RootCAs: pool}
}

// ScrapeMetric returns the sum of a metric's samples whose labels include the given ones, from a
// Prometheus endpoint such as a controller Pod's http://<pod IP>:8080/metrics.
func ScrapeMetric(ctx context.Context, url, name string, labels map[string]string) (float64, error) {
	body, status := get(ctx, http.DefaultClient, url, "")
	if status != http.StatusOK {
		return 0, fmt.Errorf("GET %s: status %d", url, status)
	}
	return sumSamples(bytes.NewReader(body), name, labels)
}
