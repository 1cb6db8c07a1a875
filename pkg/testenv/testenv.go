// Package testenv runs a real local stack for integration tests, demos and benchmarks: etcd, a
// kube-apiserver and the kumo Secrets Manager emulator, on free loopback ports in a temporary
// folder. The binaries come from `make tools` (bin/ of this repository, or
// $AWS_SECRET_CONTROLLER_BIN_DIR). Embedders can use it to test their own controllers against
// the same stack.
package testenv

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// BinDirEnv names the environment variable that points at the folder holding kube-apiserver,
// etcd, kumo and kubectl.
const BinDirEnv = "AWS_SECRET_CONTROLLER_BIN_DIR"

// Region is the AWS region the emulator answers for.
const Region = "us-east-1"

// Options tune a stack.
type Options struct {
	// BinDir holds kube-apiserver, etcd and kumo. Empty means $AWS_SECRET_CONTROLLER_BIN_DIR,
	// else the bin/ folder of the enclosing repository.
	BinDir string
	// Dir is where data, certificates, kubeconfigs and logs go. Empty means a new temporary
	// folder, removed by Stop.
	Dir string
	// Users are extra identities with bearer tokens and no permissions (no groups beyond
	// system:authenticated), for RBAC tests: see UserConfig.
	Users []string
	// CRDs are CRD manifests to install and wait for.
	CRDs []string
	// Timeout bounds the start of each component. Zero means two minutes.
	Timeout time.Duration
	// EtcdFsync keeps etcd's fsync on. Off by default: tests do not need durability.
	EtcdFsync bool
	// AuditPolicy, an audit.k8s.io/v1 Policy in YAML, turns on kube-apiserver's audit log
	// (Dir/audit.log, JSON lines): see AuditEvents. The log outlives restarts of the API server,
	// which its /metrics do not.
	AuditPolicy string

	// Node adds a real node, so Pods run: containerd (Debian's, with runc and the CNI plugins),
	// kubelet, kube-controller-manager (garbage collection, Deployments, ServiceAccount tokens)
	// and kube-scheduler, from `make node-tools`. Linux and root only; one node per machine at a
	// time (a second waits up to NodeLockTimeout). kube-apiserver and the emulator then listen
	// on NodeGateway, the host's address on the Pods' bridge, instead of 127.0.0.1. There is no
	// kube-proxy: Pods reach the API server at NodeGateway (set KUBERNETES_SERVICE_HOST).
	Node bool
	// NodeImages are OCI image archives (as `make image` writes) to import into the node, besides
	// the pause image from BinDir.
	NodeImages []string
	// NodeLockTimeout bounds the wait for another stack's node to stop. Zero means 20 minutes.
	NodeLockTimeout time.Duration
}

// Env is a running stack.
type Env struct {
	// Dir holds everything the stack writes; logs are Dir/<component>.log.
	Dir string
	// Kubeconfig is the path of an admin (system:masters) kubeconfig.
	Kubeconfig string
	// Config is the admin client configuration.
	Config *rest.Config
	// APIServerURL is the kube-apiserver's address.
	APIServerURL string
	// SecretsManagerEndpoint is the emulator's address, for BaseEndpoint or
	// AWS_ENDPOINT_URL_SECRETS_MANAGER.
	SecretsManagerEndpoint string
	// BinDir is where the binaries were found.
	BinDir string

	etcdURL string
	// timeout bounds the start of a component (Options.Timeout).
	timeout time.Duration
	// host is the address kube-apiserver and the emulator listen on.
	host      string
	tokens    map[string]string
	caData    []byte
	removeDir bool

	mu    sync.Mutex
	procs []*process

	// node is the running node, if any (Options.Node); nodeDir and nodeOwned stay after Stop
	// for NodeLeftovers.
	node      *node
	nodeDir   string
	nodeOwned []string
}

