// Command bench measures aws-secret-controller at scale on the real local stack (kube-apiserver,
// etcd, kumo) with the real controller binary, and writes the figures as a markdown table and a
// JSON file. `make bench` runs it; see docs/benchmarks.md for a run and how to read it.
package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/mumoshu/aws-secret-controller/hack/internal/drive"
	"github.com/mumoshu/aws-secret-controller/internal/capacity"
	"github.com/mumoshu/aws-secret-controller/pkg/apis/mumoshu/v1alpha1"
	"github.com/mumoshu/aws-secret-controller/pkg/controller"
	"github.com/mumoshu/aws-secret-controller/pkg/generated/clientset/versioned"
	"github.com/mumoshu/aws-secret-controller/pkg/testenv"
)

type config struct {
	repo            string
	objects         int
	namespaces      int
	versions        int
	steady          time.Duration
	rolloutFraction float64
	unrelated       int
	unrelatedSize   int
	qps             int
	burst           int
	workers         int
	controllerArgs  string
	controllerEnv   string
	goMemLimit      string
	scenarios       string
	markdown        string
	valuePairs      int
	jsonPath        string
	etcdFsync       bool
	controllerBin   string
	noisyObjects    int
	noisyWorkers    int
	noisyTimeout    time.Duration
	bumpInterval    time.Duration
	minBumps        int
	hostileTimeout  time.Duration
	hostileCopies   int
	memoryLimitMiB  int
	restartBackoff  time.Duration
	keepLogs        string
	hostileKinds    string
	valueSize       int
	valueMix        bool
	convergeTimeout time.Duration
	createWorkers   int
	baseline        bool
}

