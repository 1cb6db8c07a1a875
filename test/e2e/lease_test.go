package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"

	"github.com/mumoshu/aws-secret-controller/pkg/testenv"
)

// TestLosingTheLeaseExits: a leader whose Lease another holder takes stops leading and the
// process exits with an error, for its kubelet (or the fault driver) to start it again. It used
// to hang in the informer factories' Shutdown, whose informers ran until SIGTERM.
func TestLosingTheLeaseExits(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t, "lease-loss")
	id := "e2e-" + ns
	c, err := env.StartController(ctx, testenv.ControllerOptions{
		Name: "lease-loss",
		Args: []string{"--namespace", ns, "--leader-elect", "--leader-elect-id", id, "--leader-elect-namespace", ns,
			"--leader-elect-lease-duration=4s", "--leader-elect-renew-deadline=2s", "--leader-elect-retry-period=500ms"},
		LogPath: filepath.Join(t.TempDir(), "lease-loss.log"),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = c.Stop(5 * time.Second) })
	leases := kube.CoordinationV1().Leases(ns)
	eventually(t, 30*time.Second, "the controller holding its Lease", func() (bool, string) {
		l, err := leases.Get(ctx, id, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		return ptr.Deref(l.Spec.HolderIdentity, "") != "", fmt.Sprintf("holder %q", ptr.Deref(l.Spec.HolderIdentity, ""))
	})

	// Another holder takes the Lease for a minute.
	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		l, err := leases.Get(ctx, id, metav1.GetOptions{})
		if err != nil {
			return err
		}
		now := metav1.NewMicroTime(time.Now())
		l.Spec.HolderIdentity, l.Spec.LeaseDurationSeconds = ptr.To("e2e-thief"), ptr.To[int32](60)
		l.Spec.AcquireTime, l.Spec.RenewTime = &now, &now
		_, err = leases.Update(ctx, l, metav1.UpdateOptions{})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.Done():
	case <-time.After(30 * time.Second):
		log, _ := c.Log()
		t.Fatalf("the controller did not exit within 30 s of losing its Lease; its log:\n%s", log)
	}
	if err := c.ExitError(); err == nil {
		t.Error("the controller exited cleanly after losing its Lease; want an error, for a restart")
	}
}
