package testenv

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// node is the part of a stack that runs Pods: containerd (with runc and the CNI bridge plugin),
// kubelet, kube-controller-manager and kube-scheduler. All of it lives under Env.Dir/node; what
// cannot (the bridge, network namespaces, processes containerd re-parents) is recorded so stop
// removes it.
type node struct {
	dir    string
	sock   string
	lock   *os.File
	bridge bool
	// netns are the network namespaces that existed before the node started.
	netns map[string]bool
	// procs run in start order: containerd, kube-controller-manager, kube-scheduler, kubelet.
	procs []*process
	// stopped is set once stopNode has run; the bridge and the lock stay until releaseNode.
	stopped bool
}

// netnsDir is where containerd 1.6 mounts each Pod's network namespace.
const netnsDir = "/var/run/netns"

// startNodeNetwork takes the machine's node lock and makes the bridge, before kube-apiserver and
// the emulator start listening on its address.
func (e *Env) startNodeNetwork(ctx context.Context, opts Options) error {
	if os.Geteuid() != 0 {
		return errors.New("a node needs root (containerd, kubelet and the bridge do)")
	}
	for _, bin := range []string{"containerd", "runc", "ctr", "ip", "ss", "/usr/lib/cni/bridge", "/usr/lib/cni/host-local", "/usr/lib/cni/loopback"} {
		if _, err := exec.LookPath(bin); err != nil {
			return fmt.Errorf("a node needs %s: run `make node-tools` (%v)", bin, err)
		}
	}
	n := &node{dir: filepath.Join(e.Dir, "node"), netns: map[string]bool{}}
	e.node, e.nodeDir = n, n.dir
	if err := os.MkdirAll(n.dir, 0o755); err != nil {
		return err
	}
	n.sock = filepath.Join(n.dir, "containerd.sock")

	lock, err := os.OpenFile(filepath.Join(os.TempDir(), nodeLock), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return err
	}
	// Another test binary may hold the node (go test runs packages in parallel): wait for it.
	deadline := time.Now().Add(opts.NodeLockTimeout)
	for syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) != nil {
		if time.Now().After(deadline) {
			lock.Close()
			return fmt.Errorf("another node held %s for %s", lock.Name(), opts.NodeLockTimeout)
		}
		select {
		case <-ctx.Done():
			lock.Close()
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	n.lock = lock

	entries, _ := os.ReadDir(netnsDir)
	for _, entry := range entries {
		n.netns[entry.Name()] = true
	}
	if err := exec.Command("ip", "link", "show", nodeBridge).Run(); err == nil {
		// Left by a node that was killed before it cleaned up; nothing else uses the name.
		if out, err := exec.Command("ip", "link", "delete", nodeBridge).CombinedOutput(); err != nil {
			return fmt.Errorf("removing a stale %s: %v: %s", nodeBridge, err, out)
		}
	}
	n.bridge = true
	for _, args := range [][]string{
		{"link", "add", nodeBridge, "type", "bridge"},
		{"addr", "add", NodeGateway + "/24", "dev", nodeBridge},
		{"link", "set", nodeBridge, "up"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	return nil
}

// startNode starts containerd, imports the images, and starts the control plane's node parts
// and kubelet; it returns once the node is Ready and Pods can get ServiceAccount tokens.
func (e *Env) startNode(ctx context.Context, opts Options) error {
	n := e.node
	if err := e.startContainerd(ctx, opts); err != nil {
		return err
	}
	images := append([]string{filepath.Join(e.BinDir, "pause-image.tar")}, opts.NodeImages...)
	for _, image := range images {
		if err := e.ImportImage(ctx, image); err != nil {
			return err
		}
	}

	// run starts a Kubernetes binary of BinDir as part of the node.
	run := func(name string, args []string) (*process, error) {
		return e.startIn(&n.procs, name, filepath.Join(e.BinDir, name), args, nil)
	}
	certDir := filepath.Join(e.Dir, "certs")
	if _, err := run("kube-controller-manager", []string{
		"--kubeconfig", e.Kubeconfig,
		"--service-account-private-key-file", filepath.Join(certDir, "sa.key"),
		// Published as the kube-root-ca.crt ConfigMap, which in-cluster clients verify the API
		// server with: the API server's self-signed certificate and its CA.
		"--root-ca-file", filepath.Join(certDir, "apiserver.crt"),
		"--leader-elect=false",
		"--bind-address", "127.0.0.1", "--secure-port", fmt.Sprint(freePort()),
		"--cert-dir", filepath.Join(n.dir, "kube-controller-manager"),
	}); err != nil {
		return err
	}
	if _, err := run("kube-scheduler", []string{
		"--kubeconfig", e.Kubeconfig,
		"--leader-elect=false",
		"--bind-address", "127.0.0.1", "--secure-port", fmt.Sprint(freePort()),
		"--cert-dir", filepath.Join(n.dir, "kube-scheduler"),
	}); err != nil {
		return err
	}

	config := filepath.Join(n.dir, "kubelet.yaml")
	if err := os.WriteFile(config, []byte(kubeletConfig(n)), 0o644); err != nil {
		return err
	}
	kubelet, err := run("kubelet", []string{
		"--config", config,
		"--kubeconfig", e.Kubeconfig,
		"--root-dir", filepath.Join(n.dir, "kubelet"),
		"--cert-dir", filepath.Join(n.dir, "kubelet", "pki"),
		"--hostname-override", NodeName,
		// Its InternalIP, where kube-apiserver reaches it for logs: kubelet refuses a loopback one.
		"--node-ip", NodeGateway,
		"--v", "1",
	})
	if err != nil {
		return err
	}
	kube, err := kubernetes.NewForConfig(e.Config)
	if err != nil {
		return err
	}
	return kubelet.waitReady(ctx, opts.Timeout, func(ctx context.Context) bool {
		node, err := kube.CoreV1().Nodes().Get(ctx, NodeName, metav1.GetOptions{})
		if err != nil || !nodeReady(node) {
			return false
		}
		// Pods need the namespace's default ServiceAccount and kube-root-ca.crt, both made by
		// kube-controller-manager.
		if _, err := kube.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{}); err != nil {
			return false
		}
		_, err = kube.CoreV1().ConfigMaps("default").Get(ctx, "kube-root-ca.crt", metav1.GetOptions{})
		return err == nil
	})
}

func nodeReady(node *corev1.Node) bool {
	for _, c := range node.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// kubeletConfig is the kubelet's configuration for this machine: cgroup v1 without systemd, no
// swap check, no eviction (the disk may be fuller than kubelet's defaults allow), serving on the
// bridge's address with anonymous access allowed (kube-apiserver has no client certificate for
// the kubelet; only the host and this node's Pods reach that address: a test node only), every
// path under the node's folder.
func kubeletConfig(n *node) string {
	return fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: %s
port: %d
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: %d
authentication:
  anonymous:
    enabled: true
  webhook:
    enabled: false
authorization:
  mode: AlwaysAllow
containerRuntimeEndpoint: unix://%s
podLogsDir: %s
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
evictionHard: {}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
# The node reports ephemeral-storage, so Pods that request it (the controller does) are scheduled.
localStorageCapacityIsolation: true
serializeImagePulls: false
# Secret volumes are refreshed when a Pod syncs: every 10s here rather than every minute.
syncFrequency: 10s
`, NodeGateway, freePort(), freePort(), n.sock, filepath.Join(n.dir, "pod-logs"))
}

// startContainerd runs containerd with every path under the node's folder and the CRI settings
// this machine needs: runc without systemd, no oom_score_adj writes (root lacks
// CAP_SYS_RESOURCE here), the locally built pause image, the bridge network.
func (e *Env) startContainerd(ctx context.Context, opts Options) error {
	n := e.node
	cniDir := filepath.Join(n.dir, "cni")
	if err := os.MkdirAll(cniDir, 0o755); err != nil {
		return err
	}
	conflist := fmt.Sprintf(`{
  "cniVersion": "0.4.0",
  "name": "aws-secret-controller-node",
  "plugins": [{
    "type": "bridge",
    "bridge": %q,
    "isGateway": false,
    "ipMasq": false,
    "ipam": {
      "type": "host-local",
      "ranges": [[{"subnet": %q, "gateway": %q}]],
      "dataDir": %q
    }
  }]
}
`, nodeBridge, nodeSubnet, NodeGateway, filepath.Join(n.dir, "cni-ipam"))
	if err := os.WriteFile(filepath.Join(cniDir, "10-bridge.conflist"), []byte(conflist), 0o644); err != nil {
		return err
	}
	root := filepath.Join(n.dir, "containerd")
	config := fmt.Sprintf(`version = 2
root = %[1]q
state = %[2]q
[grpc]
  address = %[3]q
[ttrpc]
  address = %[4]q
[plugins."io.containerd.internal.v1.opt"]
  path = %[5]q
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %[6]q
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = %[7]q
  [plugins."io.containerd.grpc.v1.cri".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
`, filepath.Join(root, "root"), filepath.Join(root, "state"), n.sock, n.sock+".ttrpc",
		filepath.Join(root, "opt"), PauseImage, cniDir)
	configPath := filepath.Join(n.dir, "containerd.toml")
	if err := os.WriteFile(configPath, []byte(config), 0o644); err != nil {
		return err
	}
	p, err := e.startIn(&n.procs, "containerd", "containerd", []string{"--config", configPath}, nil)
	if err != nil {
		return err
	}
	return p.waitReady(ctx, opts.Timeout, func(ctx context.Context) bool {
		return exec.CommandContext(ctx, "ctr", "--address", n.sock, "version").Run() == nil
	})
}

// ImportImage imports an OCI image archive (an OCI layout in a tar, as `make image` writes) into
// the node's containerd, where kubelet finds it by the name the archive gives it. Pods must not
// pull it: use a tag other than latest, or imagePullPolicy IfNotPresent or Never.
func (e *Env) ImportImage(ctx context.Context, path string) error {
	if e.node == nil {
		return errors.New("the stack has no node (Options.Node)")
	}
	out, err := exec.CommandContext(ctx, "ctr", "--address", e.node.sock, "--namespace", "k8s.io", "images", "import", path).CombinedOutput()
	if err != nil {
		return fmt.Errorf("importing %s: %v: %s", path, err, out)
	}
	return nil
}

// stopNode takes the node down in the order that leaves nothing behind: no new Pods (the
// scheduler and controllers stop), every Pod removed so kubelet tears its sandbox down (CNI DEL,
// network namespace, mounts), then kubelet and containerd; then whatever a crash left is removed
// by hand: containers, shims, mounts, network namespaces, the bridge. The lock goes last.
func (e *Env) stopNode() error {
	e.mu.Lock()
	n := e.node
	e.mu.Unlock()
	if n == nil || n.stopped {
		return nil
	}
	n.stopped = true
	e.nodeOwned = n.owned()
	var errs []error
	byName := map[string]*process{}
	for _, p := range n.procs {
		byName[p.name] = p
	}
	stop := func(name string) {
		if p := byName[name]; p != nil {
			if _, err := p.stop(10 * time.Second); err != nil {
				errs = append(errs, err)
			}
		}
	}
	stop("kube-scheduler")
	stop("kube-controller-manager")
	if byName["kubelet"] != nil && e.Config != nil {
		if err := e.removePods(n, byName["kubelet"]); err != nil {
			errs = append(errs, err)
		}
	}
	stop("kubelet")
	// A Pod's connections to kube-apiserver can outlive the Pod: its end vanishes with its network
	// namespace, and nothing answers for its address any more, so the API server retransmits
	// into the void and its shutdown waits for a connection that never closes. Close them.
	if out, err := exec.Command("ss", "--kill", "--tcp", "--numeric", "dst "+nodeSubnet+" and not dst "+NodeGateway).CombinedOutput(); err != nil {
		errs = append(errs, fmt.Errorf("closing connections to removed Pods: %v: %s", err, out))
	}
	if byName["containerd"] != nil {
		n.removeContainers()
	}
	stop("containerd")
	if err := n.killShims(); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, n.unmountAll()...)
	errs = append(errs, n.removeNetns()...)
	errs = append(errs, removeCgroups()...)
	return errors.Join(errs...)
}

// kubeletCgroups are the cgroups kubelet makes for Pods in each hierarchy (cgroup v1, cgroupfs
// driver): kubepods and the QoS classes and Pods under it.
func kubeletCgroups() []string {
	dirs, _ := filepath.Glob("/sys/fs/cgroup/*/kubepods")
	return dirs
}

// removeCgroups removes kubelet's cgroups, deepest first, once no process is in them.
func removeCgroups() []error {
	var errs []error
	for _, root := range kubeletCgroups() {
		var dirs []string
		_ = filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, path)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			if err := syscall.Rmdir(dirs[i]); err != nil && !errors.Is(err, syscall.ENOENT) {
				errs = append(errs, fmt.Errorf("removing cgroup %s: %w", dirs[i], err))
			}
		}
	}
	return errs
}

// releaseNode deletes the bridge and releases the machine's node lock, once nothing listens on
// the bridge's address any more.
func (e *Env) releaseNode() error {
	e.mu.Lock()
	n := e.node
	e.node = nil
	e.mu.Unlock()
	if n == nil {
		return nil
	}
	var err error
	if n.bridge {
		if out, lerr := exec.Command("ip", "link", "delete", nodeBridge).CombinedOutput(); lerr != nil && !strings.Contains(string(out), "Cannot find device") {
			err = fmt.Errorf("deleting %s: %v: %s", nodeBridge, lerr, out)
		}
	}
	if n.lock != nil {
		n.lock.Close() // releases the flock
	}
	return err
}

// removePods deletes every Pod at once and waits until containerd runs no task: kubelet then has
// stopped every sandbox, which is what runs CNI DEL and removes the network namespace.
func (e *Env) removePods(n *node, kubelet *process) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	kube, err := kubernetes.NewForConfig(e.Config)
	if err != nil {
		return err
	}
	pods, err := kube.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("listing Pods to remove: %w", err)
	}
	zero := int64(0)
	for _, pod := range pods.Items {
		_ = kube.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero})
	}
	return kubelet.waitReady(ctx, time.Minute, func(ctx context.Context) bool {
		out, err := exec.CommandContext(ctx, "ctr", "--address", n.sock, "--namespace", "k8s.io", "tasks", "list", "--quiet").Output()
		return err == nil && strings.TrimSpace(string(out)) == ""
	})
}

// removeContainers kills and deletes every task and container kubelet left behind.
func (n *node) removeContainers() {
	ctr := func(args ...string) string {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		out, _ := exec.CommandContext(ctx, "ctr", append([]string{"--address", n.sock, "--namespace", "k8s.io"}, args...)...).Output()
		return string(out)
	}
	for _, id := range strings.Fields(ctr("tasks", "list", "--quiet")) {
		ctr("tasks", "kill", "--signal", "SIGKILL", "--all", id)
		ctr("tasks", "delete", "--force", id)
	}
	for _, id := range strings.Fields(ctr("containers", "list", "--quiet")) {
		ctr("containers", "delete", id)
	}
}

// killShims kills the containerd shims of this node that outlived containerd (a shim runs in a
// process group of its own, re-parented to init) and the containers under them.
func (n *node) killShims() error {
	var errs []error
	for _, pid := range processesMentioning(n.dir) {
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			errs = append(errs, fmt.Errorf("killing shim %d: %w", pid, err))
		}
	}
	return errors.Join(errs...)
}

// processesMentioning returns the pids of processes whose command line contains s.
func processesMentioning(s string) []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, entry := range entries {
		pid, err := strconv.Atoi(entry.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", entry.Name(), "cmdline"))
		if err == nil && strings.Contains(string(cmdline), s) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// unmountAll unmounts every mount under the node's folder (kubelet's Secret volumes, containerd's
// root filesystems and /dev/shm), deepest first.
func (n *node) unmountAll() []error {
	var errs []error
	mounts := mountsUnder(n.dir)
	for i := len(mounts) - 1; i >= 0; i-- {
		if err := syscall.Unmount(mounts[i], 0); err != nil {
			if err := syscall.Unmount(mounts[i], syscall.MNT_DETACH); err != nil {
				errs = append(errs, fmt.Errorf("unmounting %s: %w", mounts[i], err))
			}
		}
	}
	return errs
}

// mountsUnder returns the mount points at or below dir, in mount order.
func mountsUnder(dir string) []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	var mounts []string
	scanner := bufio.NewScanner(f)
	for scanner.Scan() {
		fields := strings.Fields(scanner.Text())
		if len(fields) < 5 {
			continue
		}
		mountPoint := unescapeMount(fields[4])
		if mountPoint == dir || strings.HasPrefix(mountPoint, dir+"/") {
			mounts = append(mounts, mountPoint)
		}
	}
	return mounts
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// removeNetns removes the network namespaces made while the node ran that are still there.
func (n *node) removeNetns() []error {
	var errs []error
	entries, _ := os.ReadDir(netnsDir)
	for _, entry := range entries {
		if n.netns[entry.Name()] || !strings.HasPrefix(entry.Name(), "cni-") {
			continue
		}
		path := filepath.Join(netnsDir, entry.Name())
		_ = syscall.Unmount(path, syscall.MNT_DETACH)
		if err := os.Remove(path); err != nil {
			errs = append(errs, fmt.Errorf("removing network namespace %s: %w", path, err))
		}
	}
	return errs
}

// owned lists what the node made outside its folder and still has: network namespaces and the
// host ends of Pods' veth pairs (both appear only while the node holds the machine's lock), and
// the bridge. Links are recorded with their index, which the kernel does not reuse soon, so a
// bridge of the same name made later by another stack is not mistaken for this one.
func (n *node) owned() []string {
	var owned []string
	entries, _ := os.ReadDir(netnsDir)
	for _, entry := range entries {
		if !n.netns[entry.Name()] {
			owned = append(owned, "netns "+entry.Name())
		}
	}
	links := func(args ...string) {
		out, _ := exec.Command("ip", append([]string{"-o", "link", "show"}, args...)...).Output()
		for _, line := range strings.Split(string(out), "\n") {
			// "7: veth1234@if2: <...> ..."
			if fields := strings.Fields(line); len(fields) > 1 {
				owned = append(owned, "link "+strings.TrimSuffix(fields[0], ":")+" "+strings.SplitN(strings.TrimSuffix(fields[1], ":"), "@", 2)[0])
			}
		}
	}
	links("master", nodeBridge)
	if n.bridge {
		links(nodeBridge)
	}
	return owned
}

// NodeLeftovers lists what the node left on the machine after Stop: processes that name its
// folder (containerd, kubelet, shims), mounts under it, kubelet's cgroups, and the network
// namespaces, veths and bridge it had when Stop began. Empty means a clean stop; it is for tests of the cleanup.
func (e *Env) NodeLeftovers() []string {
	if e.nodeDir == "" {
		return nil // the stack had no node
	}
	var left []string
	for _, pid := range processesMentioning(e.nodeDir) {
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		left = append(left, fmt.Sprintf("process %d: %s", pid, strings.ReplaceAll(string(cmdline), "\x00", " ")))
	}
	for _, m := range mountsUnder(e.nodeDir) {
		left = append(left, "mount "+m)
	}
	for _, cgroup := range kubeletCgroups() {
		left = append(left, "cgroup "+cgroup)
	}
	for _, thing := range e.nodeOwned {
		kind, name, _ := strings.Cut(thing, " ")
		switch kind {
		case "netns":
			if _, err := os.Lstat(filepath.Join(netnsDir, name)); err == nil {
				left = append(left, thing)
			}
		case "link":
			index, name, _ := strings.Cut(name, " ")
			if out, err := exec.Command("ip", "-o", "link", "show", name).Output(); err == nil && strings.HasPrefix(string(out), index+":") {
				left = append(left, thing)
			}
		}
	}
	return left
}
