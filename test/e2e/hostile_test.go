package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mumoshu/aws-secret-controller/internal/capacity"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	"github.com/mumoshu/aws-secret-controller/pkg/apis/mumoshu/v1alpha1"
	"github.com/mumoshu/aws-secret-controller/pkg/generated/clientset/versioned"
)

// TestHostileAndNoisyNeighbours runs one controller for three namespaces: a hostile one whose
// AWSSecrets hold every template and mapping bomb a tenant can write, a noisy one that creates
// hundreds of AWSSecrets at once, and a quiet one that bumps its versionId. The controller
// must neither die nor pass the shipped memory limit, refuse each bomb with its reason and no
// form of the value in any status, event or log line, let the quiet namespace's bump overtake
// the noisy backlog, and still converge the noisy namespace.
func TestHostileAndNoisyNeighbours(t *testing.T) {
	hostile := newNamespace(t, "hostile")
	noisy := newNamespace(t, "noisy")
	quiet := newNamespace(t, "quiet")

	// The hostile tenant's secrets: a password that holds what escaping changes, 30 keys to
	// range over, and a value nested 500 deep.
	password := newValue(`pa"ss\wo` + "\nrd")
	keys := map[string]string{"password": password}
	for i := range 30 {
		keys[fmt.Sprintf("k%02d", i)] = "v"
	}
	content, _ := json.Marshal(keys)
	flatID := "e2e/hostile/flat"
	flat := createSecret(t, flatID, string(content))
	deepID := "e2e/hostile/deep"
	deep := createSecret(t, deepID, nestedJSON(500, 100, newValue("leaf")))
	// 499 levels reach the innermost object, which has no member "missing".
	path := strings.Repeat("a.", 499) + "missing"

	// A slow client makes the noisy namespace's backlog last, so that the quiet bump has a
	// queue to overtake; few workers keep the syncs already in flight when it arrives (which
	// no queue order can overtake) few beside that backlog.
	// It runs with the shipped Deployment's GOMEMLIMIT (internal/capacity), as it would in a cluster.
	shipped := capacity.For(capacity.DefaultObjects)
	p := startController(t, "controller", env.Kubeconfig, []string{fmt.Sprintf("GOMEMLIMIT=%dMiB", shipped.GoMemLimitMiB)}, "--kube-api-qps", "40", "--kube-api-burst", "40", "--workers", "4")

	quote24 := "{{ .password" + strings.Repeat(" | quote", 24) + " }}"
	bombs := map[string]struct {
		spec   v1alpha1.AWSSecretSpec
		reason string
	}{
		"doubling":  {spec: templateSpec(flatID, flat, map[string]string{"out": `{{ $a := .password }}{{ range $k, $v := . }}{{ $a = print $a $a }}{{ end }}{{ $a }}`}), reason: v1alpha1.ReasonInvalidTemplate},
		"quote24":   {spec: templateSpec(flatID, flat, map[string]string{"out": quote24}), reason: v1alpha1.ReasonInvalidTemplate},
		"width":     {spec: templateSpec(flatID, flat, map[string]string{"out": strings.Repeat(`{{ printf "%1000000d" 1 }}`, 40)}), reason: v1alpha1.ReasonInvalidTemplate},
		"many-keys": {spec: templateSpec(flatID, flat, manyTemplateKeys(64, `{{ range $k, $v := . }}{{ printf "%4096d" 1 }}{{ printf "%4096d" 1 }}{{ end }}`)), reason: v1alpha1.ReasonInvalidTemplate},
		"b64-index": {spec: templateSpec(flatID, flat, map[string]string{"out": `{{ index . (b64enc .password) }}`}), reason: v1alpha1.ReasonInvalidTemplate},
		"up-index":  {spec: templateSpec(flatID, flat, map[string]string{"out": `{{ index . (upper .password) }}`}), reason: v1alpha1.ReasonInvalidTemplate},
		"typo":      {spec: templateSpec(flatID, flat, map[string]string{"out": `{{ index . .password }}`}), reason: v1alpha1.ReasonInvalidTemplate},
		"deep": {spec: func() v1alpha1.AWSSecretSpec {
			var s v1alpha1.AWSSecretSpec
			for i := range 64 {
				s.Data = append(s.Data, v1alpha1.DataEntry{Key: fmt.Sprintf("k%02d", i), SecretsManagerSecretRef: mappingRef(deepID, deep), Property: path})
			}
			return s
		}(), reason: v1alpha1.ReasonPropertyNotFound},
	}
	for name, b := range bombs {
		for i := range 3 {
			mappingCreate(t, hostile, fmt.Sprintf("%s-%d", name, i), b.spec)
		}
	}

	// The quiet tenant is synced before the flood.
	quietID := "e2e/hostile/quiet"
	v1 := createSecret(t, quietID, `{"token":"`+newValue("quiet")+`"}`)
	createAWSSecret(t, quiet, "app", quietID, v1)
	waitSynced(t, quiet, "app", v1)

	// The flood: 300 AWSSecrets of one version (one AWS call), created by a fast client in
	// a couple of seconds, far faster than the controller's 40 QPS can write their Secrets.
	const flood = 300
	noisyID := "e2e/hostile/noisy"
	nv := createSecret(t, noisyID, `{"k":"`+newValue("noisy")+`"}`)
	cfg := rest.CopyConfig(env.Config)
	cfg.QPS, cfg.Burst = 2000, 2000
	fast := versioned.NewForConfigOrDie(cfg)
	var wg sync.WaitGroup
	errs := make(chan error, flood)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < flood; i += 8 {
				_, err := fast.MumoshuV1alpha1().AWSSecrets(noisy).Create(context.Background(), &v1alpha1.AWSSecret{
					ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("app-%03d", i)},
					Spec:       v1alpha1.AWSSecretSpec{StringDataFrom: &v1alpha1.DataSource{SecretsManagerSecretRef: mappingRef(noisyID, nv)}},
				}, metav1.CreateOptions{})
				if err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	v2 := putSecretValue(t, quietID, `{"token":"`+newValue("quiet")+`"}`)
	app, err := client.MumoshuV1alpha1().AWSSecrets(quiet).Get(context.Background(), "app", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	before := readyCount(t, noisy)
	if before > flood*9/10 {
		t.Fatalf("%d of %d noisy AWSSecrets were synced before the bump: no backlog to overtake", before, flood)
	}
	setRef(t, app, quietID, v2)
	waitSynced(t, quiet, "app", v2)
	// In one FIFO queue the bump would wait for the whole backlog; served in turn, it waits
	// for a few syncs of the noisy namespace.
	after := readyCount(t, noisy)
	if backlog := flood - before; after-before > backlog/2 {
		t.Errorf("the quiet bump landed after %d more of the %d noisy AWSSecrets in the backlog: it waited behind them", after-before, backlog)
	}
	t.Logf("the quiet bump landed while %d noisy AWSSecrets synced (backlog %d)", after-before, flood-before)
	// No starvation: the backlog completes.
	eventually(t, 3*time.Minute, "every noisy AWSSecret Ready", func() (bool, string) {
		n := readyCount(t, noisy)
		return n == flood, fmt.Sprintf("%d of %d Ready", n, flood)
	})

	for name, b := range bombs {
		for i := range 3 {
			waitReason(t, hostile, fmt.Sprintf("%s-%d", name, i), b.reason)
		}
	}
	select {
	case <-p.Done():
		t.Fatalf("the controller exited: %v", p.ExitError())
	default:
	}
	_, peak, err := p.MemoryKiB()
	if err != nil {
		t.Fatal(err)
	}
	// The shipped Deployment's memory limit (internal/capacity) holds the flood and the bombs, and
	// so does the peak the formula expects of its GOMEMLIMIT.
	if limit := shipped.LimitMiB; peak > limit<<10 {
		t.Errorf("the controller's peak RSS was %d MiB, past the shipped %dMi limit", peak>>10, limit)
	}
	if bound := capacity.PeakWithGoMemLimit(float64(shipped.GoMemLimitMiB)); float64(peak)/1024 > bound {
		t.Errorf("the controller's peak RSS was %d MiB, past the %.1f MiB internal/capacity expects with GOMEMLIMIT=%dMiB", peak>>10, bound, shipped.GoMemLimitMiB)
	}
	t.Logf("peak RSS %d MiB", peak>>10)

	// No form of the password in what the controller said about the hostile AWSSecrets.
	var said strings.Builder
	list, err := client.MumoshuV1alpha1().AWSSecrets(hostile).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range list.Items {
		if c := meta.FindStatusCondition(a.Status.Conditions, v1alpha1.ConditionReady); c != nil {
			said.WriteString(c.Message + "\n")
		}
	}
	events, err := kube.CoreV1().Events(hostile).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range events.Items {
		said.WriteString(e.Message + "\n")
	}
	said.WriteString(p.log(t))
	jsonQuoted, _ := json.Marshal(password)
	for form, v := range map[string]string{
		"verbatim":    password,
		"base64":      base64.StdEncoding.EncodeToString([]byte(password)),
		"upper case":  strings.ToUpper(password),
		"Go-quoted":   strings.Trim(strconv.Quote(password), `"`),
		"JSON-quoted": strings.Trim(string(jsonQuoted), `"`),
	} {
		if strings.Contains(said.String(), v) {
			t.Errorf("the password's %s form is in a status, an event or the log", form)
		}
	}
}

// templateSpec is a spec that gathers a version's keys and renders templates over them.
func templateSpec(secretID, versionID string, templates map[string]string) v1alpha1.AWSSecretSpec {
	return v1alpha1.AWSSecretSpec{
		StringDataFrom: &v1alpha1.DataSource{SecretsManagerSecretRef: mappingRef(secretID, versionID)},
		Template:       &v1alpha1.SecretTemplate{Data: templates},
	}
}

// manyTemplateKeys is n template keys of the same template.
func manyTemplateKeys(n int, tmpl string) map[string]string {
	out := map[string]string{}
	for i := range n {
		out[fmt.Sprintf("key%02d", i)] = tmpl
	}
	return out
}

// nestedJSON is a JSON value depth objects deep along member "a", each level with a sibling of
// pad bytes, holding leaf at the bottom.
func nestedJSON(depth, pad int, leaf string) string {
	var b strings.Builder
	filler := strings.Repeat("x", pad)
	for range depth {
		b.WriteString(`{"pad":"` + filler + `","a":`)
	}
	b.WriteString(strconv.Quote(leaf))
	b.WriteString(strings.Repeat("}", depth))
	return b.String()
}

// readyCount is how many AWSSecrets of a namespace are Ready at their generation.
func readyCount(t *testing.T, ns string) int {
	t.Helper()
	list, err := client.MumoshuV1alpha1().AWSSecrets(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, a := range list.Items {
		if c := meta.FindStatusCondition(a.Status.Conditions, v1alpha1.ConditionReady); c != nil && c.Status == metav1.ConditionTrue && a.Status.ObservedGeneration == a.Generation {
			n++
		}
	}
	return n
}
