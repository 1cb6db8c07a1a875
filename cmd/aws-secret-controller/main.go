// Command aws-secret-controller keeps Kubernetes Secrets equal to the AWS Secrets Manager versions
// that AWSSecret objects pin.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	clientfeatures "k8s.io/client-go/features"

	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/uuid"
	kubeinformers "k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/metadata/metadatainformer"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/klog/v2"

	// Go's own copy of the Mozilla CA roots, used only when the system has none: the image is
	// FROM scratch, and the controller still verifies TLS to AWS.
	_ "golang.org/x/crypto/x509roots/fallback"

	"github.com/mumoshu/aws-secret-controller/pkg/apis/mumoshu/v1alpha1"
	"github.com/mumoshu/aws-secret-controller/pkg/awssm"
	"github.com/mumoshu/aws-secret-controller/pkg/controller"
	clientset "github.com/mumoshu/aws-secret-controller/pkg/generated/clientset/versioned"
	informers "github.com/mumoshu/aws-secret-controller/pkg/generated/informers/externalversions"
	"github.com/mumoshu/aws-secret-controller/pkg/tenancy"
)

// options are the command's flags.
type options struct {
	kubeconfig          string
	namespace           string
	workers             int
	kubeAPIQPS          float64
	kubeAPIBurst        int
	awsRegion           string
	awsEndpoint         string
	awsAPIQPS           float64
	awsAPIBurst         int
	awsAPIMinQPS        float64
	versionCacheBytes   int64
	leaderElect         bool
	leaderElectID       string
	leaderElectNS       string
	leaseDuration       time.Duration
	renewDeadline       time.Duration
	retryPeriod         time.Duration
	metricsAddr         string
	healthProbeAddr     string
	resyncPeriod        time.Duration
	syncTimeout         time.Duration
	namespacePolicy     string
	allowedSecretIDs    string
	roleSessionTags     bool
	shutdownGracePeriod time.Duration
	version             bool
}