func main() {
	var c config
	flag.StringVar(&c.repo, "repo", ".", "The repository: bin/ is found there.")
	flag.IntVar(&c.objects, "objects", 10000, "N: AWSSecrets.")
	flag.IntVar(&c.namespaces, "namespaces", 20, "Namespaces the AWSSecrets are spread over.")
	flag.IntVar(&c.versions, "versions", 2000, "K: distinct Secrets Manager versions the AWSSecrets pin.")
	flag.DurationVar(&c.steady, "steady", 10*time.Minute, "S2: how long to watch the synced cluster.")
	flag.Float64Var(&c.rolloutFraction, "rollout-fraction", 0.1, "S4: the fraction of AWSSecrets whose versionId is bumped.")
	flag.IntVar(&c.unrelated, "unrelated", 20000, "S5: Secrets not managed by the controller.")
	flag.IntVar(&c.unrelatedSize, "unrelated-size", 8192, "S5: bytes of data in each unrelated Secret.")
	flag.IntVar(&c.qps, "qps", 200, "Kubernetes client QPS, for the controller (--kube-api-qps) and the plain client-go loop.")
	flag.IntVar(&c.burst, "burst", 400, "Kubernetes client burst, for both.")
	flag.IntVar(&c.workers, "workers", 16, "Controller workers, and the plain loop's concurrency.")
	flag.StringVar(&c.controllerArgs, "controller-args", "", "Extra controller flags, space separated.")
	flag.StringVar(&c.controllerEnv, "controller-env", "", "Extra controller environment (NAME=value), space separated, e.g. GOGC=50.")
	flag.StringVar(&c.goMemLimit, "gomemlimit", "formula", "The controllers' GOMEMLIMIT: \"formula\" sets internal/capacity's, as the capacity table sizes a Deployment (the S scenarios' for --objects and the --version-cache-bytes in --controller-args; N1's and H1's the shipped Deployment's, whose limit they emulate); \"off\" sets none; a value in MiB (e.g. 300MiB) is set for all. A GOMEMLIMIT in --controller-env wins.")
	flag.StringVar(&c.scenarios, "scenarios", "S1,S2,S3,S4,S5", "Scenarios to run: S1-S5 share one setup (--objects AWSSecrets) and S1 runs first when any of them is named; N1 (noisy neighbour) and H1 (hostile tenant) then run in the order given, each on its own fresh objects and controller, e.g. --scenarios N1,H1.")
	flag.StringVar(&c.markdown, "out", "docs/benchmarks.md", "Markdown report.")
	flag.StringVar(&c.jsonPath, "json", "docs/benchmarks.json", "JSON report with every figure.")
	flag.BoolVar(&c.etcdFsync, "etcd-fsync", false, "Run etcd with fsync (off by default, as in the tests).")
	flag.StringVar(&c.controllerBin, "controller-bin", "", "The controller binary. Empty means bin/aws-secret-controller under --repo.")
	flag.IntVar(&c.noisyObjects, "noisy-objects", 10000, "N1: AWSSecrets the noisy namespace creates at once; 0 measures the quiet namespace alone, for its idle latency.")
	flag.IntVar(&c.noisyWorkers, "noisy-workers", 64, "N1: concurrent creates by the driver (its client has QPS 2000, burst 4000).")
	flag.DurationVar(&c.noisyTimeout, "noisy-timeout", 10*time.Minute, "N1: how long the noisy namespace gets to become all Ready.")
	flag.DurationVar(&c.bumpInterval, "bump-interval", 2*time.Second, "N1, H1: how often the quiet namespace bumps its AWSSecret's versionId.")
	flag.IntVar(&c.minBumps, "min-bumps", 10, "N1, H1: bumps the quiet namespace sends at least.")
	flag.DurationVar(&c.hostileTimeout, "hostile-timeout", 3*time.Minute, "H1: how long the hostile AWSSecrets get to settle (and the quiet namespace keeps bumping) before the run moves on.")
	flag.IntVar(&c.hostileCopies, "hostile-copies", 5, "H1: AWSSecrets of each hostile kind.")
	flag.StringVar(&c.hostileKinds, "hostile-kinds", "", "H1: only these kinds, comma separated (doubling, quote24, printf-d, printf-s, big64, deep64, leak-b64, leak-upper, leak-index), to tell which one costs what. Empty means all.")
	flag.IntVar(&c.memoryLimitMiB, "memory-limit-mib", int(capacity.For(capacity.DefaultObjects).LimitMiB), "N1, H1: the emulated container memory limit: the controller is killed (SIGKILL, counted as OOMKilled) when its RSS passes it, and restarted with kubelet's backoff. The default is the Deployment's limits.memory. An address-space limit (RLIMIT_AS) of 4 times as much (at least 2 GiB) above what it has after 1 s backs it up. 0 turns both off: nothing then keeps a runaway controller from the machine's memory.")
	flag.DurationVar(&c.restartBackoff, "restart-backoff", 10*time.Second, "N1, H1: the first restart delay after an unplanned exit; it doubles, to at most 5 minutes, like kubelet's CrashLoopBackOff.")
	flag.StringVar(&c.keepLogs, "keep-logs", "", "A folder for the controllers' logs (the stack's folder is removed at the end): the S scenarios' controllers write theirs there, N1 and H1 copy theirs.")
	flag.IntVar(&c.valueSize, "value-size", defaultValueSize, "Bytes of the password value in every Secrets Manager version the S scenarios create (the K versions and S4's new ones): random (crypto/rand), base64url, in {\"username\":...,\"password\":...}.")
	flag.BoolVar(&c.valueMix, "value-mix", false, "Instead of one --value-size, a realistic mix by version index: "+valueMixText+" (exactly 16, 3 and 1 of every 20 consecutive versions). Exclusive with a non-default --value-size.")
	flag.IntVar(&c.valuePairs, "value-pairs", 0, "Instead of one run, N pairs of runs of S1 and S3 (each a fresh stack), one with 16-byte and one with 4 KiB values, the order alternating, and one report of how much more RSS the 4 KiB values cost, on the means. Exclusive with --value-size, --value-mix, --scenarios and --baseline.")
	flag.DurationVar(&c.convergeTimeout, "converge-timeout", 10*time.Minute, "S1, S3, S4, S5: how long a controller gets to sync every AWSSecret (and, if longer than 5m, to become ready) before the run fails.")
	flag.IntVar(&c.createWorkers, "create-workers", 32, "Concurrent creates by the driver when it sets up the N AWSSecrets and S5's unrelated Secrets (its client has QPS 2000, burst 4000).")
	flag.BoolVar(&c.baseline, "baseline", true, "Measure the plain client-go loop (and the unlimited ceiling) before S1: N Secret creates each. false skips both, e.g. for a scale run; S1's \"within 1.5x\" target then reads \"not measured\".")
	rerender := flag.String("markdown-from", "", "Render the markdown report (--out) from a JSON report written earlier, and run nothing: for a report whose markdown gained a section since.")
	flag.Parse()
	if *rerender != "" {
		if err := markdownFrom(*rerender, c.markdown); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		return
	}
	if c.valuePairs > 0 {
		if err := checkPairFlags(flag.CommandLine); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(2)
		}
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		if err := runValuePairs(ctx, c, c.valuePairs); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		return
	}
	if err := checkValueFlags(c.valueSize, c.valueMix); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	if _, err := parseGoMemLimit(c.goMemLimit); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	if c.createWorkers < 1 {
		fmt.Fprintln(os.Stderr, "bench: --create-workers must be at least 1")
		os.Exit(2)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, c); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// report is everything a run measured.
