package controller

import (
	"encoding/json"
	"maps"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/mumoshu/aws-secret-controller/pkg/apis/mumoshu/v1alpha1"
	"github.com/mumoshu/aws-secret-controller/pkg/render"
)

// This file is the Secret's shape and the controller's marks on it: what the controller owns on
// a Secret, what a Secret says it holds, and what makes a Secret valid for its type.

// The controller's marks on the Secrets it writes.
const (
	// ManagedByLabel marks the Secrets the controller writes; its Secret informer watches only those.
	ManagedByLabel = "app.kubernetes.io/managed-by"
	// AnnotationPrefix is the prefix of the controller's annotations on a Secret. Every annotation
	// under it is the controller's.
	AnnotationPrefix = "aws-secret-controller.mumoshu.github.io/"
	// AnnotationStringDataSecretID and AnnotationStringDataVersionID record the stringDataFrom
	// version the Secret holds.
	AnnotationStringDataSecretID  = AnnotationPrefix + "string-data-secret-id"
	AnnotationStringDataVersionID = AnnotationPrefix + "string-data-version-id"
	// AnnotationDataSecretID and AnnotationDataVersionID record the dataFrom version the Secret holds.
	AnnotationDataSecretID  = AnnotationPrefix + "data-secret-id"
	AnnotationDataVersionID = AnnotationPrefix + "data-version-id"
	// AnnotationDataVersions is a digest of the versions the Secret's spec.data keys hold: the
	// list itself is in the AWSSecret's status, and one annotation of fixed size stays small
	// however many entries there are.
	AnnotationDataVersions = AnnotationPrefix + "data-versions"
	// AnnotationMapping is a digest of the spec.data entries and the template the Secret was
	// rendered with: a change to either renders it again, from the version cache.
	AnnotationMapping = AnnotationPrefix + "mapping"
	// AnnotationDataHash is a digest of the Secret's data as the controller wrote it, so that a
	// hand edit is noticed and undone.
	AnnotationDataHash = AnnotationPrefix + "data-hash"
	// AnnotationOwnedLabels and AnnotationOwnedAnnotations list, comma-separated, the keys of
	// spec.metadata the controller set on the Secret. They are the record of what the controller
	// owns: a key removed from spec.metadata is removed from the Secret, while labels and
	// annotations that other writers (webhooks, tools, people) add are never touched.
	AnnotationOwnedLabels      = AnnotationPrefix + "owned-labels"
	AnnotationOwnedAnnotations = AnnotationPrefix + "owned-annotations"
)

// cachedDataDigest is where a Secret in the controller's cache keeps the digest of the data that
// DropSecretData removed. It lives only in memory: the controller removes it from everything it
// writes, and recomputes it on every Secret it reads, so a copy on a stored Secret is never trusted.
const cachedDataDigest = "cache." + AnnotationPrefix + "data-digest"

// DropSecretData replaces a Secret's data with their digest, which is all the controller needs of
// a Secret between syncs: whether it still holds what the controller wrote. It is part of
// TransformForCache, so the informer cache holds no secret value; the controller applies it to
// the Secrets it reads from the API as well.
//
// It is idempotent, as client-go requires of a transform (its FIFOs may pass an object already
// transformed through it again): a Secret without data that has a digest keeps it.
func DropSecretData(secret *corev1.Secret) {
	if _, done := secret.Annotations[cachedDataDigest]; done && secret.Data == nil && secret.StringData == nil {
		return
	}
	digest := render.DataHash(secret.Data)
	if secret.Annotations == nil {
		secret.Annotations = map[string]string{}
	}
	if recorded := secret.Annotations[AnnotationDataHash]; recorded == digest {
		digest = recorded // the same bytes, held once
	}
	secret.Annotations[cachedDataDigest] = digest
	secret.Data, secret.StringData = nil, nil
}

// dataDigest is the digest of a Secret's data: recorded by DropSecretData, or computed from the
// data of a Secret it has not seen (a cache built without TransformForCache).
func dataDigest(secret *corev1.Secret) string {
	if d, ok := secret.Annotations[cachedDataDigest]; ok && secret.Data == nil {
		return d
	}
	return render.DataHash(secret.Data)
}

// forWriting returns a copy of a Secret read by the controller to write back: without the
// in-memory digest.
func forWriting(secret *corev1.Secret) *corev1.Secret {
	s := secret.DeepCopy()
	delete(s.Annotations, cachedDataDigest)
	return s
}

// FieldManager names the controller in the managedFields of everything it writes.
const FieldManager = ComponentName

// lastAppliedAnnotation is kubectl's record of an object's last applied manifest. It describes
// the AWSSecret, not the Secret, so it is never copied from spec.metadata onto a Secret.
const lastAppliedAnnotation = "kubectl.kubernetes.io/last-applied-configuration"