// bindFlags defines the controller's flags on fs, bound to o. Every one is documented in
// docs/operations.md (TestEveryFlagIsDocumented).
func (o *options) bindFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.kubeconfig, "kubeconfig", "", "Path to a kubeconfig. Empty means $KUBECONFIG, ~/.kube/config, or the in-cluster config.")
	fs.StringVar(&o.namespace, "namespace", "", "Only watch AWSSecrets and Secrets in this namespace. Empty means all namespaces.")
	fs.IntVar(&o.workers, "workers", 16, "How many AWSSecrets to sync at once.")
	fs.Float64Var(&o.kubeAPIQPS, "kube-api-qps", 200, "Sustained queries per second to the Kubernetes API.")
	fs.IntVar(&o.kubeAPIBurst, "kube-api-burst", 400, "Burst of queries to the Kubernetes API.")
	fs.StringVar(&o.awsRegion, "aws-region", "", "AWS region. Empty means AWS_REGION or the shared AWS config.")
	fs.StringVar(&o.awsEndpoint, "aws-endpoint", "", "Secrets Manager endpoint URL, e.g. for an emulator. Empty means AWS's, or AWS_ENDPOINT_URL_SECRETS_MANAGER.")
	fs.Float64Var(&o.awsAPIQPS, "aws-api-qps", 0, "Cap on requests per second to Secrets Manager (every attempt, SDK retries included, every identity). 0 means no cap but the rate throttling sets: a throttled request halves the rate, at most once a second, down to --aws-api-min-qps.")
	fs.IntVar(&o.awsAPIBurst, "aws-api-burst", 0, "Burst of requests to Secrets Manager above --aws-api-qps. 0 means --aws-api-qps.")
	fs.Float64Var(&o.awsAPIMinQPS, "aws-api-min-qps", awssm.DefaultMinQPS, "Floor of the request rate that throttling by Secrets Manager lowers.")
	fs.Int64Var(&o.versionCacheBytes, "version-cache-bytes", awssm.DefaultCacheBytes, "Bound on the secret versions kept in memory, in bytes. 0 means the default, 32 MiB; negative disables the cache.")
	fs.BoolVar(&o.leaderElect, "leader-elect", false, "Elect a leader through a Lease so that only one replica syncs.")
	fs.StringVar(&o.leaderElectID, "leader-elect-id", controller.ComponentName, "Name of the leader election Lease.")
	fs.StringVar(&o.leaderElectNS, "leader-elect-namespace", "", "Namespace of the leader election Lease. Empty means $POD_NAMESPACE, the in-cluster namespace, --namespace, or default.")
	fs.DurationVar(&o.leaseDuration, "leader-elect-lease-duration", 15*time.Second, "How long a Lease is valid without renewal: the longest a new leader waits after the old one stopped renewing.")
	fs.DurationVar(&o.renewDeadline, "leader-elect-renew-deadline", 10*time.Second, "How long the leader keeps retrying to renew before it gives up leading (and exits, after the syncs in flight).")
	fs.DurationVar(&o.retryPeriod, "leader-elect-retry-period", 2*time.Second, "How often to try to acquire or renew the Lease.")
	fs.StringVar(&o.metricsAddr, "metrics-bind-address", ":8080", "Address of the Prometheus /metrics endpoint. Empty or 0 disables it.")
	fs.StringVar(&o.healthProbeAddr, "health-probe-bind-address", ":8081", "Address of the /healthz and /readyz endpoints. Empty or 0 disables them.")
	fs.DurationVar(&o.resyncPeriod, "resync-period", 10*time.Hour, "How often informers replay their caches, which re-checks every AWSSecret without AWS calls.")
	fs.DurationVar(&o.syncTimeout, "sync-timeout", time.Minute, "How long one sync may take, its AWS calls, its rendering and its writes included; a template still rendering then stops with InvalidTemplate. 0 means one minute.")
	fs.DurationVar(&o.shutdownGracePeriod, "shutdown-grace-period", 10*time.Second, "How long the HTTP servers get to finish on shutdown.")
	fs.StringVar(&o.namespacePolicy, "namespace-policy", string(tenancy.ModeOpen), "Which secrets a namespace's AWSSecrets may read: open (any, within --allowed-secret-ids) or allow-list (only those its Namespace's "+tenancy.AnnotationAllowedSecretIDs+" annotation permits; none without it). allow-list needs to watch Namespaces, so it cannot be combined with --namespace.")
	fs.StringVar(&o.allowedSecretIDs, "allowed-secret-ids", "", "Comma-separated secret id patterns (* matches any run of characters) that bound every namespace in both policies. Empty means no bound; a value that holds no pattern (\" \", \",\") is refused.")
	fs.BoolVar(&o.roleSessionTags, "aws-role-session-tags", true, "Tag the STS sessions of namespace roles with "+awssm.SessionTagKey+"=<namespace>, for ABAC. Turn off for trust policies that do not allow sts:TagSession.")
	fs.BoolVar(&o.version, "version", false, "Print the version and commit, and exit.")
}

func main() {
	klog.InitFlags(nil)
	var o options
	o.bindFlags(flag.CommandLine)
	flag.Parse()
	if o.version {
		fmt.Println(versionString())
		return
	}
	capped := capVerbosity(flag.CommandLine)

	// The controller waits on the API server and AWS far more than it computes: a GC target of 50
	// instead of 100 cut the peak RSS of a 10,000-object cold start from 155 to 130 MiB at the
	// same speed (docs/benchmarks.md). GOGC in the environment still wins.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(50)
	}
	// The informers' initial lists stream (client-go's WatchListClient, beta, off by default in
	// client-go 0.34): each object passes through TransformForCache as it arrives, instead of a
	// whole LIST of every Secret, values included, sitting in memory at once, which at 100,000
	// Secrets is the controller's peak (docs/benchmarks.md). An API server that does not stream
	// lists is answered with a plain LIST. KUBE_FEATURE_WatchListClient in the environment
	// still wins.
	if _, set := os.LookupEnv("KUBE_FEATURE_WatchListClient"); !set {
		_ = os.Setenv("KUBE_FEATURE_WatchListClient", "true")
	}
	ctx := signalContext()
	logger := klog.FromContext(ctx)
	if capped != "" {
		logger.Info("Verbosity capped: client-go logs request and response bodies, which hold Secret values, above it",
			"max", maxVerbosity, "requested", capped)
	}
	if err := run(ctx, o); err != nil {
		logger.Error(err, "Controller failed")
		klog.FlushAndExit(klog.ExitFlushTimeout, 1)
	}
	logger.Info("Stopped")
	klog.Flush()
}

