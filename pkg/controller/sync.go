package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"

	"github.com/mumoshu/aws-secret-controller/pkg/apis/mumoshu/v1alpha1"
	"github.com/mumoshu/aws-secret-controller/pkg/awssm"
	"github.com/mumoshu/aws-secret-controller/pkg/fairqueue"
	"github.com/mumoshu/aws-secret-controller/pkg/render"
	"github.com/mumoshu/aws-secret-controller/pkg/tenancy"
)

// outcome is what a sync did: its result, the versions the Secret holds afterwards, and the
// error that stopped it, if any.
type outcome struct {
	result string
	held   refs
	err    error
	// reason is err's Ready reason, as the sync handler classified it for the status.
	reason string
}

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
		c.statusWrites.forget(key)
		c.renderFailures.forget(key)
		c.readFailures.forget(key)
		return nil
	}
	if err != nil {
		return err
	}
	if awsSecret.DeletionTimestamp != nil {
		// Being deleted (foreground deletion waits for the garbage collector to delete the
		// Secret first): writing now would recreate what is being removed.
		logger.V(4).Info("AWSSecret is being deleted; writing nothing")
		if c.onSync != nil {
			c.onSync(ResultDeleting, time.Since(start))
		}
		return nil
	}

	out := c.syncSecret(ctx, awsSecret)
	f := classify(out.err)
	result := out.result
	if out.err != nil {
		result, out.reason = f.reason, f.reason
	}
	if out.err == nil || !f.quiet {
		if err := c.updateStatus(ctx, awsSecret, out); err != nil {
			// First, so that the failed status write decides the retry: it is transient.
			out.err = errors.Join(err, out.err)
		}
	}
	if c.onSync != nil {
		c.onSync(result, time.Since(start))
	}
	logger.V(4).Info("Synced", "result", result, "duration", time.Since(start))
	return out.err
}