type report struct {
	Date       string            `json:"date"`
	Command    string            `json:"command"`
	Machine    machine           `json:"machine"`
	Parameters map[string]any    `json:"parameters"`
	Baseline   baseline          `json:"baseline"`
	Ceiling    baseline          `json:"ceiling"`
	Scenarios  []scenario        `json:"scenarios"`
	Noisy      *noisyResult      `json:"noisyNeighbour,omitempty"`
	Hostile    *hostileResult    `json:"hostileTenant,omitempty"`
	Setup      map[string]string `json:"setup"`
	LoadBefore string            `json:"loadAverageBefore"`
	LoadAfter  string            `json:"loadAverageAfter"`
}

type machine struct {
	Cores     int    `json:"cores"`
	GoVersion string `json:"goVersion"`
	OS        string `json:"os"`
	MemTotal  string `json:"memTotal"`
}

// baseline is the API server's ceiling: the same number of Secret writes from a plain client-go
// loop with the controller's QPS, burst and concurrency.
type baseline struct {
	QPS     int     `json:"qps"`
	Workers int     `json:"workers"`
	Writes  int     `json:"writes"`
	Seconds float64 `json:"seconds"`
	PerSec  float64 `json:"writesPerSecond"`
}

type scenario struct {
	Name            string  `json:"name"`
	Seconds         float64 `json:"seconds"`
	AWSCallsMetrics int     `json:"awsCallsByMetrics"`
	AWSCallsKumo    int     `json:"awsCallsByEmulatorLog"`
	// AWSAttempts are the controller's HTTP attempts (aws_api_attempts_total): its calls plus
	// the SDK's retries. The emulator should have seen exactly these.
	AWSAttempts  int                `json:"awsAttemptsByMetrics,omitempty"`
	WantAWSCalls int                `json:"wantAWSCalls"`
	Writes       map[string]float64 `json:"controllerWrites"`
	RSSKiB       int64              `json:"rssKiB"`
	PeakRSSKiB   int64              `json:"peakRssKiB"`
	HeapInuseMiB float64            `json:"heapInuseMiB"`
	// GoMemLimitMiB is the GOMEMLIMIT the scenario's controller ran with (0: none).
	GoMemLimitMiB int64 `json:"goMemLimitMiB,omitempty"`
	// The S scenarios' memory per AWSSecret: the bytes of the Secret data values (username and
	// password) of the versions the AWSSecrets pin, averaged over them, and the RSS and heap in
	// use at the scenario's end divided by their number (no idle baseline is subtracted).
	ValueBytesPerObject float64 `json:"valueBytesPerObject,omitempty"`
	RSSKiBPerObject     float64 `json:"rssKiBPerObject,omitempty"`
	HeapKiBPerObject    float64 `json:"heapKiBPerObject,omitempty"`
	// HeapLiveMiB is the heap the controller's last GC found live (go_gc_heap_live_bytes): what
	// the objects and caches hold, without the garbage not yet collected that heap in use counts.
	HeapLiveMiB          float64 `json:"heapLiveMiB,omitempty"`
	HeapLiveKiBPerObject float64 `json:"heapLiveKiBPerObject,omitempty"`
	Notes                string  `json:"notes,omitempty"`
}

// bench holds the running stack and clients.
type bench struct {
	cfg      config
	env      *testenv.Env
	kube     kubernetes.Interface
	client   versioned.Interface
	sm       *secretsmanager.Client
	versions []string // versionId of bench/secret-<i>, the version the AWSSecrets pin
	// valueBytes are the bytes of the data values (username + password) of versions[i].
	valueBytes []int
	ctrl       *testenv.Controller
	ctrlN      int
	// sSetup: the S scenarios' objects exist (N1 and H1 delete them first).
	sSetup bool
	n1     *noisyResult
	h1     *hostileResult
}

// controllerBinary is the controller to run: --controller-bin, or empty for the stack's bin/.
func (b *bench) controllerBinary() string { return b.cfg.controllerBin }

