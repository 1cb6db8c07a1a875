package controller

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/aws/smithy-go"
	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	core "k8s.io/client-go/testing"

	"github.com/mumoshu/aws-secret-controller/pkg/apis/mumoshu/v1alpha1"
	"github.com/mumoshu/aws-secret-controller/pkg/render"
)

// secretValue is the value behind every test secret: it must never show up outside a Secret.
const secretValue = "hunter2-Zq8v-SECRET"

// syncedSecret is the Secret the controller would have written for a at data, as stored.
func syncedSecret(a *v1alpha1.AWSSecret, data map[string]string) *corev1.Secret {
	bytes := map[string][]byte{}
	for k, v := range data {
		bytes[k] = []byte(v)
	}
	s := newSecret(a, want(a), bytes, render.DataHash(bytes))
	s.UID = types.UID("secret-uid-" + a.Name)
	s.ResourceVersion = "1"
	return s
}

// refuse is a reactor that fails every Secret action of one verb with err.
func refuse(verb string, err error) core.ReactionFunc {
	return func(action core.Action) (bool, runtime.Object, error) {
		if action.GetVerb() != verb {
			return false, nil, nil
		}
		return true, nil, err
	}
}

// conflictStatus is the status a sync leaves when a Secret of a's name is not a's.
func conflictStatus(a *v1alpha1.AWSSecret) v1alpha1.AWSSecretStatus {
	return v1alpha1.AWSSecretStatus{
		ObservedGeneration: a.Generation,
		Conditions: []metav1.Condition{{
			Type:               v1alpha1.ConditionReady,
			Status:             metav1.ConditionFalse,
			Reason:             v1alpha1.ReasonSecretConflict,
			Message:            conflictError(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: a.Name}}).Error(),
			ObservedGeneration: a.Generation,
			LastTransitionTime: metav1.NewTime(testNow),
		}},
	}
}

// withStatus returns a with the status of a synced AWSSecret.
func withStatus(a *v1alpha1.AWSSecret) *v1alpha1.AWSSecret {
	a.Status = syncedStatus(a)
	return a
}

