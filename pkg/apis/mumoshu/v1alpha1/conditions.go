package v1alpha1

// ConditionReady is the type of the one condition an AWSSecret has: whether its Secret holds the
// pinned versions.
const ConditionReady = "Ready"

// Reasons of the Ready condition. The set is fixed so that alerts and scripts can match on it.
const (
	// ReasonSynced: the Secret holds the pinned versions (Ready=True).
	ReasonSynced = "Synced"
	// ReasonSecretNotFound: Secrets Manager has no secret with that id.
	ReasonSecretNotFound = "SecretNotFound"
	// ReasonVersionNotFound: the secret exists but has no version with that id.
	ReasonVersionNotFound = "VersionNotFound"
	// ReasonAccessDenied: the controller's AWS identity may not read the secret.
	ReasonAccessDenied = "AccessDenied"
	// ReasonSecretScheduledForDeletion: the secret was deleted and is in its recovery window.
	ReasonSecretScheduledForDeletion = "SecretScheduledForDeletion"
	// ReasonDecryptionFailure: Secrets Manager could not decrypt the version with its KMS key.
	ReasonDecryptionFailure = "DecryptionFailure"
	// ReasonInvalidSecretFormat: the version is not a JSON object (or a dataFrom value is not base64).
	ReasonInvalidSecretFormat = "InvalidSecretFormat"
	// ReasonInvalidKey: a JSON member name is not a valid Secret data key.
	ReasonInvalidKey = "InvalidKey"
	// ReasonSecretNotAllowed: the namespace may not read the secret id (the controller's
	// --namespace-policy, the Namespace's allowed-secret-ids annotation, --allowed-secret-ids).
	// Nothing was read from AWS and nothing was written.
	ReasonSecretNotAllowed = "SecretNotAllowed"
	// ReasonSecretConflict: a Secret of that name exists and is not controlled by this AWSSecret.
	ReasonSecretConflict = "SecretConflict"
	// ReasonThrottled: Secrets Manager throttled the request; it is retried with backoff.
	ReasonThrottled = "Throttled"
	// ReasonAWSError: any other error from AWS or the network; see the message.
	ReasonAWSError = "AWSError"
	// ReasonInvalidSecret: the Secret the AWSSecret asks for is not a valid Secret: its type's
	// required keys are missing, or the API server refused it as invalid (HTTP 422).
	ReasonInvalidSecret = "InvalidSecret"
	// ReasonForbidden: the API server refused to let the controller write the Secret (HTTP 403:
	// RBAC, or an admission policy); see the message.
	ReasonForbidden = "Forbidden"
	// ReasonKubernetesError: any other failed call to the Kubernetes API; see the message. It is
	// retried with backoff.
	ReasonKubernetesError = "KubernetesError"
)