// signalContext is canceled on SIGTERM or SIGINT; a second signal exits at once.
func signalContext() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	signals := make(chan os.Signal, 2)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-signals
		cancel()
		<-signals
		os.Exit(1)
	}()
	return ctx
}

func run(ctx context.Context, o options) error {
	logger := klog.FromContext(ctx)
	if o.syncTimeout < 0 {
		return fmt.Errorf("--sync-timeout must not be negative")
	}
	if o.workers < 1 {
		return fmt.Errorf("--workers must be at least 1")
	}
	// Before any client: a bound that holds no pattern must stop the controller, not open it.
	global, err := parseAllowedSecretIDs(o.allowedSecretIDs)
	if err != nil {
		return err
	}

	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(
		&clientcmd.ClientConfigLoadingRules{ExplicitPath: o.kubeconfig, Precedence: clientcmd.NewDefaultClientConfigLoadingRules().Precedence},
		&clientcmd.ConfigOverrides{},
	).ClientConfig()
	if err != nil {
		return fmt.Errorf("building Kubernetes client configuration: %w", err)
	}
	cfg.QPS, cfg.Burst = float32(o.kubeAPIQPS), o.kubeAPIBurst
	cfg.UserAgent = controller.ComponentName
	// Core types (Secrets, Events, Leases) travel as protobuf: smaller and cheaper to decode.
	kubeCfg := rest.CopyConfig(cfg)
	kubeCfg.ContentType = "application/vnd.kubernetes.protobuf"
	kubeCfg.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
	kubeClient, err := kubernetes.NewForConfig(kubeCfg)
	if err != nil {
		return err
	}
	client, err := clientset.NewForConfig(cfg)
	if err != nil {
		return err
	}
	// Events get a client, and so a rate limit, of their own: a burst of them (one per Secret
	// created at a cold start) must not slow the Secret writes down.
	eventsClient, err := kubernetes.NewForConfig(kubeCfg)
	if err != nil {
		return err
	}

	mode, err := tenancy.ParseMode(o.namespacePolicy)
	if err != nil {
		return err
	}
	if mode == tenancy.ModeAllowList && o.namespace != "" {
		return fmt.Errorf("--namespace-policy=allow-list reads Namespaces, which a controller confined by --namespace may not: bound it with --allowed-secret-ids instead")
	}
	policy := tenancy.Policy{Mode: mode, Global: global}

	if o.awsAPIQPS < 0 || o.awsAPIBurst < 0 || o.awsAPIMinQPS <= 0 {
		return fmt.Errorf("--aws-api-qps and --aws-api-burst cannot be negative, and --aws-api-min-qps must be positive")
	}
	m := newMetrics()
	pacer := awssm.NewPacer(awssm.PacerOptions{QPS: o.awsAPIQPS, Burst: o.awsAPIBurst, MinQPS: o.awsAPIMinQPS, OnAttempt: m.observeAWSAttempt})
	smCfg := awssm.Config{Region: o.awsRegion, Endpoint: o.awsEndpoint, Pacer: pacer, OnAssumeRole: m.observeAssumeRole}
	awsCfg, err := awssm.LoadConfig(ctx, smCfg)
	if err != nil {
		return err
	}
	roles := awssm.NewRoles(awsCfg, smCfg, o.roleSessionTags)
	// GOMEMLIMIT bounds the heap and the version cache together (internal/capacity), but the
	// cache keeps its versions outside the Go heap, which the runtime's limit does not count: the
	// runtime gets GOMEMLIMIT less what the cache has mapped.
	memLimit := debug.SetMemoryLimit(-1)
	versions := awssm.NewCache(awssm.NewClient(awsCfg, smCfg), awssm.CacheOptions{
		MaxBytes: o.versionCacheBytes, OnCall: m.observeAWSCall, Roles: roles.For, Logger: klog.FromContext(ctx),
		OnMapped: func(mapped int64) { debug.SetMemoryLimit(goMemoryLimit(memLimit, mapped)) },
	})
	m.registerCache(versions)
	m.registerPacer(pacer)

	kubeFactory := kubeinformers.NewSharedInformerFactoryWithOptions(kubeClient, o.resyncPeriod,
		kubeinformers.WithNamespace(o.namespace),
		kubeinformers.WithTweakListOptions(controller.ManagedSecretsOnly))
	// Registered first, so that kubeFactory.Core().V1().Secrets() is this one: it drops the data
	// of every Secret as it arrives, before client-go holds a whole initial list.
	kubeFactory.InformerFor(&corev1.Secret{}, func(c kubernetes.Interface, resync time.Duration) cache.SharedIndexInformer {
		return controller.NewSecretInformer(c, o.namespace, resync)
	})
	factory := informers.NewSharedInformerFactoryWithOptions(client, o.resyncPeriod,
		informers.WithNamespace(o.namespace))
	// Registered first, so that factory.Mumoshu().V1alpha1().AWSSecrets() is this one: it trims
	// every AWSSecret as it arrives, before client-go holds a whole initial list.
	factory.InformerFor(&v1alpha1.AWSSecret{}, func(c clientset.Interface, resync time.Duration) cache.SharedIndexInformer {
		return controller.NewAWSSecretInformer(c, o.namespace, resync)
	})
	// A cluster-wide controller watches Namespaces' metadata for the policy annotations; one
	// confined by --namespace may not read Namespaces, and uses --allowed-secret-ids alone.
	var namespaceInformer cache.SharedIndexInformer
	if o.namespace == "" {
		metadataClient, err := metadata.NewForConfig(cfg)
		if err != nil {
			return err
		}
		namespaceInformer = metadatainformer.NewFilteredMetadataInformer(metadataClient, corev1.SchemeGroupVersion.WithResource("namespaces"),
			"", o.resyncPeriod, cache.Indexers{}, nil).Informer()
		if err := namespaceInformer.SetTransform(controller.TransformForCache); err != nil {
			return err
		}
	}

	m.registerAWSSecrets(factory.Mumoshu().V1alpha1().AWSSecrets().Lister())
	c, err := controller.NewController(ctx, controller.Options{
		KubeClient:        kubeClient,
		AWSSecretClient:   client,
		AWSSecretInformer: factory.Mumoshu().V1alpha1().AWSSecrets(),
		SecretInformer:    kubeFactory.Core().V1().Secrets(),
		Versions:          versions,
		Policy:            policy,
		NamespaceInformer: namespaceInformer,
		EventsClient:      eventsClient,
		OnSync:            m.observeSync,
		SyncTimeout:       o.syncTimeout,
	})
	if err != nil {
		return err
	}
	// Every replica fills its caches, so a new leader starts warm; only the leader syncs. The
	// informers stop when run returns, whatever the reason (a lost Lease too, which leaves ctx
	// alive): the factories' Shutdown waits for them, and stopInformers runs first.
	informerCtx, stopInformers := context.WithCancel(ctx)
	kubeFactory.Start(informerCtx.Done())
	factory.Start(informerCtx.Done())
	if namespaceInformer != nil {
		go namespaceInformer.RunWithContext(informerCtx)
	}
	defer kubeFactory.Shutdown()
	defer factory.Shutdown()
	defer stopInformers()

	var leaderHealth *leaderelection.HealthzAdaptor
	if o.leaderElect {
		leaderHealth = leaderelection.NewLeaderHealthzAdaptor(20 * time.Second)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return serve(gctx, o.metricsAddr, m.handler(), o.shutdownGracePeriod) })
	g.Go(func() error {
		return serve(gctx, o.healthProbeAddr, healthHandler(c, leaderHealth), o.shutdownGracePeriod)
	})
	g.Go(func() error {
		if !o.leaderElect {
			// A single replica leads by definition.
			m.leader.WithLabelValues(o.leaderElectID).Set(1)
			return c.Run(gctx, o.workers)
		}
		m.leader.WithLabelValues(o.leaderElectID).Set(0)
		return runLeading(gctx, kubeClient, o, leaderHealth, func(ctx context.Context) error { return c.Run(ctx, o.workers) })
	})
	logger.Info("Running", "version", versionString(), "namespace", o.namespace, "workers", o.workers, "leaderElect", o.leaderElect,
		"namespacePolicy", policy.Mode, "allowedSecretIDs", policy.Global.String(),
		"streamedLists", clientfeatures.FeatureGates().Enabled(clientfeatures.WatchListClient))
	if err := g.Wait(); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// parseAllowedSecretIDs parses --allowed-secret-ids. Empty (the default) means no bound, nil;
