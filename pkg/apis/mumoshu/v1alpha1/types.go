package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// AWSSecret pins a version of an AWS Secrets Manager secret. The controller writes a Secret of the
// same name and namespace whose data comes from that version's JSON, and calls Secrets Manager
// only when the pinned version is not yet in the Secret.
//
// +genclient
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=awss,categories=aws
// +kubebuilder:printcolumn:name="SecretId",type=string,JSONPath=`.spec.stringDataFrom.secretsManagerSecretRef.secretId`
// +kubebuilder:printcolumn:name="VersionId",type=string,JSONPath=`.spec.stringDataFrom.secretsManagerSecretRef.versionId`
// +kubebuilder:printcolumn:name="Data[0]SecretId",type=string,JSONPath=`.spec.data[0].secretsManagerSecretRef.secretId`
// +kubebuilder:printcolumn:name="Data[0]VersionId",type=string,priority=1,JSONPath=`.spec.data[0].secretsManagerSecretRef.versionId`
// +kubebuilder:printcolumn:name="DataFromSecretId",type=string,priority=1,JSONPath=`.spec.dataFrom.secretsManagerSecretRef.secretId`
// +kubebuilder:printcolumn:name="DataFromVersionId",type=string,priority=1,JSONPath=`.spec.dataFrom.secretsManagerSecretRef.versionId`
// +kubebuilder:printcolumn:name="Template",type=string,priority=1,JSONPath=`.spec.template.mergePolicy`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type AWSSecret struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec names the Secrets Manager version(s) to copy and the shape of the Secret.
	// +required
	Spec AWSSecretSpec `json:"spec"`

	// Status says which versions the Secret holds and whether it is in sync.
	// +optional
	Status AWSSecretStatus `json:"status,omitempty"`
}

// AWSSecretSpec is the desired Secret: where its data comes from, its type and its metadata.
//
// The Secret's keys are gathered in a fixed order, a later source's key winning over an earlier
// one's: dataFrom, stringDataFrom, data (in list order; its keys are unique), then the template's
// keys. With a template whose mergePolicy is Replace (the default), the Secret holds only the
// template's keys; the gathered ones are its input.
//
// +kubebuilder:validation:XValidation:rule="has(self.stringDataFrom) || has(self.dataFrom) || (has(self.data) && size(self.data) > 0)",message="at least one of stringDataFrom, dataFrom or data is required"
type AWSSecretSpec struct {
	// StringDataFrom names a version whose secret string is a JSON object; each member becomes one
	// data key. Strings are copied as they are; numbers and booleans as their JSON text; objects
	// and arrays as compact JSON; null as an empty value. Its keys win over dataFrom's.
	// +optional
	StringDataFrom *DataSource `json:"stringDataFrom,omitempty"`

	// DataFrom names a version whose secret string is a JSON object of base64-encoded values;
	// each is decoded into one data key, for binary data.
	// +optional
	DataFrom *DataSource `json:"dataFrom,omitempty"`

	// Data maps one pinned version, whole or one JSON member of it, into each Secret data key.
	// Several entries may pin the same version: it is read once.
	// +optional
	// +listType=map
	// +listMapKey=key
	// +kubebuilder:validation:MaxItems=256
	Data []DataEntry `json:"data,omitempty"`

	// Template renders Secret data keys from the gathered keys with Go text/template.
	// +optional
	Template *SecretTemplate `json:"template,omitempty"`

	// Type is the type of the Secret. Defaults to Opaque. Kubernetes does not allow changing the
	// type of a Secret, so a change replaces the Secret, once the API server has accepted the
	// replacement in a dry run: a payload that lacks the type's required keys (tls.crt and
	// tls.key for kubernetes.io/tls, ...) fails with InvalidSecret and the old Secret stays.
	// kubernetes.io/service-account-token is refused: the token controller owns such Secrets.
	// +optional
	// +kubebuilder:validation:XValidation:rule="self != 'kubernetes.io/service-account-token'",message="kubernetes.io/service-account-token Secrets belong to Kubernetes' token controller; the controller would fight it over the data"
	Type corev1.SecretType `json:"type,omitempty"`

	// Metadata holds labels and annotations to put on the Secret.
	// +optional
	Metadata SecretMetadata `json:"metadata,omitempty"`
}

// DataSource names where a part of the Secret's data comes from.
type DataSource struct {
	// SecretsManagerSecretRef pins one version of one Secrets Manager secret.
	// +required
	SecretsManagerSecretRef SecretsManagerSecretRef `json:"secretsManagerSecretRef"`
}

// DataEntry maps one pinned version, or one JSON member of it, into one Secret data key.
type DataEntry struct {
	// Key is the Secret data key the value goes into.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
	// +kubebuilder:validation:XValidation:rule="self != '.' && self != '..' && !self.startsWith('..')",message="a Secret key may not be '.' or '..' or start with '..'"
	Key string `json:"key"`

	// SecretsManagerSecretRef pins the version to read.
	// +required
	SecretsManagerSecretRef SecretsManagerSecretRef `json:"secretsManagerSecretRef"`

	// Property names one member of the version, which must then be a JSON object: `a.b` reaches
	// the member b of the object a, and `a\.b` the member named "a.b". The member is mapped as
	// stringDataFrom maps members: a string as it is, a number or boolean as its JSON text, an
	// object or array as compact JSON, null as an empty value. Without it, the whole value goes
	// into the key: a secret string as its bytes, a secret binary as its bytes.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	Property string `json:"property,omitempty"`

	// Decode says how to decode the value before it goes into the key: None (the default) or
	// Base64 (standard or URL-safe alphabet, padded or not).
	// +optional
	Decode Decoding `json:"decode,omitempty"`
}