func TestSyncHandler(t *testing.T) {
	seedJSON := `{"foo":"` + secretValue + `"}`
	seed := func() *v1alpha1.AWSSecret { return newAWSSecret("example", seedSecretID, seedVersionID) }
	// bumped is the seed example after a commit that bumps versionId: its status still
	// describes the old version.
	bumped := func() *v1alpha1.AWSSecret {
		a := newAWSSecret("example", seedSecretID, newVersionID)
		a.Generation = 2
		a.Status = syncedStatus(seed())
		return a
	}
	awsError := func(err error) func(*fakeAWS) {
		return func(f *fakeAWS) { f.errs[versionRef{seedSecretID, newVersionID}] = err }
	}

	tests := map[string]struct {
		awsSecret *v1alpha1.AWSSecret
		// secret exists before the sync, if set.
		secret *corev1.Secret
		// aws prepares Secrets Manager beyond the seed's version, which is always there.
		aws func(*fakeAWS)
		// reactor, if set, answers Secret actions before the fake does.
		reactor core.ReactionFunc

		wantAWSCalls int
		// wantSecretVerbs are the writes to Secrets, in order.
		wantSecretVerbs []string
		// wantData is the data of the last Secret written, when one is.
		wantData map[string]string
		// wantReason is the Ready reason; Synced means Ready=True; empty means no condition is
		// set (nothing written, nothing there before).
		wantReason string
		// check, if set, looks at the last Secret written.
		check func(t *testing.T, written *corev1.Secret)
		// wantStatusWrite says whether the status is written.
		wantStatusWrite bool
		// wantResult is what the sync says it did when that is not its status's reason: a quiet
		// retry, an AWSSecret being deleted. Empty means wantReason.
		wantResult string
		// wantErr says whether the sync handler returns an error, so that the item is retried.
		wantErr bool
		// wantEvents are the events recorded, as "Type Reason" prefixes.
		wantEvents []string
	}{
		"seed example creates the Secret": {
			awsSecret:       seed(),
			wantAWSCalls:    1,
			wantSecretVerbs: []string{"create"},
			wantData:        map[string]string{"foo": secretValue},
			wantReason:      v1alpha1.ReasonSynced,
			wantStatusWrite: true,
			wantEvents:      []string{"Normal Created"},
		},
		"up to date: no AWS call, no write, no event": {
			awsSecret:  withStatus(seed()),
			secret:     syncedSecret(seed(), map[string]string{"foo": secretValue}),
			wantReason: v1alpha1.ReasonSynced,
		},
		"restart with a stale status: status only, no AWS call": {
			awsSecret:       seed(),
			secret:          syncedSecret(seed(), map[string]string{"foo": secretValue}),
			wantReason:      v1alpha1.ReasonSynced,
			wantStatusWrite: true,
		},
		"versionId bump: one AWS call and an update": {
			awsSecret: bumped(),
			secret:    syncedSecret(seed(), map[string]string{"foo": secretValue}),
			aws: func(f *fakeAWS) {
				f.putString(seedSecretID, newVersionID, `{"foo":"`+secretValue+`-2"}`)
			},
			wantAWSCalls:    1,
			wantSecretVerbs: []string{"update"},
			wantData:        map[string]string{"foo": secretValue + "-2"},
			wantReason:      v1alpha1.ReasonSynced,
			wantStatusWrite: true,
			wantEvents:      []string{"Normal Updated"},
		},
		"metadata change only: a patch of the marks, no data, no AWS call": {
			awsSecret: func() *v1alpha1.AWSSecret {
				a := withStatus(seed())
				a.Spec.Metadata.Labels = map[string]string{"team": "payments"}
				a.Spec.Metadata.Annotations = map[string]string{"note": "rotated quarterly"}
				return a
			}(),
			secret:          syncedSecret(seed(), map[string]string{"foo": secretValue}),
			wantSecretVerbs: []string{"patch"},
			wantData:        map[string]string{"foo": secretValue},
			wantReason:      v1alpha1.ReasonSynced,
			wantEvents:      []string{"Normal Updated"},
		},
		"data edited by hand: restored from AWS": {
			awsSecret: withStatus(seed()),
			secret: func() *corev1.Secret {
				s := syncedSecret(seed(), map[string]string{"foo": secretValue})
				s.Data["foo"] = []byte("edited")
				return s
			}(),
			wantAWSCalls:    1,
			wantSecretVerbs: []string{"update"},
			wantData:        map[string]string{"foo": secretValue},
			wantReason:      v1alpha1.ReasonSynced,
			wantEvents:      []string{"Normal Updated"},
		},
		"data edited by hand to a value of the same length: restored from AWS": {
			awsSecret: withStatus(seed()),
			secret: func() *corev1.Secret {
				s := syncedSecret(seed(), map[string]string{"foo": secretValue})
				// One byte changed: key names and value lengths are as they were.
				edited := []byte(secretValue)
				edited[0] ^= 1
				s.Data["foo"] = edited
				return s
			}(),
			wantAWSCalls:    1,
			wantSecretVerbs: []string{"update"},
			wantData:        map[string]string{"foo": secretValue},
			wantReason:      v1alpha1.ReasonSynced,
			wantEvents:      []string{"Normal Updated"},
		},
		"labels and annotations added by others (webhooks, tools): kept, no write, no event": {
			awsSecret: func() *v1alpha1.AWSSecret {
				a := withStatus(seed())
				a.Spec.Metadata.Labels = map[string]string{"team": "payments"}
				return a
			}(),
			secret: func() *corev1.Secret {
				a := seed()
				a.Spec.Metadata.Labels = map[string]string{"team": "payments"}
				s := syncedSecret(a, map[string]string{"foo": secretValue})
				s.Labels["policy.kyverno.io/added"] = "true"
				s.Annotations["also"] = "by-hand"
				return s
			}(),
			wantReason: v1alpha1.ReasonSynced,
		},
		"a label the controller owns edited by hand: restored without an AWS call, others kept": {
			awsSecret: func() *v1alpha1.AWSSecret {
				a := withStatus(seed())
				a.Spec.Metadata.Labels = map[string]string{"team": "payments"}
				return a
			}(),
			secret: func() *corev1.Secret {
				a := seed()
				a.Spec.Metadata.Labels = map[string]string{"team": "payments"}
				s := syncedSecret(a, map[string]string{"foo": secretValue})
				s.Labels["team"] = "edited"
				s.Labels["added"] = "by-webhook"
				return s
			}(),
			wantSecretVerbs: []string{"patch"},
			wantData:        map[string]string{"foo": secretValue},
			wantReason:      v1alpha1.ReasonSynced,
			wantEvents:      []string{"Normal Updated"},
			check: func(t *testing.T, s *corev1.Secret) {
				if s.Labels["team"] != "payments" || s.Labels["added"] != "by-webhook" {
					t.Errorf("labels = %v, want team=payments and added=by-webhook", s.Labels)
				}
			},
		},
		"a key removed from spec.metadata: removed from the Secret, others' kept": {
			awsSecret: withStatus(seed()),
			secret: func() *corev1.Secret {
				a := seed()
				a.Spec.Metadata.Labels = map[string]string{"team": "payments"}
				a.Spec.Metadata.Annotations = map[string]string{"note": "old"}
				s := syncedSecret(a, map[string]string{"foo": secretValue})
				s.Labels["added"] = "by-webhook"
				s.Annotations["also"] = "by-hand"
				return s
			}(),
			wantSecretVerbs: []string{"patch"},
			wantData:        map[string]string{"foo": secretValue},
			wantReason:      v1alpha1.ReasonSynced,
			wantEvents:      []string{"Normal Updated"},
			check: func(t *testing.T, s *corev1.Secret) {
				if _, ok := s.Labels["team"]; ok || s.Labels["added"] != "by-webhook" {
					t.Errorf("labels = %v, want no team and added=by-webhook", s.Labels)
				}
				if _, ok := s.Annotations["note"]; ok || s.Annotations["also"] != "by-hand" {
					t.Errorf("annotations = %v, want no note and also=by-hand", s.Annotations)
				}
				if _, ok := s.Annotations[AnnotationOwnedLabels]; ok {
					t.Errorf("the owned-labels record is left after the last owned label went")
				}
			},
		},
		"last-applied-configuration in spec.metadata (the cache strips it): not copied, no write loop": {
			awsSecret: func() *v1alpha1.AWSSecret {
				a := withStatus(seed())
				a.Spec.Metadata.Annotations = map[string]string{lastAppliedAnnotation: `{"kind":"AWSSecret"}`, "note": "hi"}
				return a
			}(),
			secret: func() *corev1.Secret {
				a := seed()
				a.Spec.Metadata.Annotations = map[string]string{"note": "hi"}
				return syncedSecret(a, map[string]string{"foo": secretValue})
			}(),
			wantReason: v1alpha1.ReasonSynced,
		},
		"managed-by label removed by hand: found by a read and restored without an AWS call": {
			awsSecret: withStatus(seed()),
			secret: func() *corev1.Secret {
				// Without the label the Secret leaves the informer's view. The AWSSecret was
				// synced before, so the controller reads the Secret before asking AWS.
				s := syncedSecret(seed(), map[string]string{"foo": secretValue})
				delete(s.Labels, ManagedByLabel)
				return s
			}(),
			wantSecretVerbs: []string{"patch"},
			wantData:        map[string]string{"foo": secretValue},
			wantReason:      v1alpha1.ReasonSynced,
			wantEvents:      []string{"Normal Updated"},
		},
		"new AWSSecret meets its own hidden Secret: found through AlreadyExists": {
			awsSecret: seed(),
			secret: func() *corev1.Secret {
				s := syncedSecret(seed(), map[string]string{"foo": secretValue})
				delete(s.Labels, ManagedByLabel)
				return s
			}(),
			wantAWSCalls:    1,
			wantSecretVerbs: []string{"create", "patch"},
			wantData:        map[string]string{"foo": secretValue},
			wantReason:      v1alpha1.ReasonSynced,
			wantStatusWrite: true,
			wantEvents:      []string{"Normal Updated"},
		},
		"controller annotation removed by hand: restored": {
			awsSecret: withStatus(seed()),
			secret: func() *corev1.Secret {
				s := syncedSecret(seed(), map[string]string{"foo": secretValue})
				delete(s.Annotations, AnnotationStringDataVersionID)
				return s
			}(),
			wantAWSCalls:    1,
			wantSecretVerbs: []string{"patch"},
			wantData:        map[string]string{"foo": secretValue},
			wantReason:      v1alpha1.ReasonSynced,
			wantEvents:      []string{"Normal Updated"},
		},
		"type change the payload suits: dry run, then replaced without an AWS call": {
			awsSecret: func() *v1alpha1.AWSSecret {
				a := withStatus(seed())
				a.Spec.Type = corev1.SecretTypeBasicAuth
				return a
			}(),
			secret: func() *corev1.Secret {
				s := syncedSecret(seed(), map[string]string{"username": "app", "password": secretValue})
				s.Labels["added"] = "by-webhook"
				return s
			}(),
			wantSecretVerbs: []string{"create(dry-run)", "delete", "create"},
			wantData:        map[string]string{"username": "app", "password": secretValue},
			wantReason:      v1alpha1.ReasonSynced,
			wantEvents:      []string{"Normal Replaced"},
			check: func(t *testing.T, s *corev1.Secret) {
				if s.Type != corev1.SecretTypeBasicAuth || s.Labels["added"] != "by-webhook" {
					t.Errorf("replacement: type %s, labels %v; want basic-auth and others' labels kept", s.Type, s.Labels)
				}
			},
		},
		"type change the payload cannot satisfy: InvalidSecret, the old Secret stays": {
			awsSecret: func() *v1alpha1.AWSSecret {
				a := withStatus(seed())
				a.Spec.Type = corev1.SecretTypeTLS // needs tls.crt and tls.key
				return a
			}(),
			secret:          syncedSecret(seed(), map[string]string{"foo": secretValue}),
			wantReason:      v1alpha1.ReasonInvalidSecret,
			wantStatusWrite: true,
			wantErr:         true,
			wantEvents:      []string{"Warning InvalidSecret"},
		},
		"type change the API server refuses in the dry run: InvalidSecret, the old Secret stays": {
			awsSecret: func() *v1alpha1.AWSSecret {
				a := withStatus(seed())
				a.Spec.Type = "example.com/custom"
				return a
			}(),
			secret:          syncedSecret(seed(), map[string]string{"foo": secretValue}),
			reactor:         refuse("create", apierrors.NewInvalid(schema.GroupKind{Kind: "Secret"}, "example-x", nil)),
			wantSecretVerbs: []string{"create(dry-run)"},
			wantReason:      v1alpha1.ReasonInvalidSecret,
			wantStatusWrite: true,
			wantErr:         true,
			wantEvents:      []string{"Warning InvalidSecret"},
		},
		"AWSSecret being deleted: nothing written, no AWS call": {
			awsSecret: func() *v1alpha1.AWSSecret {
				a := seed()
				a.DeletionTimestamp = &metav1.Time{Time: testNow}
				a.Finalizers = []string{metav1.FinalizerDeleteDependents}
				return a
			}(),
		},
		"AWSSecret being deleted while its Secret is out of date: nothing written": {
			wantResult: ResultDeleting,
			awsSecret: func() *v1alpha1.AWSSecret {
				a := bumped()
				a.DeletionTimestamp = &metav1.Time{Time: testNow}
				a.Finalizers = []string{metav1.FinalizerDeleteDependents}
				return a
			}(),
			secret:     syncedSecret(seed(), map[string]string{"foo": secretValue}),
			wantReason: v1alpha1.ReasonSynced, // the status it had
		},
		"Secret held by another writer's finalizer: wait, no write, no AWS call": {
			awsSecret: bumped(),
			secret: func() *corev1.Secret {
				s := syncedSecret(seed(), map[string]string{"foo": secretValue})
				s.DeletionTimestamp = &metav1.Time{Time: testNow}
				s.Finalizers = []string{"example.com/backup"}
				return s
			}(),
			wantReason:      v1alpha1.ReasonKubernetesError,
			wantStatusWrite: true,
			wantErr:         true,
			wantEvents:      []string{"Warning KubernetesError"},
		},
		"update conflict (stale cache): requeued quietly, status and events untouched": {
			wantResult: v1alpha1.ReasonKubernetesError,
			awsSecret:  bumped(),
			secret:     syncedSecret(seed(), map[string]string{"foo": secretValue}),
			aws: func(f *fakeAWS) {
				f.putString(seedSecretID, newVersionID, `{"foo":"`+secretValue+`-2"}`)
			},
			reactor:         refuse("update", apierrors.NewConflict(schema.GroupResource{Resource: "secrets"}, "example", errors.New("the object has been modified"))),
			wantAWSCalls:    1,
			wantSecretVerbs: []string{"update"},
			wantReason:      v1alpha1.ReasonSynced, // the status it had
			wantErr:         true,
		},
		"create refused as invalid: InvalidSecret": {
			awsSecret:       seed(),
			reactor:         refuse("create", apierrors.NewInvalid(schema.GroupKind{Kind: "Secret"}, "example", nil)),
			wantAWSCalls:    1,
			wantSecretVerbs: []string{"create"},
			wantReason:      v1alpha1.ReasonInvalidSecret,
			wantStatusWrite: true,
			wantErr:         true,
			wantEvents:      []string{"Warning InvalidSecret"},
		},
		"update forbidden: Forbidden": {
			awsSecret: bumped(),
			secret:    syncedSecret(seed(), map[string]string{"foo": secretValue}),
			aws: func(f *fakeAWS) {
				f.putString(seedSecretID, newVersionID, `{"foo":"`+secretValue+`-2"}`)
			},
			reactor:         refuse("update", apierrors.NewForbidden(schema.GroupResource{Resource: "secrets"}, "example", errors.New("denied by policy"))),
			wantAWSCalls:    1,
			wantSecretVerbs: []string{"update"},
			wantReason:      v1alpha1.ReasonForbidden,
			wantStatusWrite: true,
			wantErr:         true,
			wantEvents:      []string{"Warning Forbidden"},
		},
		"persisted SecretConflict (after a restart): the Secret is read first, no AWS call": {
			awsSecret: func() *v1alpha1.AWSSecret {
				a := seed()
				a.Status = conflictStatus(a)
				return a
			}(),
			secret: &corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{Name: "example", Namespace: metav1.NamespaceDefault, UID: "theirs"},
				Data:       map[string][]byte{"mine": []byte("keep")},
			},
			wantReason: v1alpha1.ReasonSecretConflict,
			wantErr:    true,
		},
		"Secret not controlled by the AWSSecret: untouched, SecretConflict": {
			awsSecret: seed(),
			secret: &corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{Name: "example", Namespace: metav1.NamespaceDefault, UID: "theirs"},
				Data:       map[string][]byte{"mine": []byte("keep")},
			},
			wantAWSCalls:    1, // the payload is read before Create reveals the conflict
			wantSecretVerbs: []string{"create"},
			wantReason:      v1alpha1.ReasonSecretConflict,
			wantStatusWrite: true,
			wantErr:         true,
			wantEvents:      []string{"Warning SecretConflict"},
		},
		"managed Secret controlled by another AWSSecret: untouched, SecretConflict": {
			awsSecret: seed(),
			secret: func() *corev1.Secret {
				other := seed()
				other.UID = "another-uid"
				return syncedSecret(other, map[string]string{"foo": "other"})
			}(),
			wantReason:      v1alpha1.ReasonSecretConflict,
			wantStatusWrite: true,
			wantErr:         true,
			wantEvents:      []string{"Warning SecretConflict"},
		},
		"secret not found": {
			awsSecret: bumped(),
			secret:    syncedSecret(seed(), map[string]string{"foo": secretValue}),
			aws: awsError(&smtypes.ResourceNotFoundException{
				Message: aws.String("Secrets Manager can't find the specified secret."),
			}),
			wantAWSCalls:    1,
			wantReason:      v1alpha1.ReasonSecretNotFound,
			wantStatusWrite: true,
			wantErr:         true,
			wantEvents:      []string{"Warning SecretNotFound"},
		},
		"version not found": {
			awsSecret:       bumped(),
			secret:          syncedSecret(seed(), map[string]string{"foo": secretValue}),
			wantAWSCalls:    1,
			wantReason:      v1alpha1.ReasonVersionNotFound,
			wantStatusWrite: true,
			wantErr:         true,
			wantEvents:      []string{"Warning VersionNotFound"},
		},
		"access denied": {
			awsSecret: bumped(),
			secret:    syncedSecret(seed(), map[string]string{"foo": secretValue}),
			aws: awsError(&smithy.GenericAPIError{
				Code: "AccessDeniedException", Message: "User is not authorized to perform: secretsmanager:GetSecretValue",
			}),
			wantAWSCalls:    1,
			wantReason:      v1alpha1.ReasonAccessDenied,
			wantStatusWrite: true,
			wantErr:         true,
			wantEvents:      []string{"Warning AccessDenied"},
		},
		"secret scheduled for deletion": {
			awsSecret: bumped(),
			secret:    syncedSecret(seed(), map[string]string{"foo": secretValue}),
			aws: awsError(&smtypes.InvalidRequestException{
				Message: aws.String("You can't perform this operation on the secret because it was marked for deletion."),
			}),
			wantAWSCalls:    1,
			wantReason:      v1alpha1.ReasonSecretScheduledForDeletion,
			wantStatusWrite: true,
			wantErr:         true,
			wantEvents:      []string{"Warning SecretScheduledForDeletion"},
		},
		"decryption failure": {
			awsSecret: bumped(),
			secret:    syncedSecret(seed(), map[string]string{"foo": secretValue}),
			aws: awsError(&smtypes.DecryptionFailure{
				Message: aws.String("Secrets Manager can't decrypt the protected secret text using the provided KMS key."),
			}),
			wantAWSCalls:    1,
			wantReason:      v1alpha1.ReasonDecryptionFailure,
			wantStatusWrite: true,
			wantErr:         true,
			wantEvents:      []string{"Warning DecryptionFailure"},
		},
		"throttled": {
			awsSecret:       bumped(),
			secret:          syncedSecret(seed(), map[string]string{"foo": secretValue}),
			aws:             awsError(&smithy.GenericAPIError{Code: "ThrottlingException", Message: "Rate exceeded"}),
			wantAWSCalls:    1,
			wantReason:      v1alpha1.ReasonThrottled,
			wantStatusWrite: true,
			wantErr:         true,
			wantEvents:      []string{"Warning Throttled"},
		},
		"network error": {
			awsSecret: bumped(),
			secret:    syncedSecret(seed(), map[string]string{"foo": secretValue}),
			aws: awsError(&net.OpError{Op: "dial", Net: "tcp",
				Err: errors.New("connect: connection refused")}),
			wantAWSCalls:    1,
			wantReason:      v1alpha1.ReasonAWSError,
			wantStatusWrite: true,
			wantErr:         true,
			wantEvents:      []string{"Warning AWSError"},
		},
		"non-JSON secret: InvalidSecretFormat, Secret untouched": {
			awsSecret: bumped(),
			secret:    syncedSecret(seed(), map[string]string{"foo": secretValue}),
			aws: func(f *fakeAWS) {
				f.putString(seedSecretID, newVersionID, secretValue)
			},
			wantAWSCalls:    1,
			wantReason:      v1alpha1.ReasonInvalidSecretFormat,
			wantStatusWrite: true,
			wantErr:         true,
			wantEvents:      []string{"Warning InvalidSecretFormat"},
		},
		"invalid key: InvalidKey, nothing created": {
			awsSecret: seed(),
			aws: func(f *fakeAWS) {
				f.putString(seedSecretID, seedVersionID, `{"good":"`+secretValue+`","bad key":"`+secretValue+`"}`)
			},
			wantAWSCalls:    1,
			wantReason:      v1alpha1.ReasonInvalidKey,
			wantStatusWrite: true,
			wantErr:         true,
			wantEvents:      []string{"Warning InvalidKey"},
		},
		"stringDataFrom and dataFrom merge, stringDataFrom wins": {
			awsSecret: func() *v1alpha1.AWSSecret {
				a := seed()
				a.Spec.DataFrom = &v1alpha1.DataSource{SecretsManagerSecretRef: v1alpha1.SecretsManagerSecretRef{
					SecretID: "prod/binary", VersionID: newVersionID,
				}}
				return a
			}(),
			aws: func(f *fakeAWS) {
				// "Zm9v" is "foo", overridden by stringDataFrom; "AAEC" is 0x00 0x01 0x02.
				f.putString("prod/binary", newVersionID, `{"foo":"Zm9v","blob":"AAEC"}`)
			},
			wantAWSCalls:    2,
			wantSecretVerbs: []string{"create"},
			wantData:        map[string]string{"foo": secretValue, "blob": "\x00\x01\x02"},
			wantReason:      v1alpha1.ReasonSynced,
			wantStatusWrite: true,
			wantEvents:      []string{"Normal Created"},
		},
		"SecretBinary holding a JSON object": {
			awsSecret: seed(),
			aws: func(f *fakeAWS) {
				f.putBinary(seedSecretID, seedVersionID, []byte(`{"foo":"`+secretValue+`"}`))
			},
			wantAWSCalls:    1,
			wantSecretVerbs: []string{"create"},
			wantData:        map[string]string{"foo": secretValue},
			wantReason:      v1alpha1.ReasonSynced,
			wantStatusWrite: true,
			wantEvents:      []string{"Normal Created"},
		},
		"SecretBinary not JSON": {
			awsSecret: seed(),
			aws: func(f *fakeAWS) {
				f.putBinary(seedSecretID, seedVersionID, []byte{0xde, 0xad, 0xbe, 0xef})
			},
			wantAWSCalls:    1,
			wantReason:      v1alpha1.ReasonInvalidSecretFormat,
			wantStatusWrite: true,
			wantErr:         true,
			wantEvents:      []string{"Warning InvalidSecretFormat"},
		},
	}

	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t)
			f.aws.putString(seedSecretID, seedVersionID, seedJSON)
			if tc.aws != nil {
				tc.aws(f.aws)
			}
			f.seedAWSSecret(tc.awsSecret)
			if tc.secret != nil {
				f.seedSecret(tc.secret)
			}
			if tc.reactor != nil {
				f.secretReactors = append(f.secretReactors, tc.reactor)
			}
			// result is what the sync says it did: the reason of its status, whether or not
			// it had to write it.
			var result string
			f.options = func(o *Options) { o.OnSync = func(r string, _ time.Duration) { result = r } }
			ctx := f.context()
			c := f.newController(ctx)

			err := c.syncHandler(ctx, keyOf(t, tc.awsSecret))
			if gotErr := err != nil; gotErr != tc.wantErr {
				t.Errorf("syncHandler() error = %v, want error: %v", err, tc.wantErr)
			}

			if got := f.aws.totalCalls(); got != tc.wantAWSCalls {
				t.Errorf("AWS calls = %d, want %d (%v)", got, tc.wantAWSCalls, f.aws.calls)
			}

			var verbs []string
			var written *corev1.Secret
			var statusWrites []*v1alpha1.AWSSecret
			for _, a := range f.writes() {
				switch {
				case a.GetResource().Resource == "secrets":
					verb := a.GetVerb()
					if w, ok := a.(core.CreateAction); ok {
						if isDryRun(a) {
							verbs = append(verbs, verb+"(dry-run)")
							continue
						}
						written = w.GetObject().(*corev1.Secret)
					}
					verbs = append(verbs, verb)
					if w, ok := a.(core.UpdateAction); ok {
						written = w.GetObject().(*corev1.Secret)
					}
					if p, ok := a.(core.PatchAction); ok {
						// A repair of labels and annotations sends metadata only: the
						// controller holds no data to send.
						var fields map[string]json.RawMessage
						if err := json.Unmarshal(p.GetPatch(), &fields); err != nil {
							t.Fatal(err)
						}
						if got := slices.Sorted(maps.Keys(fields)); !slices.Equal(got, []string{"metadata"}) {
							t.Errorf("patch sets %v, want metadata only", got)
						}
						written = f.storedSecret(ctx, p.GetName())
					}
					if written != nil {
						if _, ok := written.Annotations[cachedDataDigest]; ok {
							t.Errorf("the cache's data digest was written to the Secret")
						}
					}
				case a.GetResource().Resource == "awssecrets" && a.GetSubresource() == "status" && a.GetVerb() == "update":
					statusWrites = append(statusWrites, a.(core.UpdateAction).GetObject().(*v1alpha1.AWSSecret))
				default:
					t.Errorf("unexpected write: %s %s/%s", a.GetVerb(), a.GetResource().Resource, a.GetSubresource())
				}
			}
			if strings.Join(verbs, ",") != strings.Join(tc.wantSecretVerbs, ",") {
				t.Errorf("Secret writes = %v, want %v", verbs, tc.wantSecretVerbs)
			}
			if tc.wantData != nil {
				if written == nil {
					t.Fatal("no Secret written")
				}
				got := map[string]string{}
				for k, v := range written.Data {
					got[k] = string(v)
				}
				if !equality.Semantic.DeepEqual(got, tc.wantData) {
					t.Errorf("Secret data keys = %v, want %v", slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(tc.wantData)))
				}
				if !metav1.IsControlledBy(written, tc.awsSecret) {
					t.Errorf("written Secret is not controlled by the AWSSecret: %v", written.OwnerReferences)
				}
				if written.Annotations[AnnotationDataHash] != render.DataHash(written.Data) {
					t.Errorf("data hash annotation does not match the data")
				}
			}
			if tc.check != nil {
				if written == nil {
					t.Fatal("no Secret written")
				}
				tc.check(t, written)
			}
			// An error leaves an existing Secret exactly as it was.
			if tc.wantErr && tc.secret != nil {
				live, err := f.kubeClient.CoreV1().Secrets(tc.secret.Namespace).Get(ctx, tc.secret.Name, metav1.GetOptions{})
				if err != nil {
					t.Fatalf("Secret is gone after a failed sync: %v", err)
				}
				live.ManagedFields = nil // the fake tracker adds them
				if !equality.Semantic.DeepEqual(live, tc.secret) {
					t.Errorf("Secret changed by a failed sync")
				}
			}

			if gotWrite := len(statusWrites) > 0; gotWrite != tc.wantStatusWrite {
				t.Errorf("status written = %v, want %v", gotWrite, tc.wantStatusWrite)
			}
			// The seeded status says nothing about this sync: the reason comes from the status
			// it wrote, or else from what it said it did.
			switch result {
			case ResultUnchanged, ResultCreated, ResultUpdated, ResultReplaced:
				result = v1alpha1.ReasonSynced
			}
			want := tc.wantResult
			if want == "" {
				want = tc.wantReason
			}
			if want != "" && result != want {
				t.Errorf("the sync's result = %q, want %s", result, want)
			}
			status := tc.awsSecret.Status
			if len(statusWrites) > 0 {
				status = statusWrites[len(statusWrites)-1].Status
			}
			cond := meta.FindStatusCondition(status.Conditions, v1alpha1.ConditionReady)
			if tc.wantReason == "" {
				if cond != nil {
					t.Errorf("Ready condition = %+v, want none", cond)
				}
			} else if cond == nil || cond.Reason != tc.wantReason {
				t.Errorf("Ready condition = %+v, want reason %s", cond, tc.wantReason)
			} else if wantTrue := tc.wantReason == v1alpha1.ReasonSynced; (cond.Status == metav1.ConditionTrue) != wantTrue {
				t.Errorf("Ready = %s, want %v", cond.Status, wantTrue)
			}
			if len(statusWrites) > 0 && status.ObservedGeneration != tc.awsSecret.Generation {
				t.Errorf("observedGeneration = %d, want %d", status.ObservedGeneration, tc.awsSecret.Generation)
			}

			events := f.events()
			if len(events) != len(tc.wantEvents) {
				t.Errorf("events = %q, want %q", events, tc.wantEvents)
			} else {
				for i := range events {
					if !strings.HasPrefix(events[i], tc.wantEvents[i]+" ") {
						t.Errorf("event %d = %q, want %q", i, events[i], tc.wantEvents[i])
					}
				}
			}
			f.assertNoLeak(err, events, secretValue, "Zm9v", "AAEC")
		})
	}
}