func run(ctx context.Context, c config) error {
	repo, err := filepath.Abs(c.repo)
	if err != nil {
		return err
	}
	r := report{
		Date:       time.Now().UTC().Format(time.RFC3339),
		Command:    drive.Command("bench", "BENCHFLAGS"),
		Machine:    machine{Cores: runtime.NumCPU(), GoVersion: runtime.Version(), OS: runtime.GOOS + "/" + runtime.GOARCH, MemTotal: drive.MemTotal()},
		Parameters: map[string]any{"objects": c.objects, "namespaces": c.namespaces, "versions": c.versions, "steady": c.steady.String(), "rolloutFraction": c.rolloutFraction, "unrelated": c.unrelated, "unrelatedSize": c.unrelatedSize, "qps": c.qps, "burst": c.burst, "workers": c.workers, "controllerArgs": c.controllerArgs, "controllerEnv": c.controllerEnv, "goMemLimit": c.goMemLimit, "scenarios": c.scenarios, "etcdFsync": c.etcdFsync, "convergeTimeout": c.convergeTimeout.String(), "createWorkers": c.createWorkers, "baseline": c.baseline},
		Setup:      map[string]string{},
		LoadBefore: drive.LoadAverage(),
	}
	b := &bench{cfg: c}
	// The S scenarios share one setup; N1 and H1 make their own.
	var sSteps, newSteps []func(context.Context) (scenario, error)
	runS := false
	for _, id := range strings.Split(c.scenarios, ",") {
		id = strings.TrimSpace(id)
		runS = runS || strings.HasPrefix(id, "S")
		switch id {
		case "S1":
		case "S2":
			sSteps = append(sSteps, b.s2SteadyState)
		case "S3":
			sSteps = append(sSteps, b.s3Restart)
		case "S4":
			sSteps = append(sSteps, b.s4Rollout)
		case "S5":
			sSteps = append(sSteps, b.s5Unrelated)
		case "N1":
			newSteps = append(newSteps, b.n1Noisy)
		case "H1":
			newSteps = append(newSteps, b.h1Hostile)
		default:
			return fmt.Errorf("unknown scenario %q", id)
		}
	}
	if c.controllerBin != "" {
		r.Parameters["controllerBin"] = c.controllerBin
	}
	if c.valueMix {
		r.Parameters["valueMix"] = valueMixText
	} else {
		r.Parameters["valueSize"] = c.valueSize
	}
	if len(newSteps) > 0 {
		for k, v := range map[string]any{"noisyObjects": c.noisyObjects, "noisyWorkers": c.noisyWorkers, "noisyTimeout": c.noisyTimeout.String(), "bumpInterval": c.bumpInterval.String(), "minBumps": c.minBumps, "hostileTimeout": c.hostileTimeout.String(), "hostileCopies": c.hostileCopies, "hostileKinds": c.hostileKinds, "memoryLimitMiB": c.memoryLimitMiB, "restartBackoff": c.restartBackoff.String()} {
			r.Parameters[k] = v
		}
	}
	drive.Logf("starting the stack")
	env, err := testenv.New(ctx, testenv.Options{
		BinDir:    filepath.Join(repo, "bin"),
		CRDs:      []string{filepath.Join(repo, "manifests", "crd", "mumoshu.github.io_awssecrets.yaml")},
		EtcdFsync: c.etcdFsync,
	})
	if err != nil {
		return err
	}
	defer env.Stop()
	// The driver's own clients are fast, so that setup and bumps never wait on a client limit.
	fast := rest.CopyConfig(env.Config)
	fast.QPS, fast.Burst = 2000, 4000
	protobuf := rest.CopyConfig(fast)
	protobuf.ContentType = "application/vnd.kubernetes.protobuf"
	b.env, b.kube, b.client, b.sm = env, kubernetes.NewForConfigOrDie(protobuf), versioned.NewForConfigOrDie(fast), env.SecretsManager()
	defer func() {
		if b.ctrl != nil {
			_, _ = b.ctrl.Stop(10 * time.Second)
		}
	}()

	var steps []func(context.Context) (scenario, error)
	if runS {
		start := time.Now()
		if err := b.createVersions(ctx); err != nil {
			return err
		}
		r.Setup["create K versions in kumo"] = since(start)

		if c.baseline {
			drive.Logf("baseline: %d Secret creates by a plain client-go loop at the controller's QPS", c.objects)
			if r.Baseline, err = b.baseline(ctx, c.qps, c.burst, c.workers); err != nil {
				return err
			}
			drive.Logf("ceiling: the same creates with no client-side limit")
			if r.Ceiling, err = b.baseline(ctx, 100000, 100000, 64); err != nil {
				return err
			}
		} else {
			drive.Logf("baseline and ceiling skipped (--baseline=false)")
		}

		start = time.Now()
		if err := b.createAWSSecrets(ctx); err != nil {
			return err
		}
		r.Setup["create N AWSSecrets"] = since(start)
		b.sSetup = true
		steps = append([]func(context.Context) (scenario, error){b.s1ColdStart}, sSteps...)
	}
	steps = append(steps, newSteps...)
	for _, step := range steps {
		s, err := step(ctx)
		if err != nil {
			// What the new scenarios measured before failing still goes into the report.
			if b.n1 != nil || b.h1 != nil {
				r.Noisy, r.Hostile = b.n1, b.h1
				r.LoadAfter = drive.LoadAverage()
				_ = writeReports(repo, c, r)
			}
			return err
		}
		drive.Logf("%s: %.1fs, AWS calls %d (kumo %d, want %d), writes %v, RSS %d KiB (peak %d KiB), heap in use %.1f MiB", s.Name, s.Seconds, s.AWSCallsMetrics, s.AWSCallsKumo, s.WantAWSCalls, s.Writes, s.RSSKiB, s.PeakRSSKiB, s.HeapInuseMiB)
		if s.ValueBytesPerObject > 0 {
			drive.Logf("%s: per AWSSecret: %.0f bytes of secret data, RSS %.2f KiB, heap %.2f KiB", s.Name, s.ValueBytesPerObject, s.RSSKiBPerObject, s.HeapKiBPerObject)
		}
		r.Scenarios = append(r.Scenarios, s)
	}
	r.Noisy, r.Hostile = b.n1, b.h1
	r.LoadAfter = drive.LoadAverage()
	return writeReports(repo, c, r)
}

