package controller

import (
	"context"
	"errors"
	"maps"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"

	"github.com/mumoshu/aws-secret-controller/pkg/apis/mumoshu/v1alpha1"
)

// syncHandler brings the Secret of one AWSSecret in line with its spec, then records the outcome
// in the AWSSecret's status.
func (c *Controller) syncHandler(ctx context.Context, key cache.ObjectName) error {
	start := time.Now()
	logger := klog.LoggerWithValues(klog.FromContext(ctx), "awsSecret", key)
	ctx = klog.NewContext(ctx, logger)

	awsSecret, err := c.awsSecretLister.AWSSecrets(key.Namespace).Get(key.Name)
	if apierrors.IsNotFound(err) {
		// Deleted: garbage collection removes the Secret through its ownerReference.
		logger.V(4).Info("AWSSecret no longer exists")
		c.statusWrites.Delete(key)
		return nil
	}
	if err != nil {
		return err
	}

	secret, result, syncErr := c.syncSecret(ctx, awsSecret)
	if syncErr != nil {
		result, _ = reasonOf(syncErr)
	}
	if err := c.updateStatus(ctx, awsSecret, secret, syncErr); err != nil {
		// First, so that the failed status write decides the retry: it is transient.
		syncErr = errors.Join(err, syncErr)
	}
	if c.onSync != nil {
		c.onSync(result, time.Since(start))
	}
	logger.V(4).Info("Synced", "result", result, "duration", time.Since(start))
	return syncErr
}

// syncSecret makes the Secret hold the pinned versions and returns it as it now is (nil if there
// is none the AWSSecret controls) with a Result. It never deletes, blanks or partly writes data
// on error: the data are computed whole before any write.
func (c *Controller) syncSecret(ctx context.Context, awsSecret *v1alpha1.AWSSecret) (*corev1.Secret, string, error) {
	logger := klog.FromContext(ctx)
	secrets := c.kubeClient.CoreV1().Secrets(awsSecret.Namespace)

	existing, err := c.secretLister.Secrets(awsSecret.Namespace).Get(awsSecret.Name)
	if err != nil && !apierrors.IsNotFound(err) {
		return nil, "", kubernetesError(err, "reading Secret %s", awsSecret.Name)
	}
	if existing == nil {
		data, err := c.fetchData(ctx, awsSecret)
		if err != nil {
			return nil, "", err
		}
		created, err := secrets.Create(ctx, desiredSecret(awsSecret, data), metav1.CreateOptions{})
		if err == nil {
			logger.V(2).Info("Created Secret", "secret", klog.KObj(created))
			c.recorder.Eventf(awsSecret, corev1.EventTypeNormal, EventCreated, "Created Secret %s from %s", created.Name, describeRefs(awsSecret))
			return created, ResultCreated, nil
		}
		if !apierrors.IsAlreadyExists(err) {
			return nil, "", kubernetesError(err, "creating Secret %s", awsSecret.Name)
		}
		// The informer only sees Secrets carrying the managed-by label, or has not caught up:
		// look at the one in the way.
		if existing, err = secrets.Get(ctx, awsSecret.Name, metav1.GetOptions{}); err != nil {
			return nil, "", kubernetesError(err, "reading Secret %s", awsSecret.Name)
		}
	}
	if !metav1.IsControlledBy(existing, awsSecret) {
		return nil, "", permanentError(v1alpha1.ReasonSecretConflict,
			"Secret %s exists and is not controlled by this AWSSecret; delete or rename it to let the controller write it", existing.Name)
	}

	// The Secret's own data are the cache of the pinned versions: AWS is asked only when they
	// are not there, or were edited by hand.
	data := existing.Data
	if !holdsPinnedVersions(existing, awsSecret) {
		if data, err = c.fetchData(ctx, awsSecret); err != nil {
			return existing, "", err
		}
	}
	want := desiredSecret(awsSecret, data)

	if existing.Type != want.Type {
		// A Secret's type cannot change: replace the Secret, guarded so that only the version
		// we looked at is deleted.
		uid, rv := existing.UID, existing.ResourceVersion
		if err := secrets.Delete(ctx, existing.Name, metav1.DeleteOptions{
			Preconditions: &metav1.Preconditions{UID: &uid, ResourceVersion: &rv},
		}); err != nil && !apierrors.IsNotFound(err) {
			return existing, "", kubernetesError(err, "deleting Secret %s to change its type", existing.Name)
		}
		created, err := secrets.Create(ctx, want, metav1.CreateOptions{})
		if err != nil {
			return nil, "", kubernetesError(err, "creating Secret %s with type %s", want.Name, want.Type)
		}
		logger.V(2).Info("Replaced Secret to change its type", "secret", klog.KObj(created), "type", created.Type)
		c.recorder.Eventf(awsSecret, corev1.EventTypeNormal, EventReplaced, "Replaced Secret %s to change its type from %s to %s", created.Name, existing.Type, created.Type)
		return created, ResultReplaced, nil
	}

	if equality.Semantic.DeepEqual(existing.Labels, want.Labels) &&
		equality.Semantic.DeepEqual(existing.Annotations, want.Annotations) &&
		equality.Semantic.DeepEqual(existing.Data, want.Data) {
		return existing, ResultUnchanged, nil
	}
	update := existing.DeepCopy()
	update.Labels, update.Annotations, update.Data, update.StringData = want.Labels, want.Annotations, want.Data, nil
	updated, err := secrets.Update(ctx, update, metav1.UpdateOptions{})
	if err != nil {
		return existing, "", kubernetesError(err, "updating Secret %s", existing.Name)
	}
	logger.V(2).Info("Updated Secret", "secret", klog.KObj(updated))
	c.recorder.Eventf(awsSecret, corev1.EventTypeNormal, EventUpdated, "Updated Secret %s to %s", updated.Name, describeRefs(awsSecret))
	return updated, ResultUpdated, nil
}