// TestSeedExampleSecret checks the whole Secret the seed example produces and the status it
// leaves, field by field.
func TestSeedExampleSecret(t *testing.T) {
	f := newFixture(t)
	f.aws.putString(seedSecretID, seedVersionID, `{"foo":"bar"}`)
	a := newAWSSecret("example", seedSecretID, seedVersionID)
	a.Spec.Metadata.Labels = map[string]string{"team": "payments"}
	a.Spec.Metadata.Annotations = map[string]string{"note": "hi", AnnotationDataHash: "spoofed"}
	ctx, _, err := f.startWith(a)
	if err != nil {
		t.Fatal(err)
	}

	got := f.storedSecret(ctx, "example")
	got.ManagedFields, got.TypeMeta = nil, metav1.TypeMeta{} // the fake tracker adds them
	want := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name:      "example",
			Namespace: "default",
			Labels:    map[string]string{"team": "payments", ManagedByLabel: "aws-secret-controller"},
			Annotations: map[string]string{
				"note":                        "hi",
				AnnotationOwnedLabels:         "team",
				AnnotationOwnedAnnotations:    "note",
				AnnotationStringDataSecretID:  seedSecretID,
				AnnotationStringDataVersionID: seedVersionID,
				AnnotationDataHash:            render.DataHash(map[string][]byte{"foo": []byte("bar")}),
			},
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion:         "mumoshu.github.io/v1alpha1",
				Kind:               "AWSSecret",
				Name:               "example",
				UID:                a.UID,
				Controller:         ptrTo(true),
				BlockOwnerDeletion: ptrTo(true),
			}},
		},
		Type: corev1.SecretTypeOpaque,
		Data: map[string][]byte{"foo": []byte("bar")},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Secret differs (-want +got):\n%s", diff)
	}

	as := f.storedAWSSecret(ctx, "example")
	if diff := cmp.Diff(syncedStatus(a), as.Status); diff != "" {
		t.Errorf("status differs (-want +got):\n%s", diff)
	}
	if n := f.aws.totalCalls(); n != 1 {
		t.Errorf("AWS calls = %d, want 1", n)
	}
}

