package controller

import (
	"errors"
	"fmt"

	"github.com/mumoshu/aws-secret-controller/pkg/apis/mumoshu/v1alpha1"
	"github.com/mumoshu/aws-secret-controller/pkg/awssm"
)

// syncError is a failed sync the controller can name: its reason goes into the Ready condition.
// Its message never contains secret material.
type syncError struct {
	reason    string
	transient bool
	err       error
}

func (e *syncError) Error() string { return e.err.Error() }
func (e *syncError) Unwrap() error { return e.err }

// permanentError is an error that stays until the AWSSecret, the secret in AWS, or the Secret
// changes: it is retried slowly.
func permanentError(reason, format string, args ...any) error {
	return &syncError{reason: reason, err: fmt.Errorf(format, args...)}
}

// kubernetesError wraps a failed call to the Kubernetes API; it is retried with backoff.
func kubernetesError(err error, format string, args ...any) error {
	return &syncError{reason: v1alpha1.ReasonKubernetesError, transient: true, err: fmt.Errorf(format+": %w", append(args, err)...)}
}

// reasonOf returns the Ready reason of a sync error and whether it is transient. Errors the
// controller does not know are transient.
func reasonOf(err error) (reason string, transient bool) {
	var se *syncError
	if errors.As(err, &se) {
		return se.reason, se.transient
	}
	var ae *awssm.Error
	if errors.As(err, &ae) {
		return ae.Reason, ae.Transient
	}
	return v1alpha1.ReasonAWSError, true
}