// fetchData reads the pinned versions and maps them to Secret data. stringDataFrom's keys win
// over dataFrom's.
func (c *Controller) fetchData(ctx context.Context, awsSecret *v1alpha1.AWSSecret) (map[string][]byte, error) {
	data := map[string][]byte{}
	sources := []struct {
		source *v1alpha1.DataSource
		decode func([]byte) (map[string][]byte, error)
	}{
		{awsSecret.Spec.DataFrom, binaryData},
		{awsSecret.Spec.StringDataFrom, stringData},
	}
	for _, s := range sources {
		if s.source == nil {
			continue
		}
		ref := s.source.SecretsManagerSecretRef
		version, err := c.versions.Get(ctx, ref.SecretID, ref.VersionID)
		if err != nil {
			return nil, err
		}
		decoded, err := s.decode(version.Bytes())
		if err != nil {
			return nil, err
		}
		maps.Copy(data, decoded)
	}
	return data, nil
}

// desiredSecret is the Secret an AWSSecret asks for, holding data.
func desiredSecret(awsSecret *v1alpha1.AWSSecret, data map[string][]byte) *corev1.Secret {
	labels := maps.Clone(awsSecret.Spec.Metadata.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	labels[ManagedByLabel] = ComponentName

	annotations := map[string]string{}
	for k, v := range awsSecret.Spec.Metadata.Annotations {
		if !strings.HasPrefix(k, AnnotationPrefix) {
			annotations[k] = v
		}
	}
	for k, v := range refAnnotations(awsSecret) {
		annotations[k] = v
	}
	annotations[AnnotationDataHash] = dataHash(data)

	secretType := awsSecret.Spec.Type
	if secretType == "" {
		secretType = corev1.SecretTypeOpaque
	}
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name:        awsSecret.Name,
			Namespace:   awsSecret.Namespace,
			Labels:      labels,
			Annotations: annotations,
			OwnerReferences: []metav1.OwnerReference{
				*metav1.NewControllerRef(awsSecret, v1alpha1.SchemeGroupVersion.WithKind("AWSSecret")),
			},
		},
		Type: secretType,
		Data: data,
	}
}

// refAnnotations records which versions a Secret holds.
func refAnnotations(awsSecret *v1alpha1.AWSSecret) map[string]string {
	a := map[string]string{}
	if s := awsSecret.Spec.StringDataFrom; s != nil {
		a[AnnotationStringDataSecretID] = s.SecretsManagerSecretRef.SecretID
		a[AnnotationStringDataVersionID] = s.SecretsManagerSecretRef.VersionID
	}
	if s := awsSecret.Spec.DataFrom; s != nil {
		a[AnnotationDataSecretID] = s.SecretsManagerSecretRef.SecretID
		a[AnnotationDataVersionID] = s.SecretsManagerSecretRef.VersionID
	}
	return a
}

// holdsPinnedVersions reports whether a Secret's data are, untouched, the versions the AWSSecret
// pins.
func holdsPinnedVersions(secret *corev1.Secret, awsSecret *v1alpha1.AWSSecret) bool {
	pinnedRefs := refAnnotations(awsSecret)
	for _, k := range []string{AnnotationStringDataSecretID, AnnotationStringDataVersionID, AnnotationDataSecretID, AnnotationDataVersionID} {
		want, pinned := pinnedRefs[k]
		got, held := secret.Annotations[k]
		if pinned != held || want != got {
			return false
		}
	}
	return secret.Annotations[AnnotationDataHash] == dataHash(secret.Data)
}

