package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/mumoshu/aws-secret-controller/hack/internal/drive"
	"github.com/mumoshu/aws-secret-controller/pkg/apis/mumoshu/v1alpha1"
)

const (
	hostileNS = "h1-hostile"
	// deepLevels is the depth of the nested JSON and of the property path: 500 names and 499
	// dots are 999 characters, within the CRD's 1024 for a property.
	deepLevels = 500
	// deepSize is about the size of the nested JSON, under Secrets Manager's 64 KiB.
	deepSize = 55000
)

// hostileKind is one kind of "bomb": an AWSSecret spec a hostile tenant may write, and the Ready
// reason a controller that defends itself gives it.
type hostileKind struct {
	name     string
	expected string
	what     string
	spec     func(h *hostileSetup) v1alpha1.AWSSecretSpec
}

// hostileSetup is what the bombs read: a version with 30 keys (one of them the password) and a
// deeply nested JSON version.
type hostileSetup struct {
	password           string
	keysID, keysVer    string
	deepID, deepVer    string
	fragments          []string
	needles            []leakForm
	deepBytes, keysLen int
}

func (h *hostileSetup) keysRef() *v1alpha1.DataSource {
	return &v1alpha1.DataSource{SecretsManagerSecretRef: v1alpha1.SecretsManagerSecretRef{SecretID: h.keysID, VersionID: h.keysVer}}
}

func templated(h *hostileSetup, data map[string]string) v1alpha1.AWSSecretSpec {
	return v1alpha1.AWSSecretSpec{StringDataFrom: h.keysRef(), Template: &v1alpha1.SecretTemplate{Data: data}}
}

var hostileKinds = []hostileKind{
	{name: "doubling", expected: v1alpha1.ReasonInvalidTemplate, what: "`$a = print $a $a` once per key of a 30-key version",
		spec: func(h *hostileSetup) v1alpha1.AWSSecretSpec {
			return templated(h, map[string]string{"bomb": `{{ $a := .password }}{{ range $k, $v := . }}{{ $a = print $a $a }}{{ end }}{{ $a }}`})
		}},
	{name: "quote24", expected: v1alpha1.ReasonInvalidTemplate, what: "`.password` piped through `quote` 24 times",
		spec: func(h *hostileSetup) v1alpha1.AWSSecretSpec {
			return templated(h, map[string]string{"bomb": "{{ .password" + strings.Repeat(" | quote", 24) + " }}"})
		}},
	{name: "printf-d", expected: v1alpha1.ReasonInvalidTemplate, what: "`printf \"%1000000d\" 1` 40 times in one key",
		spec: func(h *hostileSetup) v1alpha1.AWSSecretSpec {
			return templated(h, map[string]string{"bomb": strings.Repeat(`{{ printf "%1000000d" 1 }}`, 40)})
		}},
	{name: "printf-s", expected: v1alpha1.ReasonInvalidTemplate, what: "`printf \"%-1000000s\" .password` 40 times in one key",
		spec: func(h *hostileSetup) v1alpha1.AWSSecretSpec {
			return templated(h, map[string]string{"bomb": strings.Repeat(`{{ printf "%-1000000s" .password }}`, 40)})
		}},
	{name: "big64", expected: v1alpha1.ReasonInvalidSecret + "|" + v1alpha1.ReasonInvalidTemplate, what: "64 keys of 1,040,000 bytes each (`printf \"%65000d\" 1` 16 times): 66.5 MB in all",
		spec: func(h *hostileSetup) v1alpha1.AWSSecretSpec {
			data := map[string]string{}
			for k := range 64 {
				data[fmt.Sprintf("big%02d", k)] = strings.Repeat(`{{ printf "%65000d" 1 }}`, 16)
			}
			return templated(h, data)
		}},
	{name: "deep64", expected: v1alpha1.ReasonPropertyNotFound, what: "64 spec.data entries, each a 500-level property path over a 55 KB nested JSON: the first 63 resolve, the last misses at depth 500, so all the work is done before the error",
		spec: func(h *hostileSetup) v1alpha1.AWSSecretSpec {
			path := strings.TrimSuffix(strings.Repeat("a.", deepLevels), ".")
			var data []v1alpha1.DataEntry
			for k := range 64 {
				p := path
				if k == 63 {
					p = strings.TrimSuffix(path, "a") + "b"
				}
				data = append(data, v1alpha1.DataEntry{Key: fmt.Sprintf("deep%02d", k), Property: p,
					SecretsManagerSecretRef: v1alpha1.SecretsManagerSecretRef{SecretID: h.deepID, VersionID: h.deepVer}})
			}
			return v1alpha1.AWSSecretSpec{Data: data}
		}},
	{name: "leak-b64", expected: v1alpha1.ReasonInvalidTemplate, what: "`index . (b64enc .password)`: the error names the missing key",
		spec: func(h *hostileSetup) v1alpha1.AWSSecretSpec {
			return templated(h, map[string]string{"probe": `{{ index . (b64enc .password) }}`})
		}},
	{name: "leak-upper", expected: v1alpha1.ReasonInvalidTemplate, what: "`index . (upper .password)`",
		spec: func(h *hostileSetup) v1alpha1.AWSSecretSpec {
			return templated(h, map[string]string{"probe": `{{ index . (upper .password) }}`})
		}},
	{name: "leak-index", expected: v1alpha1.ReasonInvalidTemplate, what: "`index . .password`: the password holds `\"`, `\\`, a newline, `<` and \\x01, so a Go-quoted copy differs from it",
		spec: func(h *hostileSetup) v1alpha1.AWSSecretSpec {
			return templated(h, map[string]string{"probe": `{{ index . .password }}`})
		}},
}