// New starts a stack. Call Stop when done, also on error paths: New stops what it started when
// it fails.
func New(ctx context.Context, opts Options) (_ *Env, err error) {
	if opts.Timeout == 0 {
		opts.Timeout = 2 * time.Minute
	}
	if opts.NodeLockTimeout == 0 {
		opts.NodeLockTimeout = 20 * time.Minute
	}
	binDir, err := findBinDir(opts.BinDir, opts.Node)
	if err != nil {
		return nil, err
	}
	e := &Env{Dir: opts.Dir, BinDir: binDir, host: "127.0.0.1", tokens: map[string]string{}, timeout: opts.Timeout}
	if e.Dir == "" {
		if e.Dir, err = os.MkdirTemp("", "aws-secret-controller-env-"); err != nil {
			return nil, err
		}
		e.removeDir = true
	}
	defer func() {
		if err != nil {
			_ = e.Stop()
		}
	}()

	if opts.Node {
		if err := e.startNodeNetwork(ctx, opts); err != nil {
			return nil, err
		}
		e.host = NodeGateway
	}
	if err := e.startEtcd(ctx, opts); err != nil {
		return nil, err
	}
	if err := e.startAPIServer(ctx, opts); err != nil {
		return nil, err
	}
	if err := e.startKumo(ctx, opts); err != nil {
		return nil, err
	}
	if opts.Node {
		if err := e.startNode(ctx, opts); err != nil {
			return nil, err
		}
	}
	if len(opts.CRDs) > 0 {
		if err := e.InstallCRDs(ctx, opts.CRDs...); err != nil {
			return nil, err
		}
	}
	return e, nil
}

func findBinDir(dir string, node bool) (string, error) {
	if dir == "" {
		dir = os.Getenv(BinDirEnv)
	}
	if dir == "" {
		// The bin/ of the nearest enclosing folder that has one with the stack in it.
		wd, err := os.Getwd()
		if err != nil {
			return "", err
		}
		for d := wd; ; d = filepath.Dir(d) {
			if _, err := os.Stat(filepath.Join(d, "bin", "kube-apiserver")); err == nil {
				dir = filepath.Join(d, "bin")
				break
			}
			if filepath.Dir(d) == d {
				break
			}
		}
	}
	names, target := []string{"etcd", "kube-apiserver", "kumo"}, "tools"
	if node {
		names, target = append(names, "kubelet", "kube-controller-manager", "kube-scheduler", "pause-image.tar"), "node-tools pause-image"
	}
	for _, name := range names {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			return "", fmt.Errorf("%s not found in %q: run `make %s` or set %s", name, dir, target, BinDirEnv)
		}
	}
	return filepath.Abs(dir)
}

func (e *Env) startEtcd(ctx context.Context, opts Options) error {
	clientPort, peerPort := freePort(), freePort()
	if clientPort == 0 || peerPort == 0 {
		return errors.New("no free port for etcd")
	}
	clientURL := fmt.Sprintf("http://127.0.0.1:%d", clientPort)
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", peerPort)
	args := []string{
		"--data-dir", filepath.Join(e.Dir, "etcd"),
		"--listen-client-urls", clientURL, "--advertise-client-urls", clientURL,
		"--listen-peer-urls", peerURL, "--initial-advertise-peer-urls", peerURL,
		"--initial-cluster", "default=" + peerURL,
		"--log-level", "warn",
	}
	if !opts.EtcdFsync {
		args = append(args, "--unsafe-no-fsync")
	}
	p, err := e.start("etcd", args, nil)
	if err != nil {
		return err
	}
	e.etcdURL = clientURL
	p.ready = func(ctx context.Context) bool {
		body, status := get(ctx, http.DefaultClient, clientURL+"/health", "")
		return status == http.StatusOK && bytes.Contains(body, []byte(`"health":"true"`))
	}
	return p.waitReady(ctx, opts.Timeout, p.ready)
}