// ManagedSecretsOnly restricts a Secret informer to the Secrets the controller writes, so that
// the controller neither caches nor wakes up for the cluster's other Secrets. Pass it to
// informers.WithTweakListOptions when building the factory for Options.SecretInformer.
func ManagedSecretsOnly(o *metav1.ListOptions) {
	o.LabelSelector = ManagedByLabel + "=" + ComponentName
}

// refs are the Secrets Manager versions a Secret holds (or should hold), by source.
type refs struct {
	stringDataFrom, dataFrom *v1alpha1.SecretsManagerSecretRef
	// data are the versions of the spec.data entries, each once, sorted; dataDigest is their
	// digest, which is all a Secret records of them. A Secret's refs have the digest only.
	data       []v1alpha1.SecretsManagerSecretRef
	dataDigest string
}

// pinnedRefs are the versions an AWSSecret pins.
func pinnedRefs(awsSecret *v1alpha1.AWSSecret) refs {
	var r refs
	if s := awsSecret.Spec.StringDataFrom; s != nil {
		ref := s.SecretsManagerSecretRef
		r.stringDataFrom = &ref
	}
	if s := awsSecret.Spec.DataFrom; s != nil {
		ref := s.SecretsManagerSecretRef
		r.dataFrom = &ref
	}
	if len(awsSecret.Spec.Data) > 0 {
		seen := map[v1alpha1.SecretsManagerSecretRef]bool{}
		for _, e := range awsSecret.Spec.Data {
			if !seen[e.SecretsManagerSecretRef] {
				seen[e.SecretsManagerSecretRef] = true
				r.data = append(r.data, e.SecretsManagerSecretRef)
			}
		}
		slices.SortFunc(r.data, compareRefs)
		r.dataDigest = render.VersionsDigest(r.data)
	}
	return r
}

func compareRefs(a, b v1alpha1.SecretsManagerSecretRef) int {
	if c := strings.Compare(a.SecretID, b.SecretID); c != 0 {
		return c
	}
	return strings.Compare(a.VersionID, b.VersionID)
}

func (r refs) equal(o refs) bool {
	same := func(a, b *v1alpha1.SecretsManagerSecretRef) bool {
		return (a == nil && b == nil) || (a != nil && b != nil && *a == *b)
	}
	return same(r.stringDataFrom, o.stringDataFrom) && same(r.dataFrom, o.dataFrom) && r.dataDigest == o.dataDigest
}

// secretIDs are the ids of every secret the refs name, for the tenancy policy.
func (r refs) secretIDs() []string {
	var ids []string
	for _, ref := range []*v1alpha1.SecretsManagerSecretRef{r.stringDataFrom, r.dataFrom} {
		if ref != nil {
			ids = append(ids, ref.SecretID)
		}
	}
	for _, ref := range r.data {
		ids = append(ids, ref.SecretID)
	}
	return ids
}

// dataList is the list of the data entries' versions, for the status: known when the refs came
// from a spec; for refs read from a Secret, the candidate whose digest the Secret records, or nil.
func (r refs) dataList(candidates ...[]v1alpha1.SecretsManagerSecretRef) []v1alpha1.SecretsManagerSecretRef {
	if r.data != nil || r.dataDigest == "" {
		return r.data
	}
	for _, c := range candidates {
		if len(c) > 0 && render.VersionsDigest(c) == r.dataDigest {
			return c
		}
	}
	return nil
}

// annotations records the refs on a Secret.
func (r refs) annotations() map[string]string {
	a := map[string]string{}
	if r.stringDataFrom != nil {
		a[AnnotationStringDataSecretID] = r.stringDataFrom.SecretID
		a[AnnotationStringDataVersionID] = r.stringDataFrom.VersionID
	}
	if r.dataFrom != nil {
		a[AnnotationDataSecretID] = r.dataFrom.SecretID
		a[AnnotationDataVersionID] = r.dataFrom.VersionID
	}
	if r.dataDigest != "" {
		a[AnnotationDataVersions] = r.dataDigest
	}
	return a
}

// String names the versions for events and conditions.
func (r refs) String() string {
	var parts []string
	for _, ref := range []*v1alpha1.SecretsManagerSecretRef{r.stringDataFrom, r.dataFrom} {
		if ref != nil {
			parts = append(parts, "version "+ref.VersionID+" of "+ref.SecretID)
		}
	}
	for _, ref := range r.data {
		parts = append(parts, "version "+ref.VersionID+" of "+ref.SecretID)
	}
	if len(parts) == 0 && r.dataDigest != "" {
		parts = append(parts, "the versions of its data entries")
	}
	return strings.Join(parts, " and ")
}