// syncSecret makes the Secret hold the pinned versions. It gathers the facts once (the Secret as
// it is, what it holds, what the controller wants of it), then decides and writes. It never
// deletes, blanks or partly writes data on error: the data are computed whole and checked
// before any write.
func (c *Controller) syncSecret(ctx context.Context, awsSecret *v1alpha1.AWSSecret) outcome {
	w := want(awsSecret)
	// Who may read what is decided first: before any cache lookup, AWS call or write.
	decision, stamp, known := c.decide(awsSecret.Namespace, w.refs)
	if !known {
		// The AWSSecret informer can be ahead of the Namespace informer (a Namespace applied with
		// its AWSSecrets). Reading now could pick the wrong identity; the Namespace's Add event
		// re-syncs its AWSSecrets.
		return outcome{err: &syncError{reason: v1alpha1.ReasonKubernetesError, transient: true, quiet: true,
			err: fmt.Errorf("namespace %s is not in the controller's cache yet", awsSecret.Namespace)}}
	}
	if !decision.Allowed {
		// A Secret written while it was allowed stays as it is: deleting data on a policy edit
		// could cause an outage. The status still says what it holds.
		var held refs
		if s, err := c.secretLister.Secrets(awsSecret.Namespace).Get(awsSecret.Name); err == nil && metav1.IsControlledBy(s, awsSecret) {
			held = observe(s).held
		}
		return outcome{held: held, err: permanentError(v1alpha1.ReasonSecretNotAllowed, "%s", decision.Why)}
	}
	var id awssm.Identity
	if decision.RoleARN != "" {
		id = awssm.Identity{RoleARN: decision.RoleARN, Namespace: awsSecret.Namespace}
	}

	existing, err := c.currentSecret(ctx, awsSecret)
	if err != nil {
		return outcome{err: err}
	}
	if existing != nil && !metav1.IsControlledBy(existing, awsSecret) {
		return outcome{err: conflictError(existing)}
	}
	have := observe(existing)
	if existing != nil && existing.DeletionTimestamp != nil {
		// Another writer's finalizer holds the Secret: writing over it, or replacing it, cannot
		// work until it is gone, and its deletion event brings the next sync.
		return outcome{held: have.held, err: &syncError{reason: v1alpha1.ReasonKubernetesError, transient: true,
			err: fmt.Errorf("Secret %s is being deleted; waiting for it to go", existing.Name)}}
	}

	// The Secret's own data are the cache of the pinned versions: AWS is asked only when they
	// are not there, or were edited by hand. A Secret that holds them needs at most its marks
	// repaired, which sends no data (the controller keeps none: see TransformForCache). A new
	// mapping of the same versions is rendered from the version cache.
	var data map[string][]byte
	haveData := false // the Secret's own data, read for a type change
	if existing != nil && have.intact && have.held.equal(w.refs) && have.mapping == w.mapping {
		if existing.Type == w.secretType {
			return c.repairMarks(ctx, awsSecret, w, existing, have, have.hash)
		}
		// A new type means a new Secret, which needs the data: the Secret's own, read from the
		// API server (the cache keeps none), rather than from AWS.
		live, err := c.kubeClient.CoreV1().Secrets(existing.Namespace).Get(ctx, existing.Name, metav1.GetOptions{})
		if err != nil {
			return outcome{held: have.held, err: kubernetesError(err, "reading Secret %s", existing.Name)}
		}
		if live.UID == existing.UID && render.DataHash(live.Data) == have.hash {
			data, haveData = live.Data, true
		}
	}
	hash := have.hash
	if !haveData {
		// The data entries and the template are checked before anything is read: a bad one
		// costs no AWS call. A Secret that holds its mapping's rendering skips this (resyncs
		// parse no template). A spec that failed to render fails the same way until it
		// changes: it is neither rendered nor read again.
		if err := c.renderFailures.get(awsSecret); err != nil {
			return outcome{held: have.held, err: err}
		}
		m, err := render.New(&awsSecret.Spec, c.renderLimits)
		if err == nil {
			data, err = c.fetchData(ctx, awsSecret, stamp, id, m)
		}
		if err != nil {
			c.renderFailures.put(awsSecret, err)
			if errors.Is(err, awssm.ErrInFlight) {
				// Another sync is reading a version this one needs: this one is parked and comes
				// back when that read is done, leaving the worker to other AWSSecrets.
				err = &syncError{reason: ResultWaiting, transient: true, quiet: true, parked: true, err: err}
			}
			return outcome{held: have.held, err: err}
		}
		c.renderFailures.forget(cache.MetaObjectToName(awsSecret))
		c.readFailures.forget(cache.MetaObjectToName(awsSecret))
		hash = render.DataHash(data)
	}
	if existing != nil && existing.Type == w.secretType && hash == have.hash {
		// The data are right (the annotations said otherwise): only the marks need repair.
		return c.repairMarks(ctx, awsSecret, w, existing, have, hash)
	}
	// Something will be written: check it against its type first, so that nothing is replaced
	// or created that the API server would refuse.
	if err := validateSecret(w.secretType, data); err != nil {
		return outcome{held: have.held, err: err}
	}

	if existing == nil {
		out, found := c.createSecret(ctx, awsSecret, w.refs, newSecret(awsSecret, w, data, hash))
		if found == nil {
			return out
		}
		// Created by us a moment ago and not yet in the cache, or hidden from the informer
		// (its managed-by label removed by hand): carry on with it.
		existing, have = found, observe(found)
	}
	switch {
	case existing.Type != w.secretType:
		return c.replaceSecret(ctx, awsSecret, w.refs, existing, have, replacement(existing, w, data, hash))
	case hash == have.hash:
		return c.repairMarks(ctx, awsSecret, w, existing, have, hash)
	default:
		update := forWriting(existing)
		mark(update, w.labels, w.withHash(hash))
		update.Data, update.StringData = data, nil
		return c.updateSecret(ctx, awsSecret, w.refs, have, update)
	}
}

// currentSecret returns the AWSSecret's Secret as it is, or nil. The lister answers in steady
// state. When it has none and the AWSSecret has been synced at least once (its status has a
// Ready condition, True or False), the API is asked, so that a Secret in the way (a persisted
// SecretConflict after a restart, or a Secret whose managed-by label was removed) is found
// before any AWS call; an AWSSecret whose every sync failed pays this read on each retry. A new
// AWSSecret skips the read: Create finds a Secret in the way.
func (c *Controller) currentSecret(ctx context.Context, awsSecret *v1alpha1.AWSSecret) (*corev1.Secret, error) {
	existing, err := c.secretLister.Secrets(awsSecret.Namespace).Get(awsSecret.Name)
	switch {
	case err == nil:
		return existing, nil
	case !apierrors.IsNotFound(err):
		return nil, kubernetesError(err, "reading Secret %s", awsSecret.Name)
	case meta.FindStatusCondition(awsSecret.Status.Conditions, v1alpha1.ConditionReady) == nil:
		return nil, nil
	}
	live, err := c.kubeClient.CoreV1().Secrets(awsSecret.Namespace).Get(ctx, awsSecret.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return nil, nil
	case err != nil:
		return nil, kubernetesError(err, "reading Secret %s", awsSecret.Name)
	}
	DropSecretData(live)
	return live, nil
}