func ptrTo[T any](v T) *T { return &v }

// TestManyAWSSecretsOneVersion shows that AWSSecrets pinning the same version share one AWS call,
// whether they are synced one after another or all at once.
func TestManyAWSSecretsOneVersion(t *testing.T) {
	for _, concurrent := range []bool{false, true} {
		t.Run(fmt.Sprintf("concurrent=%v", concurrent), func(t *testing.T) {
			const n = 100
			f := newFixture(t)
			f.aws.putString(seedSecretID, seedVersionID, `{"foo":"bar"}`)
			for i := range n {
				f.seedAWSSecret(newAWSSecret(fmt.Sprintf("app-%d", i), seedSecretID, seedVersionID))
			}
			ctx := f.context()
			c := f.newController(ctx)

			if concurrent {
				// Through the queue, with as many workers as AWSSecrets: all but one find the
				// version in flight, are parked, and come back when it is read.
				for _, a := range f.awsSecretLister {
					c.queue.Add(keyOf(t, a))
				}
				var wg sync.WaitGroup
				for range n {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for c.processNextWorkItem(ctx, ctx) {
						}
					}()
				}
				deadline := time.Now().Add(30 * time.Second)
				for c.queue.Len() > 0 || f.cache.Stats().Hits < n-1 {
					if time.Now().After(deadline) {
						t.Fatalf("not done after 30 s: %d queued, %+v", c.queue.Len(), f.cache.Stats())
					}
					time.Sleep(time.Millisecond)
				}
				c.queue.ShutDownWithDrain()
				wg.Wait()
			} else {
				for _, a := range f.awsSecretLister {
					if err := c.syncHandler(ctx, keyOf(t, a)); err != nil {
						t.Fatal(err)
					}
				}
			}
			if got := f.aws.totalCalls(); got != 1 {
				t.Errorf("AWS calls = %d, want 1", got)
			}
			secrets, err := f.kubeClient.CoreV1().Secrets("default").List(ctx, metav1.ListOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if len(secrets.Items) != n {
				t.Errorf("Secrets = %d, want %d", len(secrets.Items), n)
			}
			if s := f.cache.Stats(); s.Misses != 1 || s.Hits != n-1 {
				t.Errorf("cache stats = %+v, want 1 miss and %d hits", s, n-1)
			}
		})
	}
}