// observed is what a Secret the AWSSecret controls holds, read once per sync.
type observed struct {
	// hash is the digest of the Secret's data as they are now.
	hash string
	// intact says the data are as the controller wrote them (the data-hash annotation matches).
	intact bool
	// held are the versions the Secret holds; empty unless intact.
	held refs
	// mapping is the digest of the data entries and template the Secret was rendered with.
	mapping string
}

// observe reads what a Secret holds. A nil Secret holds nothing.
func observe(secret *corev1.Secret) observed {
	if secret == nil {
		return observed{}
	}
	o := observed{hash: dataDigest(secret)}
	o.intact = secret.Annotations[AnnotationDataHash] == o.hash
	if !o.intact {
		return o
	}
	ref := func(idKey, versionKey string) *v1alpha1.SecretsManagerSecretRef {
		id, ok := secret.Annotations[idKey]
		if !ok {
			return nil
		}
		return &v1alpha1.SecretsManagerSecretRef{SecretID: id, VersionID: secret.Annotations[versionKey]}
	}
	o.held = refs{
		stringDataFrom: ref(AnnotationStringDataSecretID, AnnotationStringDataVersionID),
		dataFrom:       ref(AnnotationDataSecretID, AnnotationDataVersionID),
		dataDigest:     secret.Annotations[AnnotationDataVersions],
	}
	o.mapping = secret.Annotations[AnnotationMapping]
	return o
}

// wanted is what the controller owns on the Secret of an AWSSecret, but for the data.
type wanted struct {
	refs refs
	// mapping is the digest of the data entries and the template; empty without them.
	mapping string
	// labels and annotations are every label and annotation the controller sets, its own
	// annotations (refs, owned-key records) included; the data hash is added with the data.
	labels, annotations map[string]string
	secretType          corev1.SecretType
}

// want computes what the controller owns on an AWSSecret's Secret.
func want(awsSecret *v1alpha1.AWSSecret) wanted {
	w := wanted{refs: pinnedRefs(awsSecret), mapping: render.MappingDigest(&awsSecret.Spec), labels: map[string]string{}, annotations: map[string]string{}, secretType: awsSecret.Spec.Type}
	if w.secretType == "" {
		w.secretType = corev1.SecretTypeOpaque
	}
	var ownedLabels, ownedAnnotations []string
	for k, v := range awsSecret.Spec.Metadata.Labels {
		if k != ManagedByLabel {
			w.labels[k] = v
			ownedLabels = append(ownedLabels, k)
		}
	}
	w.labels[ManagedByLabel] = ComponentName
	for k, v := range awsSecret.Spec.Metadata.Annotations {
		if !strings.HasPrefix(k, AnnotationPrefix) && k != lastAppliedAnnotation {
			w.annotations[k] = v
			ownedAnnotations = append(ownedAnnotations, k)
		}
	}
	maps.Copy(w.annotations, w.refs.annotations())
	if w.mapping != "" {
		w.annotations[AnnotationMapping] = w.mapping
	}
	if len(ownedLabels) > 0 {
		slices.Sort(ownedLabels)
		w.annotations[AnnotationOwnedLabels] = strings.Join(ownedLabels, ",")
	}
	if len(ownedAnnotations) > 0 {
		slices.Sort(ownedAnnotations)
		w.annotations[AnnotationOwnedAnnotations] = strings.Join(ownedAnnotations, ",")
	}
	return w
}

// withHash returns the annotations the controller sets on a Secret holding data of that hash.
func (w wanted) withHash(hash string) map[string]string {
	a := maps.Clone(w.annotations)
	a[AnnotationDataHash] = hash
	return a
}

// metadataUpToDate says whether a Secret carries every label and annotation the controller
// wants, and none that it set before and no longer wants. Other writers' keys do not matter.
func metadataUpToDate(secret *corev1.Secret, labels, annotations map[string]string) bool {
	has := func(have, want map[string]string) bool {
		for k, v := range want {
			if got, ok := have[k]; !ok || got != v {
				return false
			}
		}
		return true
	}
	if !has(secret.Labels, labels) || !has(secret.Annotations, annotations) {
		return false
	}
	for _, k := range stale(secret, labels, annotations) {
		if _, ok := secret.Labels[k.label]; ok && k.label != "" {
			return false
		}
		if _, ok := secret.Annotations[k.annotation]; ok && k.annotation != "" {
			return false
		}
	}
	return true
}

// staleKey is a label or an annotation the controller set and no longer wants.
type staleKey struct{ label, annotation string }

