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
// +kubebuilder:printcolumn:name="DataSecretId",type=string,priority=1,JSONPath=`.spec.dataFrom.secretsManagerSecretRef.secretId`
// +kubebuilder:printcolumn:name="DataVersionId",type=string,priority=1,JSONPath=`.spec.dataFrom.secretsManagerSecretRef.versionId`
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
// +kubebuilder:validation:XValidation:rule="has(self.stringDataFrom) || has(self.dataFrom)",message="at least one of stringDataFrom or dataFrom is required"
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
