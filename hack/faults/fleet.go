package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/mumoshu/aws-secret-controller/pkg/controller"
	"github.com/mumoshu/aws-secret-controller/pkg/testenv"
)

// fleet runs the controller's replicas as a kubelet would: a replica whose process exits without
// being asked to is started again (after restartDelay), and the restart is counted.
type fleet struct {
	w *world
	// extraArgs are a scenario's own flags for the processes it starts.
	extraArgs []string

	mu       sync.Mutex
	replicas []*replica
}

const restartDelay = time.Second

// replica is one replica of the controller: a sequence of processes, one at a time.
type replica struct {
	name string

	mu       sync.Mutex
	ctrl     *testenv.Controller
	n        int      // processes started
	logs     []string // their logs, in order
	restarts int      // processes started again after an exit nobody asked for
	stopping bool     // the driver stopped or killed it on purpose
	// calls sums the GetSecretValue operations (all, and those that succeeded) of processes that
	// ended, as last scraped; unscraped is how many ended before a scrape could be taken.
	calls     awsCalls
	unscraped int
	done      chan struct{} // closed when the supervisor is done
}

// args are the flags every replica runs with: the shipped Deployment's (leader election on),
// plus the run's.
func (f *fleet) args() []string {
	c := f.w.cfg
	args := []string{"--leader-elect=true", "--leader-elect-namespace=default", "--workers", fmt.Sprint(c.workers)}
	if c.leaseDuration > 0 {
		args = append(args, "--leader-elect-lease-duration", c.leaseDuration.String(),
			"--leader-elect-renew-deadline", c.renewDeadline.String(), "--leader-elect-retry-period", c.retryPeriod.String())
	}
	args = append(args, f.extraArgs...)
	return append(args, strings.Fields(c.controllerArgs)...)
}

// start starts a replica and supervises it. wait says whether to wait for /readyz first.
func (f *fleet) start(ctx context.Context, name string, wait bool) (*replica, error) {
	r := &replica{name: name, done: make(chan struct{})}
	if err := f.launch(ctx, r, !wait); err != nil {
		return nil, err
	}
	f.mu.Lock()
	f.replicas = append(f.replicas, r)
	f.mu.Unlock()
	go f.supervise(r)
	return r, nil
}

func (f *fleet) launch(ctx context.Context, r *replica, noWait bool) error {
	r.mu.Lock()
	r.n++
	n := r.n
	r.mu.Unlock()
	ctrl, err := f.w.env.StartController(ctx, testenv.ControllerOptions{
		Name: fmt.Sprintf("controller-%s-%d", r.name, n), Args: f.args(),
		Env:          []string{"AWS_ENDPOINT_URL_SECRETS_MANAGER=" + f.w.proxy.URL},
		ReadyTimeout: 5 * time.Minute, NoWait: noWait,
	})
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.ctrl = ctrl
	r.logs = append(r.logs, ctrl.LogPath)
	r.mu.Unlock()
	return nil
}

func (f *fleet) supervise(r *replica) {
	defer close(r.done)
	for {
		ctrl := r.current()
		<-ctrl.Done()
		r.mu.Lock()
		stopping := r.stopping
		if ctrl == r.ctrl {
			r.unscraped++ // a kill's scrape (scrapeAndSignal) undoes this
		}
		r.mu.Unlock()
		if stopping {
			return
		}
		time.Sleep(restartDelay)
		r.mu.Lock()
		if r.stopping {
			r.mu.Unlock()
			return
		}
		r.restarts++
		r.mu.Unlock()
		if err := f.launch(context.Background(), r, true); err != nil {
			fmt.Fprintf(os.Stderr, "restarting %s: %v\n", r.name, err)
			return
		}
	}
}

// current is the replica's process now.
func (r *replica) current() *testenv.Controller {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ctrl
}

// awsCalls are GetSecretValue operations by the controller's aws_api_calls_total.
type awsCalls struct{ all, succeeded float64 }

func (a awsCalls) add(b awsCalls) awsCalls { return awsCalls{a.all + b.all, a.succeeded + b.succeeded} }

func scrapeCalls(ctrl *testenv.Controller) (awsCalls, error) {
	const name = "aws_secret_controller_aws_api_calls_total"
	all, err := ctrl.Metric(name, map[string]string{"operation": "GetSecretValue"})
	if err != nil {
		return awsCalls{}, err
	}
	ok, err := ctrl.Metric(name, map[string]string{"operation": "GetSecretValue", "result": "success"})
	return awsCalls{all, ok}, err
}

// scrape adds the current process's AWS call counts to the replica's, before it ends.
func (r *replica) scrape() {
	v, err := scrapeCalls(r.current())
	if err != nil {
		return
	}
	r.mu.Lock()
	r.calls = r.calls.add(v)
	r.unscraped--
	r.mu.Unlock()
}

// kill ends the replica's current process with sig, after scraping its metrics; with restart,
// the supervisor starts it again as after a crash (counted as a restart), else it stays down.
func (r *replica) kill(sig syscall.Signal, restart bool) (*testenv.Controller, error) {
	r.mu.Lock()
	r.stopping = !restart
	r.mu.Unlock()
	ctrl := r.current()
	r.scrape()
	return ctrl, ctrl.Signal(sig)
}

// stop stops the replica for good: SIGTERM, then SIGKILL after grace.
func (r *replica) stop(grace time.Duration) {
	r.mu.Lock()
	r.stopping = true
	r.mu.Unlock()
	r.scrape()
	_, _ = r.current().Stop(grace)
	<-r.done
}

func (f *fleet) stopAll(grace time.Duration) {
	f.mu.Lock()
	replicas := f.replicas
	f.mu.Unlock()
	for _, r := range replicas {
		select {
		case <-r.done:
		default:
			r.stop(grace)
		}
	}
}

// figures are the fleet's totals: restarts, AWS operations counted by the processes' metrics
// (and how many processes ended unscraped, so that the sum is a lower bound), and every log.
func (f *fleet) figures() (restarts int, calls awsCalls, unscraped int, logs []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, r := range f.replicas {
		r.mu.Lock()
		restarts += r.restarts
		calls = calls.add(r.calls)
		unscraped += r.unscraped
		logs = append(logs, r.logs...)
		r.mu.Unlock()
	}
	return restarts, calls, unscraped, logs
}

// lease is the controller's leader election Lease, and the identity holding it ("" if none).
func (w *world) lease(ctx context.Context) (*coordinationv1.Lease, string, error) {
	lease, err := w.kube.CoordinationV1().Leases("default").Get(ctx, controller.ComponentName, metav1.GetOptions{})
	if err != nil {
		return nil, "", err
	}
	return lease, ptr.Deref(lease.Spec.HolderIdentity, ""), nil
}

var errNoLeader = errors.New("no leader")

var becameLeader = regexp.MustCompile(`"Became leader" identity="([^"]+)"`)

// leader is the replica whose current process holds the Lease.
func (f *fleet) leader(ctx context.Context) (*replica, string, error) {
	_, holder, err := f.w.lease(ctx)
	if err != nil {
		return nil, "", err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, r := range f.replicas {
		log, err := r.current().Log()
		if err != nil {
			continue
		}
		for _, m := range becameLeader.FindAllStringSubmatch(log, -1) {
			if m[1] == holder && holder != "" {
				return r, holder, nil
			}
		}
	}
	return nil, holder, errNoLeader
}

// first returns the replica started first.
func (f *fleet) first() *replica {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.replicas[0]
}