// selectKinds returns the kinds named in a comma-separated list; empty means all.
func selectKinds(list string) ([]hostileKind, error) {
	if strings.TrimSpace(list) == "" {
		return hostileKinds, nil
	}
	var out []hostileKind
next:
	for _, name := range strings.Split(list, ",") {
		name = strings.TrimSpace(name)
		for _, k := range hostileKinds {
			if k.name == name {
				out = append(out, k)
				continue next
			}
		}
		var names []string
		for _, k := range hostileKinds {
			names = append(names, k.name)
		}
		return nil, fmt.Errorf("unknown hostile kind %q; the kinds are %s", name, strings.Join(names, ", "))
	}
	return out, nil
}

// hostileResult is what H1 measured.
type hostileResult struct {
	Copies         int                 `json:"copies"`
	Objects        int                 `json:"objects"`
	Timeout        string              `json:"timeout"`
	Seconds        float64             `json:"seconds"`
	Settled        bool                `json:"settled"`
	SettleSecs     float64             `json:"settleSeconds"`
	SettledAtEnd   int                 `json:"settledAtEnd"`
	Kinds          []hostileKindResult `json:"kinds"`
	Quiet          latencyStats        `json:"quietTenant"`
	Restarts       int                 `json:"restarts"`
	PeakRSSKiB     int64               `json:"peakRssKiB"`
	MemoryLimitMiB int                 `json:"memoryLimitMiB"`
	Incarnations   []incarnation       `json:"incarnations"`
	Leaks          []leakCount         `json:"leaks"`
	// LeakTotal counts the hits of the whole forms; FragmentHits those of any fragment of the
	// password, which also catches forms the list does not name.
	LeakTotal    int `json:"leakTotal"`
	FragmentHits int `json:"fragmentHits"`
	Events       int `json:"events"`
	LogBytes     int `json:"controllerLogBytes"`
}

type hostileKindResult struct {
	Kind     string         `json:"kind"`
	What     string         `json:"what"`
	Expected string         `json:"expected"`
	Count    int            `json:"count"`
	Settled  int            `json:"settled"`
	Reasons  map[string]int `json:"reasons"`
	// Sample is one Ready message, with every form of the password replaced by its name.
	Sample string `json:"sample"`
}

// leakForm is one form of the password and the texts it can take in a log line, a condition
// message or an event: as it is, quoted once more by klog (Go syntax) or in a JSON log line.
type leakForm struct {
	Form    string
	Needles []string
}

type leakCount struct {
	Form   string `json:"form"`
	Log    int    `json:"controllerLog"`
	Status int    `json:"status"`
	Events int    `json:"events"`
}

func goInner(s string) string { q := strconv.Quote(s); return q[1 : len(q)-1] }

func jsonInner(s string, escapeHTML bool) string {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(escapeHTML)
	_ = enc.Encode(s)
	q := strings.TrimSuffix(buf.String(), "\n")
	return q[1 : len(q)-1]
}

// klogMultiline is how klog's text format writes a value that spans lines: each line after the
// first indented by a tab.
func klogMultiline(s string) string { return strings.ReplaceAll(s, "\n", "\n\t") }

