package awssm

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/aws/smithy-go"

	"github.com/mumoshu/aws-secret-controller/pkg/apis/mumoshu/v1alpha1"
)

// Error is a failed read of a version, classified. Its message names the secret and version and
// repeats AWS's error code and message, which never contain secret material.
type Error struct {
	// Reason is one of the v1alpha1 Ready condition reasons.
	Reason string
	// Transient errors (throttling, 5xx, network) are worth retrying soon; the others stay until
	// something changes in AWS.
	Transient bool
	// RetryAfter, when set, is how long the version stays held: every read of it gets this
	// error without a call until then.
	RetryAfter time.Duration
	// Parked says that the read was not tried because Secrets Manager is not answering, and that
	// the FetchOptions.Wake given is called when it answers again: asking before is pointless.
	Parked bool
	// endpoint is set when AWS gave no answer (connection errors, timeouts) or a 5xx: the path
	// to Secrets Manager failed, not this read. describe is the error's short form.
	endpoint bool
	describe string
	msg      string
	err      error
}

func (e *Error) Error() string { return e.msg }

// Unwrap returns the SDK's error.
func (e *Error) Unwrap() error { return e.err }

// extraThrottleCodes are throttling codes beyond the SDK's retry.DefaultThrottleErrorCodes.
var extraThrottleCodes = map[string]bool{
	"LimitExceeded": true,
}

// transientCodes are error codes that go away without any change on the user's side, beyond what
// the SDK's retry.DefaultRetryables already know: credentials that expired or could not be
// refreshed (IRSA and Pod Identity tokens are renewed by the kubelet; STS has a bad moment),
// clock skew, and AWS's own failures.
var transientCodes = map[string]bool{
	"ExpiredToken":                   true,
	"ExpiredTokenException":          true,
	"RequestExpired":                 true,
	"IDPCommunicationError":          true,
	"IDPCommunicationErrorException": true,
	"InternalFailure":                true,
	"InternalServiceError":           true,
	"InternalServiceErrorException":  true,
	"ServiceUnavailable":             true,
	"ServiceUnavailableException":    true,
	"RequestTimeout":                 true,
	"RequestTimeoutException":        true,
	"EC2MetadataServiceUnavailable":  true,
}

// credentialCodes are the transientCodes about credentials rather than the endpoint.
var credentialCodes = map[string]bool{
	"ExpiredToken":                   true,
	"ExpiredTokenException":          true,
	"RequestExpired":                 true,
	"IDPCommunicationError":          true,
	"IDPCommunicationErrorException": true,
	"EC2MetadataServiceUnavailable":  true,
}

var (
	sdkRetryables = retry.IsErrorRetryables(retry.DefaultRetryables)
	sdkThrottles  = retry.IsErrorThrottles(retry.DefaultThrottles)
)

// Classify turns an error from GetSecretValue (or from getting credentials for it) into an
// *Error with a reason. Throttling and retryable errors are recognised the way the SDK's own
// retryer recognises them, plus the codes above; any other answer from AWS is permanent until
// something changes; no answer at all (network, timeouts) is transient.
func Classify(err error, secretID, versionID string) error {
	e := &Error{Reason: v1alpha1.ReasonAWSError, err: err}
	var (
		notFound   *types.ResourceNotFoundException
		invalidReq *types.InvalidRequestException
		decrypt    *types.DecryptionFailure
		apiErr     smithy.APIError
		respErr    *awshttp.ResponseError
	)
	code := ""
	if errors.As(err, &apiErr) {
		code = apiErr.ErrorCode()
	}
	switch {
	case errors.As(err, &notFound):
		// AWS says "can't find the specified secret value for VersionId" when only the version
		// is missing, and "can't find the specified secret" when the secret is.
		e.Reason = v1alpha1.ReasonSecretNotFound
		if strings.Contains(strings.ToLower(notFound.ErrorMessage()), "version") {
			e.Reason = v1alpha1.ReasonVersionNotFound
		}
	case errors.As(err, &invalidReq) && isDeletion(invalidReq.ErrorMessage()):
		e.Reason = v1alpha1.ReasonSecretScheduledForDeletion
	case errors.As(err, &decrypt):
		e.Reason = v1alpha1.ReasonDecryptionFailure
	case code == "AccessDeniedException" || code == "AccessDenied":
		e.Reason = v1alpha1.ReasonAccessDenied
	case sdkThrottles.IsErrorThrottle(err) == aws.TrueTernary || extraThrottleCodes[code],
		errors.As(err, &respErr) && respErr.HTTPStatusCode() == http.StatusTooManyRequests:
		e.Reason, e.Transient = v1alpha1.ReasonThrottled, true
	case transientCodes[code], sdkRetryables.IsErrorRetryable(err) == aws.TrueTernary:
		e.Transient = true
	case errors.As(err, &respErr) && respErr.HTTPStatusCode() >= 500:
		e.Transient = true
	case apiErr != nil, errors.As(err, &respErr) && respErr.HTTPStatusCode() >= 400:
		// Any other answer from AWS (InvalidParameterException, a 4xx): the request itself is wrong
		// and stays wrong until something changes.
	default:
		// No answer from AWS: network, DNS, TLS, timeouts, a canceled context.
		e.Transient = true
	}
	// A failure to get credentials from STS is not the Secrets Manager endpoint's: it is held
	// like any other failed read, and opens no circuit.
	e.endpoint = e.Transient && e.Reason != v1alpha1.ReasonThrottled && !credentialCodes[code] && !fromSTS(err)
	e.describe = describe(err)
	e.msg = fmt.Sprintf("reading version %q of secret %q: %s", versionID, secretID, e.describe)
	return e
}

// fromSTS says whether err came from a call to STS (AssumeRole, AssumeRoleWithWebIdentity).
func fromSTS(err error) bool {
	for err != nil {
		if op, ok := err.(*smithy.OperationError); ok && op.ServiceID == "STS" {
			return true
		}
		switch u := err.(type) {
		case interface{ Unwrap() error }:
			err = u.Unwrap()
		case interface{ Unwrap() []error }:
			for _, e := range u.Unwrap() {
				if fromSTS(e) {
					return true
				}
			}
			return false
		default:
			return false
		}
	}
	return false
}

func isDeletion(msg string) bool {
	msg = strings.ToLower(msg)
	return strings.Contains(msg, "deletion") || strings.Contains(msg, "deleted")
}

// describe is the part of an SDK error worth showing: the API's code and message, or the
// transport error.
func describe(err error) string {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		if msg := apiErr.ErrorMessage(); msg != "" {
			return apiErr.ErrorCode() + ": " + msg
		}
		return apiErr.ErrorCode()
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "timed out"
	}
	if errors.Is(err, context.Canceled) {
		return "canceled"
	}
	return err.Error()
}