func (e *Env) startAPIServer(ctx context.Context, opts Options) error {
	certDir := filepath.Join(e.Dir, "certs")
	if err := os.MkdirAll(certDir, 0o700); err != nil {
		return err
	}
	saKey := filepath.Join(certDir, "sa.key")
	saPub := filepath.Join(certDir, "sa.pub")
	if err := writeServiceAccountKeys(saKey, saPub); err != nil {
		return err
	}
	var tokens strings.Builder
	e.tokens["admin"] = randomToken()
	fmt.Fprintf(&tokens, "%s,admin,admin,system:masters\n", e.tokens["admin"])
	for _, user := range opts.Users {
		e.tokens[user] = randomToken()
		fmt.Fprintf(&tokens, "%s,%s,%s\n", e.tokens[user], user, user)
	}
	tokenFile := filepath.Join(certDir, "tokens.csv")
	if err := os.WriteFile(tokenFile, []byte(tokens.String()), 0o600); err != nil {
		return err
	}

	port := freePort()
	if port == 0 {
		return errors.New("no free port for kube-apiserver")
	}
	e.APIServerURL = fmt.Sprintf("https://%s:%d", e.host, port)
	args := []string{
		"--etcd-servers", e.etcdURL,
		"--cert-dir", certDir,
		"--secure-port", fmt.Sprint(port),
		"--bind-address", e.host,
		"--service-account-issuer", "https://kubernetes.default.svc",
		"--service-account-key-file", saPub,
		"--service-account-signing-key-file", saKey,
		"--token-auth-file", tokenFile,
		"--authorization-mode", "RBAC",
		"--service-cluster-ip-range", "10.0.0.0/24",
		// Setting blockOwnerDeletion on an ownerReference then needs update on the owner's
		// finalizers, as on OpenShift: RBAC tests prove the shipped roles allow what the controller
		// writes.
		"--enable-admission-plugins", "OwnerReferencesPermissionEnforcement",
		"--max-requests-inflight", "1000",
		"--max-mutating-requests-inflight", "500",
	}
	if opts.AuditPolicy != "" {
		policy := filepath.Join(e.Dir, "audit-policy.yaml")
		if err := os.WriteFile(policy, []byte(opts.AuditPolicy), 0o600); err != nil {
			return err
		}
		args = append(args, "--audit-policy-file", policy, "--audit-log-path", filepath.Join(e.Dir, "audit.log"),
			"--audit-log-format", "json", "--audit-log-mode", "blocking")
	}
	if e.node == nil {
		// The ServiceAccount plugin serves Pods, and no Pods run without a node.
		args = append(args, "--disable-admission-plugins", "ServiceAccount")
	} else {
		// Pods find the API server at the address it serves on; `kubectl logs` reaches the
		// kubelet at the node's InternalIP (NodeGateway), not at its hostname.
		args = append(args, "--advertise-address", e.host, "--kubelet-preferred-address-types", "InternalIP")
	}
	p, err := e.start("kube-apiserver", args, nil)
	if err != nil {
		return err
	}
	insecure := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	p.ready = func(ctx context.Context) bool {
		_, status := get(ctx, insecure, e.APIServerURL+"/readyz", e.tokens["admin"])
		return status == http.StatusOK
	}
	if err := p.waitReady(ctx, opts.Timeout, p.ready); err != nil {
		return err
	}
	// The API server made itself a CA and a serving certificate for 127.0.0.1: trust that CA.
	if e.caData, err = os.ReadFile(filepath.Join(certDir, "apiserver.crt")); err != nil {
		return err
	}
	e.Config = e.UserConfig("admin")
	e.Kubeconfig = filepath.Join(e.Dir, "admin.kubeconfig")
	return e.WriteKubeconfig("admin", e.Kubeconfig)
}

func (e *Env) startKumo(ctx context.Context, opts Options) error {
	port := freePort()
	if port == 0 {
		return errors.New("no free port for kumo")
	}
	e.SecretsManagerEndpoint = fmt.Sprintf("http://%s:%d", e.host, port)
	// Debug logging adds each request's body (one line after the request's own), which is how
	// tests see what an STS AssumeRole asked for (EmulatorRequestBodies). It also prints the
	// values tests store: test values only, and only in kumo's own log.
	p, err := e.start("kumo", nil, []string{"KUMO_HOST=" + e.host, fmt.Sprintf("KUMO_PORT=%d", port), "AWS_DEFAULT_REGION=" + Region, "KUMO_LOG_LEVEL=debug"})
	if err != nil {
		return err
	}
	p.ready = func(ctx context.Context) bool {
		_, err := e.SecretsManager().ListSecrets(ctx, &secretsmanager.ListSecretsInput{})
		return err == nil
	}
	return p.waitReady(ctx, opts.Timeout, p.ready)
}

// UserConfig returns a client configuration for a user: "admin", or one of Options.Users.
func (e *Env) UserConfig(user string) *rest.Config {
	return &rest.Config{
		Host:            e.APIServerURL,
		BearerToken:     e.tokens[user],
		TLSClientConfig: rest.TLSClientConfig{CAData: e.caData},
		QPS:             1000,
		Burst:           2000,
	}
}

