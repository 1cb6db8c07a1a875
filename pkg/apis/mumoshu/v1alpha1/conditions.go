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
	// ReasonInvalidSecretFormat: the version cannot be read as asked: not a JSON object where one
	// is needed (stringDataFrom, dataFrom, a data entry's property), or not base64 where it must be.
	ReasonInvalidSecretFormat = "InvalidSecretFormat"
	// ReasonPropertyNotFound: a data entry's property names a member the version does not have.
	ReasonPropertyNotFound = "PropertyNotFound"
	// ReasonInvalidTemplate: a template key does not parse, uses a refused construct, or fails to
	// render (a key it names is missing, a function fails).
	ReasonInvalidTemplate = "InvalidTemplate"
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