// createVersions creates K secrets in the emulator, one version each.
func (b *bench) createVersions(ctx context.Context) error {
	b.versions = make([]string, b.cfg.versions)
	b.valueBytes = make([]int, b.cfg.versions)
	return drive.Parallel(ctx, b.cfg.versions, 16, func(ctx context.Context, i int) error {
		value, size := b.secretString(i)
		out, err := b.sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{
			Name:         aws.String(fmt.Sprintf("bench/secret-%04d", i)),
			SecretString: aws.String(value),
		})
		if err != nil {
			return err
		}
		b.versions[i], b.valueBytes[i] = aws.ToString(out.VersionId), size
		return nil
	})
}

// secretString is a new value for bench/secret-<k>, with a password of --value-size bytes (or
// of the --value-mix size of k), and the bytes of its data values. It is a secret: never print it.
func (b *bench) secretString(k int) (value string, dataBytes int) {
	size := b.cfg.valueSize
	if b.cfg.valueMix {
		size = mixSize(k)
	}
	username, password := fmt.Sprintf("user-%d", k), randomValue(size)
	// The password is base64url: %q quotes it as JSON would.
	return fmt.Sprintf(`{"username":%q,"password":%q}`, username, password), len(username) + len(password)
}

// valueBytesPerObject is the bytes of secret data an AWSSecret's Secret holds, on average over
// the N AWSSecrets: AWSSecret i pins version i mod K.
func (b *bench) valueBytesPerObject() float64 {
	if b.cfg.objects <= 0 || len(b.valueBytes) == 0 {
		return 0
	}
	total := 0
	for i := range b.cfg.objects {
		total += b.valueBytes[i%len(b.valueBytes)]
	}
	return float64(total) / float64(b.cfg.objects)
}

// baseline creates N small Secrets with a plain client-go loop at the given client rate limit
// and concurrency, then deletes them.
func (b *bench) baseline(ctx context.Context, qps, burst, workers int) (baseline, error) {
	cfg := rest.CopyConfig(b.env.Config)
	cfg.QPS, cfg.Burst = float32(qps), burst
	cfg.ContentType = "application/vnd.kubernetes.protobuf"
	kube := kubernetes.NewForConfigOrDie(cfg)
	ns := fmt.Sprintf("bench-baseline-%d", qps)
	if _, err := b.kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		return baseline{}, err
	}
	start := time.Now()
	err := drive.Parallel(ctx, b.cfg.objects, workers, func(ctx context.Context, i int) error {
		_, err := kube.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("s-%05d", i)},
			Data:       map[string][]byte{"username": []byte("user"), "password": []byte(drive.RandomString())},
		}, metav1.CreateOptions{})
		return err
	})
	if err != nil {
		return baseline{}, err
	}
	secs := time.Since(start).Seconds()
	if err := b.kube.CoreV1().Secrets(ns).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{}); err != nil {
		return baseline{}, err
	}
	return baseline{QPS: qps, Workers: workers, Writes: b.cfg.objects, Seconds: secs, PerSec: float64(b.cfg.objects) / secs}, nil
}

func (b *bench) namespace(i int) string { return fmt.Sprintf("bench-%02d", i%b.cfg.namespaces) }
func (b *bench) name(i int) string      { return fmt.Sprintf("app-%05d", i) }

// createAWSSecrets creates N AWSSecrets; AWSSecret i pins version i mod K.
func (b *bench) createAWSSecrets(ctx context.Context) error {
	for n := range b.cfg.namespaces {
		if _, err := b.kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: b.namespace(n)}}, metav1.CreateOptions{}); err != nil {
			return err
		}
	}
	return drive.Parallel(ctx, b.cfg.objects, b.cfg.createWorkers, func(ctx context.Context, i int) error {
		k := i % b.cfg.versions
		_, err := b.client.MumoshuV1alpha1().AWSSecrets(b.namespace(i)).Create(ctx, &v1alpha1.AWSSecret{
			ObjectMeta: metav1.ObjectMeta{Name: b.name(i)},
			Spec: v1alpha1.AWSSecretSpec{StringDataFrom: &v1alpha1.DataSource{SecretsManagerSecretRef: v1alpha1.SecretsManagerSecretRef{
				SecretID: fmt.Sprintf("bench/secret-%04d", k), VersionID: b.versions[k],
			}}},
		}, metav1.CreateOptions{})
		return err
	})
}