func uniq(ss ...string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range ss {
		if s != "" && !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// newHostileSetup makes the password: three random fragments around `"`, `\`, a newline, `<`
// and \x01. strconv.Quote writes the last two as `<` and `\x01`, encoding/json as `\u003c` and
// `\u0001`, so the Go-quoted and the JSON-quoted forms are told apart.
func newHostileSetup() *hostileSetup {
	frag := func() string { return "f" + drive.RandomString()[:11] }
	f1, f2, f3 := frag(), frag(), frag()
	pw := `pw"` + f1 + `\` + f2 + "\n" + f3 + "<\x01"
	up := strings.ToUpper(pw)
	h := &hostileSetup{password: pw, fragments: []string{f1, f2, f3}}
	h.needles = []leakForm{
		{"verbatim", uniq(pw, klogMultiline(pw))},
		{"base64", uniq(base64.StdEncoding.EncodeToString([]byte(pw)), base64.URLEncoding.EncodeToString([]byte(pw)))},
		{"upper case", uniq(up, klogMultiline(up), goInner(up), goInner(goInner(up)), jsonInner(up, true), jsonInner(up, false), jsonInner(goInner(up), true))},
		{"Go-quoted", uniq(goInner(pw), goInner(goInner(pw)), jsonInner(goInner(pw), true))},
		{"JSON-quoted", uniq(jsonInner(pw, true), jsonInner(pw, false), goInner(jsonInner(pw, true)), goInner(jsonInner(pw, false)))},
	}
	return h
}

// count counts the occurrences of each form in text, and of any fragment in any case.
func (h *hostileSetup) count(text string) (perForm []int, fragments int) {
	for _, f := range h.needles {
		n := 0
		for _, needle := range f.Needles {
			n += strings.Count(text, needle)
		}
		perForm = append(perForm, n)
	}
	lower := strings.ToLower(text)
	for _, f := range h.fragments {
		fragments += strings.Count(lower, strings.ToLower(f))
	}
	return perForm, fragments
}

// redact replaces every form of the password, then any fragment, with its name.
func (h *hostileSetup) redact(s string) string {
	type pair struct{ needle, name string }
	var pairs []pair
	for _, f := range h.needles {
		for _, n := range f.Needles {
			pairs = append(pairs, pair{n, "[password:" + f.Form + "]"})
		}
	}
	sort.Slice(pairs, func(i, j int) bool { return len(pairs[i].needle) > len(pairs[j].needle) })
	for _, p := range pairs {
		s = strings.ReplaceAll(s, p.needle, p.name)
	}
	for _, f := range h.fragments {
		for _, v := range []string{f, strings.ToUpper(f)} {
			s = strings.ReplaceAll(s, v, "[fragment]")
		}
	}
	return s
}

// create makes the two versions the bombs read.
func (h *hostileSetup) create(ctx context.Context, b *bench) error {
	keys := map[string]string{"password": h.password, "username": "hostile"}
	for k := 1; len(keys) < 30; k++ {
		keys[fmt.Sprintf("k%02d", k)] = fmt.Sprintf("value-%02d", k)
	}
	h.keysLen = len(keys)
	body, err := json.Marshal(keys)
	if err != nil {
		return err
	}
	h.keysID = "h1/keys30"
	out, err := b.sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(h.keysID), SecretString: aws.String(string(body))})
	if err != nil {
		return err
	}
	h.keysVer = aws.ToString(out.VersionId)

	deep := deepJSON()
	h.deepBytes = len(deep)
	h.deepID = "h1/deep"
	out, err = b.sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(h.deepID), SecretString: aws.String(deep)})
	if err != nil {
		return err
	}
	h.deepVer = aws.ToString(out.VersionId)
	return nil
}

// deepJSON is {"p":"<pad>","a":{"p":"<pad>","a":{...{"p":"<pad>","a":"leaf"}...}}}: deepLevels
// objects, so a path of deepLevels names "a" reaches "leaf" and one ending in "b" fails at its
// last name, after all the work.
func deepJSON() string {
	pad := strings.Repeat("x", max(1, deepSize/deepLevels-12))
	var deep strings.Builder
	for i := range deepLevels {
		deep.WriteString(`{"p":"` + pad + `","a":`)
		if i == deepLevels-1 {
			deep.WriteString(`"leaf"`)
		}
	}
	deep.WriteString(strings.Repeat("}", deepLevels))
	return deep.String()
}

// h1Hostile: one namespace holds, all at once, AWSSecrets built to exhaust or trick the
// controller, while a quiet namespace bumps its only AWSSecret every bump interval.
func (b *bench) h1Hostile(ctx context.Context) (scenario, error) {
	s := scenario{Name: "H1 hostile tenant"}
	res := &hostileResult{Copies: b.cfg.hostileCopies, Timeout: b.cfg.hostileTimeout.String(), MemoryLimitMiB: b.cfg.memoryLimitMiB}
	b.h1 = res
	if _, err := selectKinds(b.cfg.hostileKinds); err != nil {
		return s, err
	}
	if err := b.freshStart(ctx); err != nil {
		return s, err
	}
	h := newHostileSetup()
	if err := h.create(ctx, b); err != nil {
		return s, err
	}
	quiet := newQuietTenant(b, "h1-quiet", "h1/quiet", int(b.cfg.hostileTimeout/b.cfg.bumpInterval)+b.cfg.minBumps+2)
	if err := quiet.setup(ctx); err != nil {
		return s, err
	}
	if err := b.ensureNamespace(ctx, hostileNS); err != nil {
		return s, err
	}
	kinds, err := selectKinds(b.cfg.hostileKinds)
	if err != nil {
		return s, err
	}
	res.Objects = len(kinds) * b.cfg.hostileCopies

	sup := newSupervisor(b, "h1")
	defer sup.stop()
	if err := sup.start(ctx); err != nil {
		return s, err
	}
	if err := quiet.waitHeld(ctx, 0, time.Minute); err != nil {
		return s, err
	}
	tracker, err := b.trackAWSSecrets(ctx, hostileNS, res.Objects)
	if err != nil {
		return s, err
	}
	before, err := b.counters(ctx)
	if err != nil {
		return s, err
	}

	start := time.Now()
	deadline := start.Add(b.cfg.hostileTimeout)
	settled := func() bool { _, at := tracker.times(); return !at.IsZero() }
	bumpsDone := make(chan error, 1)
	go func() {
		_, err := quiet.bumpLoop(ctx, b.cfg.bumpInterval, b.cfg.minBumps, settled, deadline)
		bumpsDone <- err
	}()
	drive.Logf("H1: creating %d hostile AWSSecrets (%d kinds x %d) at once; at most until %s", res.Objects, len(kinds), b.cfg.hostileCopies, deadline.Format("15:04:05"))
	if err := drive.Parallel(ctx, res.Objects, res.Objects, func(ctx context.Context, i int) error {
		kind := kinds[i/b.cfg.hostileCopies]
		_, err := b.client.MumoshuV1alpha1().AWSSecrets(hostileNS).Create(ctx, &v1alpha1.AWSSecret{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-%d", kind.name, i%b.cfg.hostileCopies)},
			Spec:       kind.spec(h),
		}, metav1.CreateOptions{})
		if err != nil {
			return fmt.Errorf("creating a %s AWSSecret: %w", kind.name, err)
		}
		return nil
	}); err != nil {
		return s, err
	}
	if _, err := tracker.wait(ctx, settled, deadline); err != nil {
		return s, err
	}
	if _, at := tracker.times(); !at.IsZero() {
		res.Settled, res.SettleSecs = true, at.Sub(start).Seconds()
		drive.Logf("H1: the hostile AWSSecrets settled after %.1fs", res.SettleSecs)
	} else {
		res.SettleSecs = time.Since(start).Seconds()
		drive.Logf("H1: the hostile AWSSecrets did not settle within %s", b.cfg.hostileTimeout)
	}
	if err := <-bumpsDone; err != nil {
		return s, err
	}
	// The last bump gets at most 30 s more, so a controller that never recovers cannot hang
	// the run.
	if err := quiet.waitHeld(ctx, quiet.lastBump(), 30*time.Second); err != nil {
		drive.Logf("H1: %v", err)
	}
	res.Seconds = time.Since(start).Seconds()
	_, res.SettledAtEnd = tracker.counts()
	res.Quiet = quiet.stats()

	// Let the last events and status writes land before reading them.
	time.Sleep(2 * time.Second)
	if err := b.hostileReadout(ctx, h, kinds, res, sup); err != nil {
		return s, err
	}
	// The AWS calls are the emulator's count: the controller's own counter restarts with it. The
	// expected ones are those of a controller that never restarts: the two bomb versions and
	// each version the quiet Secret came to hold.
	s.WantAWSCalls = 2 + res.Quiet.Landed - res.Quiet.Superseded
	if err := b.fillSupervised(ctx, &s, sup, before, 0); err != nil {
		return s, err
	}
	s.AWSCallsMetrics = -1
	res.Incarnations, res.Restarts, res.PeakRSSKiB = sup.summary()
	s.Seconds, s.PeakRSSKiB = res.SettleSecs, max(res.PeakRSSKiB, s.RSSKiB)
	_, s.GoMemLimitMiB = b.controllerEnv(true)
	s.Notes = fmt.Sprintf("%d hostile AWSSecrets; restarts %d; settled %v; quiet bumps p50 %.0f ms, p99 %.0f ms, max %.0f ms over %d (%d never landed); password leaks %d (fragments %d)",
		res.Objects, res.Restarts, res.Settled, res.Quiet.P50ms, res.Quiet.P99ms, res.Quiet.MaxMs, res.Quiet.Landed, res.Quiet.Unlanded, res.LeakTotal, res.FragmentHits)
	drive.Logf("H1: %s; peak RSS %.1f MiB", s.Notes, mib(res.PeakRSSKiB))
	for _, k := range res.Kinds {
		drive.Logf("H1: %-10s reasons %s; sample: %s", k.Kind, joinSorted(k.Reasons, "%s x%d", "none"), truncateString(k.Sample, 300))
	}
	for _, l := range res.Leaks {
		if l.Log+l.Status+l.Events > 0 {
			drive.Logf("H1: LEAK: password form %q found: controller log %d, status %d, events %d", l.Form, l.Log, l.Status, l.Events)
		}
	}
	sup.keepLogs(b.cfg.keepLogs)
	sup.stop()
	return s, b.cleanNamespaces(ctx, hostileNS, quiet.ns)
}

// hostileReadout reads the hostile AWSSecrets' reasons and searches the controller's logs, the
// AWSSecrets' status messages and the Events for the password.
func (b *bench) hostileReadout(ctx context.Context, h *hostileSetup, kinds []hostileKind, res *hostileResult, sup *supervisor) error {
	var statusText strings.Builder
	byKind := map[string]*hostileKindResult{}
	for _, k := range kinds {
		res.Kinds = append(res.Kinds, hostileKindResult{Kind: k.name, What: k.what, Expected: k.expected, Reasons: map[string]int{}})
	}
	for i := range res.Kinds {
		byKind[res.Kinds[i].Kind] = &res.Kinds[i]
	}
	for _, ns := range []string{hostileNS, "h1-quiet"} {
		list, err := b.client.MumoshuV1alpha1().AWSSecrets(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		for _, a := range list.Items {
			c := meta.FindStatusCondition(a.Status.Conditions, v1alpha1.ConditionReady)
			if c != nil {
				statusText.WriteString(c.Message + "\n")
			}
			if ns != hostileNS {
				continue
			}
			kind := byKind[a.Name[:strings.LastIndexByte(a.Name, '-')]]
			if kind == nil {
				continue
			}
			kind.Count++
			switch {
			case c == nil:
				kind.Reasons["(no condition)"]++
			case a.Status.ObservedGeneration != a.Generation:
				kind.Reasons[c.Reason+" (stale generation)"]++
			default:
				kind.Settled++
				kind.Reasons[c.Reason]++
			}
			if c != nil && kind.Sample == "" {
				kind.Sample = h.redact(truncateString(c.Message, 400))
			}
		}
	}
	var eventText strings.Builder
	for _, ns := range []string{hostileNS, "h1-quiet"} {
		events, err := b.kube.CoreV1().Events(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		res.Events += len(events.Items)
		for _, e := range events.Items {
			eventText.WriteString(e.Reason + " " + e.Message + "\n")
		}
	}
	logText := sup.logs()
	res.LogBytes = len(logText)
	logs, logFrag := h.count(logText)
	status, statusFrag := h.count(statusText.String())
	events, eventFrag := h.count(eventText.String())
	for i, f := range h.needles {
		res.Leaks = append(res.Leaks, leakCount{Form: f.Form, Log: logs[i], Status: status[i], Events: events[i]})
		res.LeakTotal += logs[i] + status[i] + events[i]
	}
	res.Leaks = append(res.Leaks, leakCount{Form: "any fragment (any case, any quoting)", Log: logFrag, Status: statusFrag, Events: eventFrag})
	res.FragmentHits = logFrag + statusFrag + eventFrag
	return nil
}