// TestSecondSyncIsANoOp syncs twice from the state the first sync wrote, as after a controller
// restart: the second costs no AWS call and no write.
func TestSecondSyncIsANoOp(t *testing.T) {
	f := newFixture(t)
	f.aws.putString(seedSecretID, seedVersionID, `{"foo":"bar","n":1}`)
	a := newAWSSecret("example", seedSecretID, seedVersionID)
	ctx, c, err := f.startWith(a)
	if err != nil {
		t.Fatal(err)
	}

	// A new fixture starts from what the first one stored, with an empty version cache.
	secret := f.storedSecret(ctx, "example")
	stored := f.storedAWSSecret(ctx, "example")
	restarted := newFixture(t)
	restarted.aws = f.aws
	restarted.seedAWSSecret(stored)
	restarted.seedSecret(secret)
	c = restarted.newController(ctx)
	if err := c.syncHandler(ctx, keyOf(t, a)); err != nil {
		t.Fatal(err)
	}
	if w := restarted.writes(); len(w) != 0 {
		t.Errorf("writes after restart = %v, want none", w)
	}
	if n := f.aws.totalCalls(); n != 1 {
		t.Errorf("AWS calls = %d, want 1 (the first sync's)", n)
	}
	if e := restarted.events(); len(e) != 0 {
		t.Errorf("events after restart = %q, want none", e)
	}
}