// anything else must hold at least one pattern: " ", "," or " , " is an error, never no bound.
func parseAllowedSecretIDs(s string) (tenancy.Patterns, error) {
	if s == "" {
		return nil, nil
	}
	p, err := tenancy.ParsePatternList(s)
	if err != nil {
		return nil, fmt.Errorf("--allowed-secret-ids: %w; give at least one, e.g. --allowed-secret-ids='team-a/*', or leave the flag out (or empty) for no bound", err)
	}
	return p, nil
}

// runLeading runs the controller (run) while this replica holds the Lease. On shutdown the
// controller finishes its syncs in flight first and the Lease is released after, so that the
// next leader never overlaps with this one. Losing the Lease is an error: the process exits
// and restarts, but only once the syncs in flight are done. Then the overlap is bounded, not
// prevented: a new leader may start LeaseDuration after the last renewal while the old one
// drains for up to the controller's DrainTimeout after RenewDeadline; every write is guarded by
// a resourceVersion or a create, so the two cannot blindly overwrite each other.
func runLeading(ctx context.Context, kubeClient kubernetes.Interface, o options, health *leaderelection.HealthzAdaptor, run func(context.Context) error) error {
	hostname, err := os.Hostname()
	if err != nil {
		return err
	}
	id := hostname + "_" + string(uuid.NewUUID())
	lock, err := resourcelock.New(resourcelock.LeasesResourceLock, leaseNamespace(o), o.leaderElectID,
		kubeClient.CoreV1(), kubeClient.CoordinationV1(), resourcelock.ResourceLockConfig{Identity: id})
	if err != nil {
		return err
	}

	// The elector's context outlives ctx until the controller has stopped.
	electorCtx, stopElector := context.WithCancel(context.WithoutCancel(ctx))
	defer stopElector()
	var leading atomic.Bool
	// stopped is closed when the controller has returned after leading.
	stopped := make(chan struct{})
	go func() {
		<-ctx.Done()
		if !leading.Load() {
			stopElector()
		}
	}()

	elector, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock:            lock,
		LeaseDuration:   o.leaseDuration,
		RenewDeadline:   o.renewDeadline,
		RetryPeriod:     o.retryPeriod,
		ReleaseOnCancel: true,
		Name:            o.leaderElectID,
		WatchDog:        health,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(leaderCtx context.Context) {
				leading.Store(true)
				defer close(stopped)
				defer stopElector()
				logger := klog.FromContext(ctx)
				logger.Info("Became leader", "identity", id)
				// Stop on shutdown or on losing the Lease, whichever comes first.
				runCtx, cancel := context.WithCancel(ctx)
				defer cancel()
				defer context.AfterFunc(leaderCtx, cancel)()
				if err := run(runCtx); err != nil {
					logger.Error(err, "Controller stopped")
				}
			},
			OnStoppedLeading: func() {
				klog.FromContext(ctx).Info("Stopped leading", "identity", id)
			},
			OnNewLeader: func(identity string) {
				if identity != id {
					klog.FromContext(ctx).Info("New leader elected", "leader", identity)
				}
			},
		},
	})
	if err != nil {
		return err
	}
	elector.Run(electorCtx)
	if leading.Load() {
		// The elector returns as soon as it cancels the leader's context; the controller may
		// still be finishing its syncs in flight.
		<-stopped
	}
	if ctx.Err() == nil {
		return errors.New("leader election lost")
	}
	return nil
}

