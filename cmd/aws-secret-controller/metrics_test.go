package main

import (
	"fmt"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/mumoshu/aws-secret-controller/pkg/apis/mumoshu/v1alpha1"
	listers "github.com/mumoshu/aws-secret-controller/pkg/generated/listers/mumoshu/v1alpha1"
)

// TestAWSSecretsByReadiness: the gauge counts the AWSSecrets in the cache by namespace, Ready
// status and reason, a generation not yet synced as Unknown/Pending, and follows deletions.
func TestAWSSecretsByReadiness(t *testing.T) {
	indexer := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{})
	add := func(ns, name string, generation int64, cond *metav1.Condition) {
		a := &v1alpha1.AWSSecret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Generation: generation}}
		if cond != nil {
			a.Status.Conditions = []metav1.Condition{*cond}
		}
		if err := indexer.Add(a); err != nil {
			t.Fatal(err)
		}
	}
	ready := func(status metav1.ConditionStatus, reason string, generation int64) *metav1.Condition {
		return &metav1.Condition{Type: v1alpha1.ConditionReady, Status: status, Reason: reason, ObservedGeneration: generation}
	}
	add("a", "one", 1, ready(metav1.ConditionTrue, v1alpha1.ReasonSynced, 1))
	add("a", "two", 1, ready(metav1.ConditionTrue, v1alpha1.ReasonSynced, 1))
	add("a", "bad", 1, ready(metav1.ConditionFalse, v1alpha1.ReasonVersionNotFound, 1))
	add("b", "new", 1, nil)
	add("b", "bumped", 2, ready(metav1.ConditionTrue, v1alpha1.ReasonSynced, 1))
	m := &metrics{}
	m.registry = prometheus.NewRegistry()
	m.registerAWSSecrets(listers.NewAWSSecretLister(indexer))
	want := `{namespace="a",ready="False",reason="VersionNotFound"} 1
{namespace="a",ready="True",reason="Synced"} 2
{namespace="b",ready="Unknown",reason="Pending"} 2
`
	if got := series(t, m.registry, "aws_secret_controller_awssecrets"); got != want {
		t.Errorf("series:\n%s\nwant:\n%s", got, want)
	}
	// Deleted objects leave the count, and a namespace with none leaves the output.
	for _, key := range []string{"b/new", "b/bumped"} {
		obj, _, _ := indexer.GetByKey(key)
		if err := indexer.Delete(obj); err != nil {
			t.Fatal(err)
		}
	}
	if got := series(t, m.registry, "aws_secret_controller_awssecrets"); strings.Count(got, "\n") != 2 || strings.Contains(got, `"b"`) {
		t.Errorf("series after deleting namespace b's AWSSecrets:\n%s", got)
	}
}

// series renders a gauge's series from a registry, one line each, sorted as Gather sorts them.
func series(t *testing.T, g prometheus.Gatherer, name string) string {
	t.Helper()
	families, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			fmt.Fprintf(&b, "{%s} %g\n", strings.Join(labels, ","), m.GetGauge().GetValue())
		}
	}
	return b.String()
}