// heldRefs returns the versions a Secret holds untouched, for the status.
func heldRefs(secret *corev1.Secret) (stringDataFrom, dataFrom *v1alpha1.SecretsManagerSecretRef) {
	if secret == nil || secret.Annotations[AnnotationDataHash] != dataHash(secret.Data) {
		return nil, nil
	}
	ref := func(idKey, versionKey string) *v1alpha1.SecretsManagerSecretRef {
		id, ok := secret.Annotations[idKey]
		if !ok {
			return nil
		}
		return &v1alpha1.SecretsManagerSecretRef{SecretID: id, VersionID: secret.Annotations[versionKey]}
	}
	return ref(AnnotationStringDataSecretID, AnnotationStringDataVersionID), ref(AnnotationDataSecretID, AnnotationDataVersionID)
}

// describeRefs names the pinned versions for events and conditions.
func describeRefs(awsSecret *v1alpha1.AWSSecret) string {
	var s string
	if r := awsSecret.Spec.StringDataFrom; r != nil {
		s = "version " + r.SecretsManagerSecretRef.VersionID + " of " + r.SecretsManagerSecretRef.SecretID
	}
	if r := awsSecret.Spec.DataFrom; r != nil {
		if s != "" {
			s += " and "
		}
		s += "version " + r.SecretsManagerSecretRef.VersionID + " of " + r.SecretsManagerSecretRef.SecretID
	}
	return s
}

// updateStatus records the outcome of a sync. It writes only when the status changes, and
// records a Warning event only then: once per new or different failure, not once per retry.
func (c *Controller) updateStatus(ctx context.Context, awsSecret *v1alpha1.AWSSecret, secret *corev1.Secret, syncErr error) error {
	updated := awsSecret.DeepCopy()
	status := &updated.Status
	status.ObservedGeneration = awsSecret.Generation
	status.StringDataFrom, status.DataFrom = heldRefs(secret)
	cond := metav1.Condition{
		Type:               v1alpha1.ConditionReady,
		Status:             metav1.ConditionTrue,
		Reason:             v1alpha1.ReasonSynced,
		Message:            "Secret holds " + describeRefs(awsSecret),
		ObservedGeneration: awsSecret.Generation,
		LastTransitionTime: metav1.NewTime(c.clock.Now()),
	}
	if syncErr != nil {
		reason, _ := reasonOf(syncErr)
		cond.Status, cond.Reason, cond.Message = metav1.ConditionFalse, reason, syncErr.Error()
	}
	meta.SetStatusCondition(&status.Conditions, cond)

	key := cache.MetaObjectToName(awsSecret)
	if equality.Semantic.DeepEqual(awsSecret.Status, updated.Status) {
		c.forgetStatusWrite(key, awsSecret.ResourceVersion)
		return nil
	}
	if last, ok := c.pendingStatusWrite(key, awsSecret.ResourceVersion); ok && sameStatus(last, *status) {
		// The lister still shows the object our last write replaced: that write holds this
		// status already, and its watch event will bring the next sync.
		return nil
	}
	if syncErr != nil {
		c.recorder.Event(awsSecret, corev1.EventTypeWarning, cond.Reason, cond.Message)
	}
	written, err := c.client.MumoshuV1alpha1().AWSSecrets(awsSecret.Namespace).UpdateStatus(ctx, updated, metav1.UpdateOptions{})
	if err != nil {
		return kubernetesError(err, "updating status of AWSSecret %s", awsSecret.Name)
	}
	c.statusWrites.Store(key, statusWrite{replaced: awsSecret.ResourceVersion, status: written.Status})
	return nil
}

// pendingStatusWrite returns the status of our last write to an AWSSecret if the lister still
// shows the object that write replaced; otherwise it forgets the write.
func (c *Controller) pendingStatusWrite(key cache.ObjectName, resourceVersion string) (v1alpha1.AWSSecretStatus, bool) {
	v, ok := c.statusWrites.Load(key)
	if !ok {
		return v1alpha1.AWSSecretStatus{}, false
	}
	if w := v.(statusWrite); w.replaced == resourceVersion {
		return w.status, true
	}
	c.statusWrites.Delete(key)
	return v1alpha1.AWSSecretStatus{}, false
}

// forgetStatusWrite drops the memo of our last write once the lister has moved past it.
func (c *Controller) forgetStatusWrite(key cache.ObjectName, resourceVersion string) {
	_, _ = c.pendingStatusWrite(key, resourceVersion)
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

// statusWrite is a status update the controller made: the resourceVersion it replaced and the
// status it wrote.
type statusWrite struct {
	replaced string
	status   v1alpha1.AWSSecretStatus
}