// leaseNamespace picks where the leader election Lease lives.
func leaseNamespace(o options) string {
	if o.leaderElectNS != "" {
		return o.leaderElectNS
	}
	if ns := os.Getenv("POD_NAMESPACE"); ns != "" {
		return ns
	}
	if b, err := os.ReadFile("/var/run/secrets/kubernetes.io/serviceaccount/namespace"); err == nil {
		if ns := strings.TrimSpace(string(b)); ns != "" {
			return ns
		}
	}
	if o.namespace != "" {
		return o.namespace
	}
	return "default"
}

// healthHandler serves /healthz (the process and, when elected, its Lease renewals are alive)
// and /readyz (the informer caches have synced).
func healthHandler(c *controller.Controller, leader *leaderelection.HealthzAdaptor) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		if leader != nil {
			if err := leader.Check(r); err != nil {
				http.Error(w, "leader election: "+err.Error(), http.StatusInternalServerError)
				return
			}
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !c.HasSynced() {
			http.Error(w, "informer caches have not synced", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	return mux
}

// serve runs an HTTP server on addr until ctx ends, then shuts it down gracefully.
func serve(ctx context.Context, addr string, h http.Handler, grace time.Duration) error {
	if addr == "" || addr == "0" {
		return nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	klog.FromContext(ctx).Info("Serving", "address", ln.Addr().String())
	errs := make(chan error, 1)
	go func() { errs <- srv.Serve(ln) }()
	select {
	case err := <-errs:
		return err
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), grace)
	defer cancel()
	return srv.Shutdown(shutdownCtx)
}

// maxVerbosity is the highest klog verbosity the binary allows. client-go logs request and
// response bodies from -v=8 on (with protobuf, a Secret's data is readable in the hex dump), and
// curl commands with headers at -v=9: no verbosity may print a Secret value.
const maxVerbosity = 7

// capVerbosity lowers -v and every -vmodule level to maxVerbosity and returns what was asked
// for when it had to, or "".
func capVerbosity(fs *flag.FlagSet) string {
	var asked []string
	if f := fs.Lookup("v"); f != nil {
		if n, err := strconv.Atoi(f.Value.String()); err == nil && n > maxVerbosity {
			asked = append(asked, "-v="+f.Value.String())
			_ = f.Value.Set(strconv.Itoa(maxVerbosity))
		}
	}
	if f := fs.Lookup("vmodule"); f != nil && f.Value.String() != "" {
		parts := strings.Split(f.Value.String(), ",")
		changed := false
		for i, part := range parts {
			pattern, level, ok := strings.Cut(part, "=")
			if n, err := strconv.Atoi(level); ok && err == nil && n > maxVerbosity {
				parts[i] = pattern + "=" + strconv.Itoa(maxVerbosity)
				changed = true
			}
		}
		if changed {
			asked = append(asked, "-vmodule="+f.Value.String())
			_ = f.Value.Set(strings.Join(parts, ","))
		}
	}
	return strings.Join(asked, " ")
}

// goMemoryLimit is the Go runtime's memory limit for a process whose GOMEMLIMIT is limit
// (math.MaxInt64: none) while the version cache holds mapped bytes outside the Go heap: the rest,
// and never less than half.
func goMemoryLimit(limit, mapped int64) int64 {
	if limit == math.MaxInt64 {
		return limit
	}
	return max(limit-mapped, limit/2)
}