// startController starts a new controller process.
func (b *bench) startController(ctx context.Context) error {
	b.ctrlN++
	args := []string{"--workers", fmt.Sprint(b.cfg.workers), "--kube-api-qps", fmt.Sprint(b.cfg.qps), "--kube-api-burst", fmt.Sprint(b.cfg.burst)}
	args = append(args, strings.Fields(b.cfg.controllerArgs)...)
	name := fmt.Sprintf("controller-%d", b.ctrlN)
	var logPath string
	if b.cfg.keepLogs != "" {
		if err := os.MkdirAll(b.cfg.keepLogs, 0o755); err != nil {
			return err
		}
		logPath = filepath.Join(b.cfg.keepLogs, name+".log")
	}
	env, _ := b.controllerEnv(false)
	ctrl, err := b.env.StartController(ctx, testenv.ControllerOptions{
		Name: name, Binary: b.controllerBinary(), Args: args, Env: env, ReadyTimeout: max(5*time.Minute, b.cfg.convergeTimeout),
		LogPath: logPath,
	})
	if err != nil {
		return err
	}
	b.ctrl = ctrl
	return nil
}

// counters are the figures a scenario reports as differences.
type counters struct {
	awsCalls, awsAttempts, kumoCalls int
	writes                           map[string]float64
}

func (b *bench) counters(ctx context.Context) (counters, error) {
	var c counters
	if b.ctrl != nil && !stopped(b.ctrl) {
		v, err := b.ctrl.Metric("aws_secret_controller_aws_api_calls_total", map[string]string{"operation": "GetSecretValue"})
		if err != nil {
			return c, err
		}
		c.awsCalls = int(v)
		if v, err = b.ctrl.Metric("aws_secret_controller_aws_api_attempts_total", map[string]string{"operation": "GetSecretValue"}); err != nil {
			return c, err
		}
		c.awsAttempts = int(v)
	}
	n, err := b.env.EmulatorRequests("GetSecretValue", "app/aws-secret-controller")
	if err != nil {
		return c, err
	}
	c.kumoCalls = n
	c.writes = map[string]float64{}
	// The controller's writes, told apart from the bench's own (PATCH of awssecrets, creates of
	// unrelated Secrets, which happen outside the measured windows).
	for key, labels := range map[string]map[string]string{
		"secrets.create":    {"verb": "POST", "resource": "secrets"},
		"secrets.update":    {"verb": "PUT", "resource": "secrets"},
		"secrets.delete":    {"verb": "DELETE", "resource": "secrets"},
		"awssecrets.status": {"verb": "PUT", "resource": "awssecrets", "subresource": "status"},
		"conflicts":         {"code": "409"},
		"events.create":     {"verb": "POST", "resource": "events"},
		"events.patch":      {"verb": "PATCH", "resource": "events"},
	} {
		v, err := b.env.APIServerMetric(ctx, "apiserver_request_total", labels)
		if err != nil {
			return c, err
		}
		c.writes[key] = v
	}
	return c, nil
}

// settledCounters reads the counters once their write counts have stopped moving for three
// seconds: events are posted asynchronously.
func (b *bench) settledCounters(ctx context.Context) (counters, error) {
	var after counters
	for stable, last := 0, -1.0; stable < 3; {
		var err error
		if after, err = b.counters(ctx); err != nil {
			return counters{}, err
		}
		total := 0.0
		for _, v := range after.writes {
			total += v
		}
		if total == last {
			stable++
		} else {
			stable, last = 0, total
		}
		time.Sleep(time.Second)
	}
	return after, nil
}

// fill completes a scenario with the differences since before, and the controller's memory.
// ctrlBefore are the controller's counters at the start (zero for a controller started in the
// scenario).
func (b *bench) fill(ctx context.Context, s *scenario, before, ctrlBefore counters) error {
	// Events are posted asynchronously: let the counts settle before reading them.
	after, err := b.settledCounters(ctx)
	if err != nil {
		return err
	}
	s.AWSCallsMetrics = after.awsCalls - ctrlBefore.awsCalls
	s.AWSAttempts = after.awsAttempts - ctrlBefore.awsAttempts
	s.AWSCallsKumo = after.kumoCalls - before.kumoCalls
	s.Writes = map[string]float64{}
	for k, v := range after.writes {
		if d := v - before.writes[k]; d != 0 {
			s.Writes[k] = d
		}
	}
	if s.RSSKiB, s.PeakRSSKiB, err = b.ctrl.MemoryKiB(); err != nil {
		return err
	}
	_, s.GoMemLimitMiB = b.controllerEnv(false)
	heap, err := b.ctrl.Metric("go_memstats_heap_inuse_bytes", nil)
	if err != nil {
		return err
	}
	s.HeapInuseMiB = heap / (1 << 20)
	// Absent from controllers built before it was exported: 0 then.
	live, _ := b.ctrl.Metric("go_gc_heap_live_bytes", nil)
	s.HeapLiveMiB = live / (1 << 20)
	if n := float64(b.cfg.objects); n > 0 {
		s.ValueBytesPerObject = b.valueBytesPerObject()
		s.RSSKiBPerObject = float64(s.RSSKiB) / n
		s.HeapKiBPerObject = heap / 1024 / n
		s.HeapLiveKiBPerObject = live / 1024 / n
	}
	return nil
}