// stale lists the labels and annotations a Secret's records say the controller set, and every
// annotation under the controller's prefix, that the controller no longer wants.
func stale(secret *corev1.Secret, labels, annotations map[string]string) []staleKey {
	var out []staleKey
	for _, k := range splitKeys(secret.Annotations[AnnotationOwnedLabels]) {
		if _, ok := labels[k]; !ok {
			out = append(out, staleKey{label: k})
		}
	}
	for _, k := range splitKeys(secret.Annotations[AnnotationOwnedAnnotations]) {
		if _, ok := annotations[k]; !ok {
			out = append(out, staleKey{annotation: k})
		}
	}
	for k := range secret.Annotations {
		if _, ok := annotations[k]; !ok && strings.HasPrefix(k, AnnotationPrefix) {
			out = append(out, staleKey{annotation: k})
		}
	}
	return out
}

func splitKeys(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

// mark makes secret carry the controller's labels and annotations: the wanted ones set, the
// ones it set before and no longer wants removed, everyone else's left as they are.
func mark(secret *corev1.Secret, labels, annotations map[string]string) {
	for _, k := range stale(secret, labels, annotations) {
		delete(secret.Labels, k.label)
		delete(secret.Annotations, k.annotation)
	}
	if secret.Labels == nil {
		secret.Labels = map[string]string{}
	}
	if secret.Annotations == nil {
		secret.Annotations = map[string]string{}
	}
	maps.Copy(secret.Labels, labels)
	maps.Copy(secret.Annotations, annotations)
}

// newSecret is the Secret a new AWSSecret gets.
func newSecret(awsSecret *v1alpha1.AWSSecret, w wanted, data map[string][]byte, hash string) *corev1.Secret {
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name:      awsSecret.Name,
			Namespace: awsSecret.Namespace,
			OwnerReferences: []metav1.OwnerReference{
				*metav1.NewControllerRef(awsSecret, v1alpha1.SchemeGroupVersion.WithKind("AWSSecret")),
			},
		},
		Type: w.secretType,
		Data: data,
	}
	mark(s, w.labels, w.withHash(hash))
	return s
}

// replacement is the Secret that replaces existing to change its type: the same name, owners,
// and other writers' labels and annotations, with the controller's marks, type and data.
func replacement(existing *corev1.Secret, w wanted, data map[string][]byte, hash string) *corev1.Secret {
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name:            existing.Name,
			Namespace:       existing.Namespace,
			Labels:          maps.Clone(existing.Labels),
			Annotations:     forWriting(existing).Annotations,
			OwnerReferences: existing.OwnerReferences,
		},
		Type:      w.secretType,
		Data:      data,
		Immutable: existing.Immutable,
	}
	mark(s, w.labels, w.withHash(hash))
	return s
}

// validateSecret checks data against what the API server demands of a Secret of that type, so
// that a Secret is never replaced by one that the API server would refuse. The message names
// keys, never values.
func validateSecret(secretType corev1.SecretType, data map[string][]byte) error {
	size := 0 // the API server counts the values only
	for _, v := range data {
		size += len(v)
	}
	if size > render.MaxSecretSize {
		return permanentError(v1alpha1.ReasonInvalidSecret, "the Secret's data would be %d bytes; the API server allows at most %d", size, render.MaxSecretSize)
	}
	missing := func(keys ...string) error {
		return permanentError(v1alpha1.ReasonInvalidSecret, "a Secret of type %s needs the data key %s, which the AWSSecret's data do not have", secretType, strings.Join(keys, " and "))
	}
	has := func(k string) bool { _, ok := data[k]; return ok }
	switch secretType {
	case corev1.SecretTypeServiceAccountToken:
		return permanentError(v1alpha1.ReasonInvalidSecret, "the controller does not write Secrets of type %s: Kubernetes' token controller owns them", secretType)
	case corev1.SecretTypeTLS:
		for _, k := range []string{corev1.TLSCertKey, corev1.TLSPrivateKeyKey} {
			if !has(k) {
				return missing(k)
			}
		}
	case corev1.SecretTypeBasicAuth:
		if !has(corev1.BasicAuthUsernameKey) && !has(corev1.BasicAuthPasswordKey) {
			return missing(corev1.BasicAuthUsernameKey + " or " + corev1.BasicAuthPasswordKey)
		}
	case corev1.SecretTypeSSHAuth:
		if len(data[corev1.SSHAuthPrivateKey]) == 0 {
			return missing(corev1.SSHAuthPrivateKey)
		}
	case corev1.SecretTypeDockerConfigJson, corev1.SecretTypeDockercfg:
		key := corev1.DockerConfigJsonKey
		if secretType == corev1.SecretTypeDockercfg {
			key = corev1.DockerConfigKey
		}
		if !has(key) {
			return missing(key)
		}
		var m map[string]any
		if json.Unmarshal(data[key], &m) != nil {
			return permanentError(v1alpha1.ReasonInvalidSecret, "a Secret of type %s needs a JSON object in the data key %s", secretType, key)
		}
	}
	return nil
}
