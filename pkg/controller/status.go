package controller

import (
	"context"
	"sync"
	"unicode/utf8"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/mumoshu/aws-secret-controller/pkg/apis/mumoshu/v1alpha1"
)

// maxConditionMessage is the API's bound on a condition message; a longer one would make every
// status write fail.
const maxConditionMessage = 32768

// status is the status an outcome calls for.
func (c *Controller) status(awsSecret *v1alpha1.AWSSecret, out outcome) v1alpha1.AWSSecretStatus {
	status := *awsSecret.Status.DeepCopy()
	status.ObservedGeneration = awsSecret.Generation
	pinned := pinnedRefs(awsSecret)
	status.StringDataFrom, status.DataFrom = out.held.stringDataFrom, out.held.dataFrom
	status.Data = out.held.dataList(pinned.data, awsSecret.Status.Data)
	cond := metav1.Condition{
		Type:               v1alpha1.ConditionReady,
		Status:             metav1.ConditionTrue,
		Reason:             v1alpha1.ReasonSynced,
		Message:            "Secret holds " + pinned.String(),
		ObservedGeneration: awsSecret.Generation,
		LastTransitionTime: metav1.NewTime(c.clock.Now()),
	}
	if out.err != nil {
		cond.Status, cond.Reason, cond.Message = metav1.ConditionFalse, out.reason, truncate(out.err.Error(), maxConditionMessage)
		// The same failure in other words (a held read, then the circuit that stopped it) is
		// said once per generation and reason: no new status write, no new event.
		if old := meta.FindStatusCondition(status.Conditions, v1alpha1.ConditionReady); old != nil &&
			old.Status == metav1.ConditionFalse && old.Reason == cond.Reason && old.ObservedGeneration == cond.ObservedGeneration {
			cond.Message = old.Message
		}
	}
	meta.SetStatusCondition(&status.Conditions, cond)
	return status
}

// updateStatus records the outcome of a sync. It writes only when the status changes, and
// records a Warning event only then: once per new or different failure, not once per retry.
func (c *Controller) updateStatus(ctx context.Context, awsSecret *v1alpha1.AWSSecret, out outcome) error {
	key := cache.MetaObjectToName(awsSecret)
	status := c.status(awsSecret, out)
	if equality.Semantic.DeepEqual(awsSecret.Status, status) {
		c.statusWrites.caughtUp(key, awsSecret.ResourceVersion)
		return nil
	}
	if c.statusWrites.written(key, awsSecret.ResourceVersion, status) {
		// The lister still shows the object our last write replaced: that write holds this
		// status already, and its watch event will bring the next sync.
		return nil
	}
	if out.err != nil {
		cond := meta.FindStatusCondition(status.Conditions, v1alpha1.ConditionReady)
		c.recorder.Event(awsSecret, corev1.EventTypeWarning, cond.Reason, cond.Message)
	}
	updated := awsSecret.DeepCopy()
	updated.Status = status
	written, err := c.client.MumoshuV1alpha1().AWSSecrets(awsSecret.Namespace).UpdateStatus(ctx, updated, metav1.UpdateOptions{FieldManager: FieldManager})
	if err != nil {
		return statusError(err, awsSecret.Name)
	}
	c.statusWrites.remember(key, awsSecret.ResourceVersion, written.Status)
	return nil
}

// statusError wraps a failed status write: retried with backoff, quietly after a conflict.
func statusError(err error, name string) error {
	wrapped := kubernetesError(err, "updating status of AWSSecret %s", name)
	if se, ok := wrapped.(*syncError); ok && !se.quiet {
		se.reason, se.transient = v1alpha1.ReasonKubernetesError, true
	}
	return wrapped
}

func truncate(s string, max int) string {
	if len(s) <= max {
		return s
	}
	s = s[:max-len("…")]
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s + "…"
}

// statusMemo remembers, per AWSSecret, the status the controller last wrote and the
// resourceVersion that write replaced. A sync that runs before the informer has seen the write
// (a Secret's event can arrive first) would otherwise write the same status again and fail with
// a conflict. An entry lives until the lister moves past the object it replaced.
type statusMemo struct {
	m sync.Map // cache.ObjectName -> statusWrite
}

// statusWrite is a status update the controller made: the resourceVersion it replaced and the
// status it wrote.
type statusWrite struct {
	replaced string
	status   v1alpha1.AWSSecretStatus
}

// remember records a status write that replaced resourceVersion.
func (m *statusMemo) remember(key cache.ObjectName, replaced string, status v1alpha1.AWSSecretStatus) {
	m.m.Store(key, statusWrite{replaced: replaced, status: status})
}

// written says whether the last write already holds status, as seen from an object at
// resourceVersion: true only while the lister still shows the object that write replaced.
func (m *statusMemo) written(key cache.ObjectName, resourceVersion string, status v1alpha1.AWSSecretStatus) bool {
	v, ok := m.m.Load(key)
	if !ok {
		return false
	}
	if w := v.(statusWrite); w.replaced == resourceVersion {
		return sameStatus(w.status, status)
	}
	m.m.Delete(key)
	return false
}

// caughtUp forgets the last write once the lister shows an object past the one it replaced.
func (m *statusMemo) caughtUp(key cache.ObjectName, resourceVersion string) {
	if v, ok := m.m.Load(key); ok && v.(statusWrite).replaced != resourceVersion {
		m.m.Delete(key)
	}
}

// forget drops what is remembered of an AWSSecret.
func (m *statusMemo) forget(key cache.ObjectName) {
	m.m.Delete(key)
}

// sameStatus compares statuses but for the conditions' transition times: a sync from a stale
// lister stamps a transition the write it repeats already stamped.
func sameStatus(a, b v1alpha1.AWSSecretStatus) bool {
	a, b = *a.DeepCopy(), *b.DeepCopy()
	for i := range a.Conditions {
		a.Conditions[i].LastTransitionTime = metav1.Time{}
	}
	for i := range b.Conditions {
		b.Conditions[i].LastTransitionTime = metav1.Time{}
	}
	return equality.Semantic.DeepEqual(a, b)
}