// waitSyncs polls the controller's syncs_total{result} until it reaches n.
func (b *bench) waitSyncs(ctx context.Context, result string, n float64, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		v, err := b.ctrl.Metric("aws_secret_controller_syncs_total", map[string]string{"result": result})
		if err != nil {
			return err
		}
		if v >= n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s syncs: %v of %v within %s", result, v, n, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// allReady checks with one paginated list that every AWSSecret is Ready at its generation.
func (b *bench) allReady(ctx context.Context) error {
	notReady, total := 0, 0
	opts := metav1.ListOptions{Limit: 1000}
	for {
		list, err := b.client.MumoshuV1alpha1().AWSSecrets("").List(ctx, opts)
		if err != nil {
			return err
		}
		for _, a := range list.Items {
			if !strings.HasPrefix(a.Namespace, "bench-") {
				continue
			}
			total++
			if !meta.IsStatusConditionTrue(a.Status.Conditions, v1alpha1.ConditionReady) || a.Status.ObservedGeneration != a.Generation {
				notReady++
			}
		}
		if opts.Continue = list.Continue; opts.Continue == "" {
			break
		}
	}
	if total != b.cfg.objects || notReady != 0 {
		return fmt.Errorf("%d of %d AWSSecrets not Ready (want %d objects)", notReady, total, b.cfg.objects)
	}
	return nil
}

func (b *bench) s1ColdStart(ctx context.Context) (scenario, error) {
	s := scenario{Name: "S1 cold start", WantAWSCalls: b.cfg.versions}
	return s, b.startAndConverge(ctx, &s, controller.ResultCreated)
}

// startAndConverge stops the controller if one runs, starts a new one, and measures the
// scenario until the new process has synced every AWSSecret with the given result.
func (b *bench) startAndConverge(ctx context.Context, s *scenario, result string) error {
	if b.ctrl != nil {
		if _, err := b.ctrl.Stop(30 * time.Second); err != nil {
			return err
		}
	}
	before, err := b.counters(ctx)
	if err != nil {
		return err
	}
	start := time.Now()
	if err := b.startController(ctx); err != nil {
		return err
	}
	if err := b.waitSyncs(ctx, result, float64(b.cfg.objects), b.cfg.convergeTimeout); err != nil {
		return err
	}
	s.Seconds = time.Since(start).Seconds()
	if err := b.allReady(ctx); err != nil {
		return err
	}
	return b.fill(ctx, s, before, counters{})
}

func (b *bench) s2SteadyState(ctx context.Context) (scenario, error) {
	s := scenario{Name: "S2 steady state", WantAWSCalls: 0, Seconds: b.cfg.steady.Seconds()}
	before, err := b.counters(ctx)
	if err != nil {
		return s, err
	}
	drive.Logf("S2: watching for %s", b.cfg.steady)
	select {
	case <-ctx.Done():
		return s, ctx.Err()
	case <-time.After(b.cfg.steady):
	}
	return s, b.fill(ctx, &s, before, before)
}

func (b *bench) s3Restart(ctx context.Context) (scenario, error) {
	s := scenario{Name: "S3 restart", WantAWSCalls: 0}
	return s, b.startAndConverge(ctx, &s, controller.ResultUnchanged)
}

func (b *bench) s4Rollout(ctx context.Context) (scenario, error) {
	// The first fraction of the K secrets get a new version; every AWSSecret pinning one of them
	// is bumped: that is the fraction of the AWSSecrets, since they spread evenly over versions.
	bumpedSecrets := int(float64(b.cfg.versions) * b.cfg.rolloutFraction)
	s := scenario{Name: "S4 rollout", WantAWSCalls: bumpedSecrets}
	newVersions, newBytes := make([]string, bumpedSecrets), make([]int, bumpedSecrets)
	if err := drive.Parallel(ctx, bumpedSecrets, 16, func(ctx context.Context, k int) error {
		value, size := b.secretString(k)
		out, err := b.sm.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{
			SecretId:     aws.String(fmt.Sprintf("bench/secret-%04d", k)),
			SecretString: aws.String(value),
		})
		if err != nil {
			return err
		}
		newVersions[k], newBytes[k] = aws.ToString(out.VersionId), size
		return nil
	}); err != nil {
		return s, err
	}
	var bumped []int
	for i := range b.cfg.objects {
		if i%b.cfg.versions < bumpedSecrets {
			bumped = append(bumped, i)
		}
	}
	s.Notes = fmt.Sprintf("%d AWSSecrets bumped to %d new versions", len(bumped), bumpedSecrets)
	before, err := b.counters(ctx)
	if err != nil {
		return s, err
	}
	updatedBefore, err := b.ctrl.Metric("aws_secret_controller_syncs_total", map[string]string{"result": controller.ResultUpdated})
	if err != nil {
		return s, err
	}
	start := time.Now()
	if err := drive.Parallel(ctx, len(bumped), 32, func(ctx context.Context, j int) error {
		i := bumped[j]
		patch := fmt.Sprintf(`{"spec":{"stringDataFrom":{"secretsManagerSecretRef":{"versionId":%q}}}}`, newVersions[i%b.cfg.versions])
		_, err := b.client.MumoshuV1alpha1().AWSSecrets(b.namespace(i)).Patch(ctx, b.name(i), types.MergePatchType, []byte(patch), metav1.PatchOptions{})
		return err
	}); err != nil {
		return s, err
	}
	// The bumped AWSSecrets now pin the new versions.
	copy(b.versions, newVersions)
	copy(b.valueBytes, newBytes)
	if err := b.waitSyncs(ctx, controller.ResultUpdated, updatedBefore+float64(len(bumped)), b.cfg.convergeTimeout); err != nil {
		return s, err
	}
	s.Seconds = time.Since(start).Seconds()
	if err := b.allReady(ctx); err != nil {
		return s, err
	}
	return s, b.fill(ctx, &s, before, before)
}