// Decoding is how a data entry's value is decoded.
// +kubebuilder:validation:Enum=None;Base64
type Decoding string

const (
	// DecodingNone copies the value as it is.
	DecodingNone Decoding = "None"
	// DecodingBase64 decodes the value from base64, standard or URL-safe, padded or not.
	DecodingBase64 Decoding = "Base64"
)

// SecretTemplate renders Secret data keys with Go text/template.
type SecretTemplate struct {
	// MergePolicy says what the Secret holds: Replace (the default) only the rendered keys;
	// Merge the gathered keys and the rendered ones, which win.
	// +optional
	MergePolicy TemplateMergePolicy `json:"mergePolicy,omitempty"`

	// Data are the Secret data keys to render, each a Go text/template over the gathered keys
	// as strings: {{ .username }}, or {{ index . "tls.crt" }} for a key that is not an
	// identifier. A key the template names and the data lack is an error, with index too. The
	// functions are text/template's own and b64enc, b64dec, trim, upper, lower, quote, toJson
	// and urlEscape; none reaches the network, the filesystem or the environment. define, block
	// and template are refused; range may only go over the gathered keys (range . outside with
	// and range, or range $), not inside another range; numbers must lie within ±65536. Rendering
	// runs under a budget charged as it runs: 4 MiB of values produced in all (every function's
	// result, intermediate ones included), 1 MiB of Secret data across keys, printf widths and
	// precisions of at most 4096, 64 KiB of template per key; past it the sync fails with
	// InvalidTemplate naming the key and the limit.
	// +required
	// +kubebuilder:validation:MinProperties=1
	// +kubebuilder:validation:MaxProperties=256
	// +kubebuilder:validation:XValidation:rule="self.all(k, size(k) <= 253 && k.matches('^[-._a-zA-Z0-9]+$') && k != '.' && k != '..' && !k.startsWith('..'))",message="every template key must be a valid Secret key: letters, digits, '-', '_' and '.', at most 253 characters, not '.' or '..' or starting with '..'"
	Data map[string]string `json:"data"`
}

// TemplateMergePolicy says whether the gathered keys stay in the Secret beside the rendered ones.
// +kubebuilder:validation:Enum=Replace;Merge
type TemplateMergePolicy string

const (
	// MergePolicyReplace: the Secret holds only the rendered keys.
	MergePolicyReplace TemplateMergePolicy = "Replace"
	// MergePolicyMerge: the Secret holds the gathered keys and the rendered ones, which win.
	MergePolicyMerge TemplateMergePolicy = "Merge"
)

// SecretsManagerSecretRef pins one version of one Secrets Manager secret. A version never changes
// in Secrets Manager, so the Secret changes only when this reference does. Version stages such as
// AWSCURRENT are refused on purpose: a change must be a commit that bumps versionId.
type SecretsManagerSecretRef struct {
	// SecretID is the name or ARN of the secret.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=2048
	SecretID string `json:"secretId"`

	// VersionID is the unique identifier of the version, as Secrets Manager returns it in VersionId.
	// +required
	// +kubebuilder:validation:MinLength=32
	// +kubebuilder:validation:MaxLength=64
	VersionID string `json:"versionId"`
}

// SecretMetadata is the metadata the Secret carries besides the controller's own.
type SecretMetadata struct {
	// Labels to put on the Secret. The label app.kubernetes.io/managed-by is the controller's.
	// +optional
	Labels map[string]string `json:"labels,omitempty"`

	// Annotations to put on the Secret. Annotations under aws-secret-controller.mumoshu.github.io/
	// are the controller's.
	// +optional
	Annotations map[string]string `json:"annotations,omitempty"`
}

// AWSSecretStatus is what the controller last observed and did.
type AWSSecretStatus struct {
	// ObservedGeneration is the metadata.generation this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// StringDataFrom is the version whose string data the Secret holds now.
	// +optional
	StringDataFrom *SecretsManagerSecretRef `json:"stringDataFrom,omitempty"`

	// DataFrom is the version whose binary data the Secret holds now.
	// +optional
	DataFrom *SecretsManagerSecretRef `json:"dataFrom,omitempty"`

	// Data are the versions the Secret's spec.data keys hold now, each once, sorted by secretId
	// and versionId.
	// +optional
	// +listType=atomic
	Data []SecretsManagerSecretRef `json:"data,omitempty"`

	// Conditions hold the Ready condition: True with reason Synced when the Secret holds the
	// pinned versions, else False with a reason saying why.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// AWSSecretList is a list of AWSSecrets.
//
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
// +kubebuilder:object:root=true
type AWSSecretList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`

	Items []AWSSecret `json:"items"`
}
