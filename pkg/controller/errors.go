package controller

import (
	"errors"
	"fmt"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/mumoshu/aws-secret-controller/pkg/apis/mumoshu/v1alpha1"
	"github.com/mumoshu/aws-secret-controller/pkg/awssm"
	"github.com/mumoshu/aws-secret-controller/pkg/render"
)

// syncError is a failed sync the controller can name: its reason goes into the Ready condition.
// Its message never contains secret material.
type syncError struct {
	reason    string
	transient bool
	// quiet errors are routine (a write that lost a race with a stale cache): they are retried
	// with backoff and change neither the status nor the events.
	quiet bool
	// parked syncs wait for a wake-up (the read they need is in flight): they are not retried.
	parked bool
	err    error
}

func (e *syncError) Error() string { return e.err.Error() }
func (e *syncError) Unwrap() error { return e.err }

// permanentError is an error that stays until the AWSSecret, the secret in AWS, or the Secret
// changes: it is retried slowly.
func permanentError(reason, format string, args ...any) error {
	return &syncError{reason: reason, err: fmt.Errorf(format, args...)}
}

// kubernetesError wraps a failed call to the Kubernetes API and says how to retry it:
//   - 409 Conflict: the cache was stale; retried quietly with backoff.
//   - 422 Invalid: the API server will refuse the same Secret again: InvalidSecret, retried slowly.
//   - 403 Forbidden, but for an exceeded quota: RBAC or admission refused it, and will again
//     until someone changes them: Forbidden, retried slowly.
//   - anything else (5xx, timeouts, quota): KubernetesError, retried with backoff.
func kubernetesError(err error, format string, args ...any) error {
	wrapped := fmt.Errorf(format+": %w", append(args, err)...)
	switch {
	case apierrors.IsConflict(err):
		return &syncError{reason: v1alpha1.ReasonKubernetesError, transient: true, quiet: true, err: wrapped}
	case apierrors.IsInvalid(err):
		return &syncError{reason: v1alpha1.ReasonInvalidSecret, err: wrapped}
	case apierrors.IsForbidden(err) && !strings.Contains(err.Error(), "exceeded quota"):
		return &syncError{reason: v1alpha1.ReasonForbidden, err: wrapped}
	default:
		return &syncError{reason: v1alpha1.ReasonKubernetesError, transient: true, err: wrapped}
	}
}

// failure is how a sync error is handled: its Ready reason, whether it is transient (retried
// soon), whether it is quiet (no status, no event), whether it is parked (not retried: something
// wakes it) and how long its cause is held (retried then, not before).
type failure struct {
	reason     string
	transient  bool
	quiet      bool
	parked     bool
	retryAfter time.Duration
}

// classify returns how to handle a sync error. Errors the controller does not know are
// transient.
func classify(err error) failure {
	var se *syncError
	if errors.As(err, &se) {
		return failure{reason: se.reason, transient: se.transient, quiet: se.quiet, parked: se.parked}
	}
	if re, ok := render.IsRenderError(err); ok {
		return failure{reason: re.Reason}
	}
	var ae *awssm.Error
	if errors.As(err, &ae) {
		return failure{reason: ae.Reason, transient: ae.Transient, parked: ae.Parked, retryAfter: ae.RetryAfter}
	}
	return failure{reason: v1alpha1.ReasonAWSError, transient: true}
}