// WriteKubeconfig writes a kubeconfig for a user ("admin" or one of Options.Users) to path.
func (e *Env) WriteKubeconfig(user, path string) error {
	token, ok := e.tokens[user]
	if !ok {
		return fmt.Errorf("no user %q", user)
	}
	return e.writeKubeconfig(user, token, path)
}

// WriteTokenKubeconfig writes a kubeconfig that authenticates with a bearer token, such as one
// from a ServiceAccount's TokenRequest.
func (e *Env) WriteTokenKubeconfig(name, token, path string) error {
	return e.writeKubeconfig(name, token, path)
}

func (e *Env) writeKubeconfig(name, token, path string) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["local"] = &clientcmdapi.Cluster{Server: e.APIServerURL, CertificateAuthorityData: e.caData}
	cfg.AuthInfos[name] = &clientcmdapi.AuthInfo{Token: token}
	cfg.Contexts[name] = &clientcmdapi.Context{Cluster: "local", AuthInfo: name, Namespace: "default"}
	cfg.CurrentContext = name
	return clientcmd.WriteToFile(*cfg, path)
}

// Kubectl runs the kubectl of BinDir as admin, with stdin, and returns its combined output.
func (e *Env) Kubectl(ctx context.Context, stdin string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(e.BinDir, "kubectl"), append([]string{"--kubeconfig", e.Kubeconfig}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out.String())
	}
	return out.String(), nil
}

// SecretsManager returns a client of the emulator, with static test credentials.
func (e *Env) SecretsManager() *secretsmanager.Client {
	return secretsmanager.New(secretsmanager.Options{
		Region:       Region,
		BaseEndpoint: aws.String(e.SecretsManagerEndpoint),
		Credentials:  credentials.NewStaticCredentialsProvider("test", "test", ""),
	})
}

// AWSEnv returns the environment a process needs to use the emulator through the AWS SDK's
// default configuration.
func (e *Env) AWSEnv() []string {
	return []string{
		"AWS_ACCESS_KEY_ID=test",
		"AWS_SECRET_ACCESS_KEY=test",
		"AWS_REGION=" + Region,
		"AWS_ENDPOINT_URL_SECRETS_MANAGER=" + e.SecretsManagerEndpoint,
		// kumo answers STS on the same port.
		"AWS_ENDPOINT_URL_STS=" + e.SecretsManagerEndpoint,
		"AWS_EC2_METADATA_DISABLED=true",
	}
}