func conflictError(existing *corev1.Secret) error {
	return permanentError(v1alpha1.ReasonSecretConflict,
		"Secret %s exists and is not controlled by this AWSSecret; delete or rename it to let the controller write it", existing.Name)
}

// createSecret creates the Secret. When a Secret of that name is in the way, it returns that
// Secret if the AWSSecret controls it, for the caller to carry on with, and a conflict if not.
func (c *Controller) createSecret(ctx context.Context, awsSecret *v1alpha1.AWSSecret, pinned refs, secret *corev1.Secret) (outcome, *corev1.Secret) {
	secrets := c.kubeClient.CoreV1().Secrets(secret.Namespace)
	created, err := secrets.Create(ctx, secret, metav1.CreateOptions{FieldManager: FieldManager})
	if err == nil {
		klog.FromContext(ctx).V(2).Info("Created Secret", "secret", klog.KObj(created))
		c.recorder.Eventf(awsSecret, corev1.EventTypeNormal, EventCreated, messageCreated, created.Name, pinned)
		return outcome{result: ResultCreated, held: pinned}, nil
	}
	if !apierrors.IsAlreadyExists(err) {
		return outcome{err: kubernetesError(err, "creating Secret %s", secret.Name)}, nil
	}
	found, err := secrets.Get(ctx, secret.Name, metav1.GetOptions{})
	if err != nil {
		return outcome{err: kubernetesError(err, "reading Secret %s", secret.Name)}, nil
	}
	if !metav1.IsControlledBy(found, awsSecret) {
		return outcome{err: conflictError(found)}, nil
	}
	DropSecretData(found)
	return outcome{}, found
}

// updateSecret writes update over existing, guarded by its resourceVersion.
func (c *Controller) updateSecret(ctx context.Context, awsSecret *v1alpha1.AWSSecret, pinned refs, have observed, update *corev1.Secret) outcome {
	updated, err := c.kubeClient.CoreV1().Secrets(update.Namespace).Update(ctx, update, metav1.UpdateOptions{FieldManager: FieldManager})
	if err != nil {
		return outcome{held: have.held, err: kubernetesError(err, "updating Secret %s", update.Name)}
	}
	klog.FromContext(ctx).V(2).Info("Updated Secret", "secret", klog.KObj(updated))
	c.recorder.Eventf(awsSecret, corev1.EventTypeNormal, EventUpdated, messageUpdated, updated.Name, pinned)
	return outcome{result: ResultUpdated, held: pinned}
}

// repairMarks makes a Secret whose data are right (their digest is hash) carry the controller's
// labels and annotations. It patches only the keys that differ, guarded by the resourceVersion
// looked at, and sends no data: the controller has none to send.
func (c *Controller) repairMarks(ctx context.Context, awsSecret *v1alpha1.AWSSecret, w wanted, existing *corev1.Secret, have observed, hash string) outcome {
	annotations := w.withHash(hash)
	if metadataUpToDate(existing, w.labels, annotations) {
		return outcome{result: ResultUnchanged, held: w.refs}
	}
	before := forWriting(existing)
	after := before.DeepCopy()
	mark(after, w.labels, annotations)
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{
		"resourceVersion": existing.ResourceVersion,
		"labels":          mergePatch(before.Labels, after.Labels),
		"annotations":     mergePatch(before.Annotations, after.Annotations),
	}})
	if err != nil {
		return outcome{held: have.held, err: err}
	}
	patched, err := c.kubeClient.CoreV1().Secrets(existing.Namespace).Patch(ctx, existing.Name, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: FieldManager})
	if err != nil {
		return outcome{held: have.held, err: kubernetesError(err, "updating the labels and annotations of Secret %s", existing.Name)}
	}
	klog.FromContext(ctx).V(2).Info("Updated Secret's labels and annotations", "secret", klog.KObj(patched))
	c.recorder.Eventf(awsSecret, corev1.EventTypeNormal, EventUpdated, messageUpdated, patched.Name, w.refs)
	return outcome{result: ResultUpdated, held: w.refs}
}

// mergePatch is the JSON merge patch that turns the map before into after: changed and new keys
// with their values, removed keys with null.
func mergePatch(before, after map[string]string) map[string]any {
	p := map[string]any{}
	for k, v := range after {
		if old, ok := before[k]; !ok || old != v {
			p[k] = v
		}
	}
	for k := range before {
		if _, ok := after[k]; !ok {
			p[k] = nil
		}
	}
	return p
}