func (b *bench) s5Unrelated(ctx context.Context) (scenario, error) {
	s := scenario{Name: "S5 unrelated Secrets", WantAWSCalls: 0}
	rssBefore, _, err := b.ctrl.MemoryKiB()
	if err != nil {
		return s, err
	}
	drive.Logf("S5: creating %d unrelated Secrets of %d bytes", b.cfg.unrelated, b.cfg.unrelatedSize)
	payload := make([]byte, b.cfg.unrelatedSize)
	_, _ = rand.Read(payload)
	if err := drive.Parallel(ctx, b.cfg.unrelated, b.cfg.createWorkers, func(ctx context.Context, i int) error {
		_, err := b.kube.CoreV1().Secrets(b.namespace(i)).Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("unrelated-%05d", i)},
			Data:       map[string][]byte{"blob": payload},
		}, metav1.CreateOptions{})
		return err
	}); err != nil {
		return s, err
	}
	rssRunning, _, err := b.ctrl.MemoryKiB()
	if err != nil {
		return s, err
	}
	// A restart lists every Secret the informer may see: the unrelated ones must not be among them.
	if err := b.startAndConverge(ctx, &s, controller.ResultUnchanged); err != nil {
		return s, err
	}
	s.Notes = fmt.Sprintf("restarted with the unrelated Secrets present; RSS of the running S4 controller went %d -> %d KiB while they were created", rssBefore, rssRunning)
	return s, nil
}

func stopped(c *testenv.Controller) bool {
	select {
	case <-c.Done():
		return true
	default:
		return false
	}
}

func since(t time.Time) string { return time.Since(t).Round(100 * time.Millisecond).String() }

func writeReports(repo string, c config, r report) error {
	return writeReportFiles(repo, c, r, markdown(r))
}

// writeReportFiles writes v as JSON to --json and md to --out, both relative to repo unless
// absolute.
func writeReportFiles(repo string, c config, v any, md string) error {
	jsonPath, mdPath := c.jsonPath, c.markdown
	if !filepath.IsAbs(jsonPath) {
		jsonPath = filepath.Join(repo, jsonPath)
	}
	if !filepath.IsAbs(mdPath) {
		mdPath = filepath.Join(repo, mdPath)
	}
	if err := os.MkdirAll(filepath.Dir(jsonPath), 0o755); err != nil {
		return err
	}
	j, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(jsonPath, append(j, '\n'), 0o644); err != nil {
		return err
	}
	drive.Logf("wrote %s", jsonPath)
	if err := os.WriteFile(mdPath, []byte(md), 0o644); err != nil {
		return err
	}
	drive.Logf("wrote %s", mdPath)
	return nil
}

// markdownFrom renders the markdown report of a JSON report.
func markdownFrom(jsonPath, mdPath string) error {
	b, err := os.ReadFile(jsonPath)
	if err != nil {
		return err
	}
	var r report
	if err := json.Unmarshal(b, &r); err != nil {
		return fmt.Errorf("%s: %w", jsonPath, err)
	}
	return os.WriteFile(mdPath, []byte(markdown(r)), 0o644)
}