// EmulatorRequestBodies returns the bodies of the requests the emulator logged for an operation
// target, e.g. "AWSSecurityTokenServiceV20110615.AssumeRole" or "secretsmanager.GetSecretValue".
func (e *Env) EmulatorRequestBodies(target string) ([]string, error) {
	f, err := os.Open(filepath.Join(e.Dir, "kumo.log"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	ids := map[string]bool{}
	var bodies []string
	scanner := bufio.NewScanner(f)
	scanner.Buffer(make([]byte, 64*1024), 1024*1024)
	for scanner.Scan() {
		line := scanner.Text()
		id := logField(line, "request_id")
		switch {
		case id == "":
		case strings.Contains(line, "target="+target+" "):
			ids[id] = true
		case ids[id] && strings.Contains(line, `msg="request body"`):
			if body, err := strconv.Unquote(strings.TrimPrefix(line[strings.Index(line, " body=")+1:], "body=")); err == nil {
				bodies = append(bodies, body)
			}
		}
	}
	return bodies, scanner.Err()
}

// logField returns the value of key=value in a log line, or "".
func logField(line, key string) string {
	i := strings.Index(line, " "+key+"=")
	if i < 0 {
		return ""
	}
	v := line[i+len(key)+2:]
	if j := strings.IndexByte(v, ' '); j >= 0 {
		v = v[:j]
	}
	return v
}

// EmulatorRequests counts the requests the emulator logged for a Secrets Manager operation
// (e.g. "GetSecretValue") whose User-Agent contains agent ("" for any).
func (e *Env) EmulatorRequests(operation, agent string) (int, error) {
	f, err := os.Open(filepath.Join(e.Dir, "kumo.log"))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	target := "target=secretsmanager." + operation + " "
	n := 0
	scanner := bufio.NewScanner(f)
	scanner.Buffer(make([]byte, 64*1024), 1024*1024)
	for scanner.Scan() {
		line := scanner.Text()
		if strings.Contains(line, target) && strings.Contains(line, agent) {
			n++
		}
	}
	return n, scanner.Err()
}

// LogTail returns the last n lines of a component's log ("etcd", "kube-apiserver", "kumo").
func (e *Env) LogTail(component string, n int) string {
	return fileTail(filepath.Join(e.Dir, component+".log"), n)
}

// Stop stops every component, newest first, and removes the temporary folder. It is safe to call
// more than once. A component that had to be killed is an error; how a component exits on
// SIGTERM is not (etcd, for one, re-raises the signal).
func (e *Env) Stop() error {
	e.mu.Lock()
	procs := e.procs
	e.procs = nil
	e.mu.Unlock()
	var errs []error
	// The node first, while the API server still answers: its Pods are removed through it.
	if err := e.stopNode(); err != nil {
		errs = append(errs, err)
	}
	for i := len(procs) - 1; i >= 0; i-- {
		if _, err := procs[i].stop(10 * time.Second); err != nil {
			errs = append(errs, err)
		}
	}
	// The bridge goes after every process that listens on its address: a connection to an
	// address that is gone can no longer even be closed.
	if err := e.releaseNode(); err != nil {
		errs = append(errs, err)
	}
	if e.removeDir {
		if err := os.RemoveAll(e.Dir); err != nil {
			errs = append(errs, err)
		}
		e.removeDir = false
	}
	return errors.Join(errs...)
}

// start runs a component from BinDir, logging to Dir/<name>.log, and registers it for Stop.
func (e *Env) start(name string, args, env []string) (*process, error) {
	return e.startIn(&e.procs, name, filepath.Join(e.BinDir, name), args, env)
}

// startIn runs binary as the component name, logging to Dir/<name>.log, and adds it to procs
// (the stack's, or the node's) for Stop.
func (e *Env) startIn(procs *[]*process, name, binary string, args, env []string) (*process, error) {
	p, err := startProcess(name, binary, filepath.Join(e.Dir, name+".log"), args, env)
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	*procs = append(*procs, p)
	e.mu.Unlock()
	return p, nil
}

func get(ctx context.Context, client *http.Client, url, token string) ([]byte, int) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, 0
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, 0
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 256<<20)) // kube-apiserver /metrics runs to megabytes
	return body, resp.StatusCode
}

func randomToken() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func writeServiceAccountKeys(keyPath, pubPath string) error {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return err
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}), 0o600); err != nil {
		return err
	}
	return os.WriteFile(pubPath, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o600)
}

// Kill sends sig to a component ("etcd", "kube-apiserver", "kumo") and waits up to a minute for
// it to exit. The component stays registered: Restart starts it again.
func (e *Env) Kill(component string, sig syscall.Signal) error {
	p, err := e.component(component)
	if err != nil {
		return err
	}
	if err := p.signal(sig); err != nil {
		return fmt.Errorf("signalling %s: %w", component, err)
	}
	select {
	case <-p.done:
		return nil
	case <-time.After(time.Minute):
		return fmt.Errorf("%s did not exit within a minute of %s", component, sig)
	}
}

// Restart starts a component that Kill stopped, with the same flags, address and data, and waits
// until it serves again (Options.Timeout). Its log goes on in the same file. kumo keeps its
// secrets in memory: a restarted kumo has none.
func (e *Env) Restart(ctx context.Context, component string) error {
	p, err := e.component(component)
	if err != nil {
		return err
	}
	select {
	case <-p.done:
	default:
		return fmt.Errorf("%s is still running: Kill it first", component)
	}
	np, err := p.restart()
	if err != nil {
		return err
	}
	e.mu.Lock()
	for i := range e.procs {
		if e.procs[i] == p {
			e.procs[i] = np
		}
	}
	e.mu.Unlock()
	return np.waitReady(ctx, e.timeout, np.ready)
}

func (e *Env) component(name string) (*process, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, p := range e.procs {
		if p.name == name {
			return p, nil
		}
	}
	return nil, fmt.Errorf("no component %q", name)
}

// PID returns the process id of a running component ("etcd", "kube-apiserver", "kumo").
func (e *Env) PID(component string) (int, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, p := range e.procs {
		if p.name == component {
			return p.pid(), true
		}
	}
	return 0, false
}
