package awssm

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

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
	msg       string
	err       error
}

func (e *Error) Error() string { return e.msg }

// Unwrap returns the SDK's error.
func (e *Error) Unwrap() error { return e.err }

// throttleCodes are the API error codes AWS uses for throttling.
var throttleCodes = map[string]bool{
	"ThrottlingException":                    true,
	"Throttling":                             true,
	"TooManyRequestsException":               true,
	"RequestLimitExceeded":                   true,
	"RequestThrottled":                       true,
	"RequestThrottledException":              true,
	"ProvisionedThroughputExceededException": true,
	"SlowDown":                               true,
}

// Classify turns an error from GetSecretValue into an *Error with a reason.
func Classify(err error, secretID, versionID string) error {
	e := &Error{Reason: v1alpha1.ReasonAWSError, err: err}
	var (
		notFound   *types.ResourceNotFoundException
		invalidReq *types.InvalidRequestException
		decrypt    *types.DecryptionFailure
		internal   *types.InternalServiceError
		apiErr     smithy.APIError
		respErr    *awshttp.ResponseError
	)
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
	case errors.As(err, &internal):
		e.Transient = true
	case errors.As(err, &apiErr) && apiErr.ErrorCode() == "AccessDeniedException":
		e.Reason = v1alpha1.ReasonAccessDenied
	case errors.As(err, &apiErr) && throttleCodes[apiErr.ErrorCode()]:
		e.Reason, e.Transient = v1alpha1.ReasonThrottled, true
	case errors.As(err, &respErr) && respErr.HTTPStatusCode() == http.StatusTooManyRequests:
		e.Reason, e.Transient = v1alpha1.ReasonThrottled, true
	case errors.As(err, &respErr) && respErr.HTTPStatusCode() >= 500:
		e.Transient = true
	case errors.As(err, &apiErr):
		// Any other answer from AWS (InvalidParameterException, a 4xx): the request itself is wrong
		// and stays wrong until something changes.
	default:
		// No answer from AWS: network, DNS, TLS, timeouts, a canceled context.
		e.Transient = true
	}
	e.msg = fmt.Sprintf("reading version %q of secret %q: %s", versionID, secretID, describe(err))
	return e
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