// replaceSecret changes a Secret's type, which Kubernetes allows only by deleting and creating
// it. The API server first checks the replacement in a dry run (under a generated name, since
// the old Secret still holds the name), so that the old Secret is deleted only for one the API
// server and its admission chain accept; the delete is guarded so that only the version looked
// at goes.
func (c *Controller) replaceSecret(ctx context.Context, awsSecret *v1alpha1.AWSSecret, pinned refs, existing *corev1.Secret, have observed, secret *corev1.Secret) outcome {
	logger := klog.FromContext(ctx)
	secrets := c.kubeClient.CoreV1().Secrets(secret.Namespace)

	probe := secret.DeepCopy()
	probe.Name, probe.GenerateName = "", secret.Name+"-"
	if _, err := secrets.Create(ctx, probe, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}, FieldManager: FieldManager}); err != nil {
		return outcome{held: have.held, err: kubernetesError(err, "checking a Secret %s of type %s (dry run)", secret.Name, secret.Type)}
	}

	uid, rv := existing.UID, existing.ResourceVersion
	if err := secrets.Delete(ctx, existing.Name, metav1.DeleteOptions{
		Preconditions: &metav1.Preconditions{UID: &uid, ResourceVersion: &rv},
	}); err != nil && !apierrors.IsNotFound(err) {
		return outcome{held: have.held, err: kubernetesError(err, "deleting Secret %s to change its type", existing.Name)}
	}
	created, err := secrets.Create(ctx, secret, metav1.CreateOptions{FieldManager: FieldManager})
	if err != nil {
		// The dry run passed, so this is a race or an outage; the next sync creates it.
		return outcome{err: kubernetesError(err, "creating Secret %s with type %s", secret.Name, secret.Type)}
	}
	logger.V(2).Info("Replaced Secret to change its type", "secret", klog.KObj(created), "type", created.Type)
	c.recorder.Eventf(awsSecret, corev1.EventTypeNormal, EventReplaced, messageReplaced, created.Name, existing.Type, created.Type)
	return outcome{result: ResultReplaced, held: pinned}
}

// decide asks the policy whether a namespace may read every secret an AWSSecret pins,
// and as which role; stamp names the policy annotations it decided on. known is false when
// Namespaces are watched and this one is not in the cache yet: no decision can be made without
// its annotations.
func (c *Controller) decide(namespace string, pinned refs) (d tenancy.Decision, stamp string, known bool) {
	var annotations map[string]string
	if c.namespaces != nil {
		obj, err := c.namespaces.Get(namespace)
		if err != nil {
			return tenancy.Decision{}, "", false
		}
		m, err := meta.Accessor(obj)
		if err != nil {
			return tenancy.Decision{}, "", false
		}
		annotations = m.GetAnnotations()
	}
	stamp = annotations[tenancy.AnnotationAllowedSecretIDs] + "\x00" + annotations[tenancy.AnnotationRoleARN]
	return c.policy.Decide(namespace, annotations, pinned.secretIDs()), stamp, true
}

// fetchData reads the pinned versions as id and renders them into Secret data within the
// mapping's budget and ctx's deadline. Each version is read once per sync, however many sources
// pin it. With a VersionFetcher, a version another sync is reading parks this one (ErrInFlight)
// until that read is done, and a failed read is held for every AWSSecret that pins it, but for
// one whose spec or namespace policy changed since it was told of the failure.
func (c *Controller) fetchData(ctx context.Context, awsSecret *v1alpha1.AWSSecret, stamp string, id awssm.Identity, m *render.Mapping) (map[string][]byte, error) {
	key := cache.MetaObjectToName(awsSecret)
	opts := awssm.FetchOptions{
		Wake:       func() { c.enqueue(key, fairqueue.High) },
		WakeKey:    key,
		IgnoreHold: c.readFailures.changed(awsSecret, stamp),
	}
	read := map[v1alpha1.SecretsManagerSecretRef][]byte{}
	data, err := m.Data(ctx, func(ref v1alpha1.SecretsManagerSecretRef) ([]byte, error) {
		if content, ok := read[ref]; ok {
			return content, nil
		}
		var version awssm.Version
		var err error
		if fetcher, ok := c.versions.(VersionFetcher); ok {
			version, err = fetcher.Fetch(ctx, id, ref.SecretID, ref.VersionID, opts)
		} else {
			version, err = c.versions.Get(ctx, id, ref.SecretID, ref.VersionID)
		}
		if err != nil {
			return nil, err
		}
		read[ref] = version.Bytes()
		return read[ref], nil
	})
	var ae *awssm.Error
	if errors.As(err, &ae) {
		c.readFailures.put(awsSecret, stamp)
	}
	return data, err
}
