package awssm

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/mumoshu/aws-secret-controller/pkg/apis/mumoshu/v1alpha1"
)

func TestClassify(t *testing.T) {
	httpErr := func(status int) error {
		return &awshttp.ResponseError{ResponseError: &smithyhttp.ResponseError{
			Response: &smithyhttp.Response{Response: &http.Response{StatusCode: status}},
			Err:      errors.New("boom"),
		}}
	}
	tests := map[string]struct {
		err           error
		wantReason    string
		wantTransient bool
	}{
		"secret not found (AWS wording)": {
			err:        &types.ResourceNotFoundException{Message: aws.String("Secrets Manager can't find the specified secret.")},
			wantReason: v1alpha1.ReasonSecretNotFound,
		},
		"version not found (AWS wording)": {
			err:        &types.ResourceNotFoundException{Message: aws.String("Secrets Manager can't find the specified secret value for VersionId: x")},
			wantReason: v1alpha1.ReasonVersionNotFound,
		},
		"version not found (kumo wording)": {
			err:        &types.ResourceNotFoundException{Message: aws.String("Secrets Manager can't find the specified secret version.")},
			wantReason: v1alpha1.ReasonVersionNotFound,
		},
		"scheduled for deletion (AWS wording)": {
			err:        &types.InvalidRequestException{Message: aws.String("You can't perform this operation on the secret because it was marked for deletion.")},
			wantReason: v1alpha1.ReasonSecretScheduledForDeletion,
		},
		"scheduled for deletion (kumo wording)": {
			err:        &types.InvalidRequestException{Message: aws.String("You can't perform this operation on a secret that's scheduled for deletion.")},
			wantReason: v1alpha1.ReasonSecretScheduledForDeletion,
		},
		"other invalid request": {
			err:        &types.InvalidRequestException{Message: aws.String("something else")},
			wantReason: v1alpha1.ReasonAWSError,
		},
		"access denied":               {err: &smithy.GenericAPIError{Code: "AccessDeniedException"}, wantReason: v1alpha1.ReasonAccessDenied},
		"decryption":                  {err: &types.DecryptionFailure{}, wantReason: v1alpha1.ReasonDecryptionFailure},
		"internal error":              {err: &types.InternalServiceError{}, wantReason: v1alpha1.ReasonAWSError, wantTransient: true},
		"throttling":                  {err: &smithy.GenericAPIError{Code: "ThrottlingException"}, wantReason: v1alpha1.ReasonThrottled, wantTransient: true},
		"HTTP 429":                    {err: httpErr(429), wantReason: v1alpha1.ReasonThrottled, wantTransient: true},
		"HTTP 503":                    {err: httpErr(503), wantReason: v1alpha1.ReasonAWSError, wantTransient: true},
		"invalid parameter":           {err: &types.InvalidParameterException{}, wantReason: v1alpha1.ReasonAWSError},
		"network":                     {err: errors.New("dial tcp: connection refused"), wantReason: v1alpha1.ReasonAWSError, wantTransient: true},
		"timeout":                     {err: context.DeadlineExceeded, wantReason: v1alpha1.ReasonAWSError, wantTransient: true},
		"canceled":                    {err: context.Canceled, wantReason: v1alpha1.ReasonAWSError, wantTransient: true},
		"HTTP 502":                    {err: httpErr(502), wantReason: v1alpha1.ReasonAWSError, wantTransient: true},
		"HTTP 403":                    {err: httpErr(403), wantReason: v1alpha1.ReasonAWSError},
		"access denied (STS wording)": {err: &smithy.GenericAPIError{Code: "AccessDenied"}, wantReason: v1alpha1.ReasonAccessDenied},
		// Credentials that expired or could not be refreshed come back once the kubelet renews
		// the projected token or STS recovers: retried with backoff, not parked.
		"expired token":           {err: &smithy.GenericAPIError{Code: "ExpiredToken"}, wantReason: v1alpha1.ReasonAWSError, wantTransient: true},
		"expired token exception": {err: &smithy.GenericAPIError{Code: "ExpiredTokenException"}, wantReason: v1alpha1.ReasonAWSError, wantTransient: true},
		"request expired":         {err: &smithy.GenericAPIError{Code: "RequestExpired"}, wantReason: v1alpha1.ReasonAWSError, wantTransient: true},
		"IdP communication error": {err: &smithy.GenericAPIError{Code: "IDPCommunicationError"}, wantReason: v1alpha1.ReasonAWSError, wantTransient: true},
		"IdP error during credential refresh": {
			err:           fmt.Errorf("failed to refresh cached credentials, %w", &smithy.GenericAPIError{Code: "IDPCommunicationError"}),
			wantReason:    v1alpha1.ReasonAWSError,
			wantTransient: true,
		},
		"request timeout":                 {err: &smithy.GenericAPIError{Code: "RequestTimeout"}, wantReason: v1alpha1.ReasonAWSError, wantTransient: true},
		"request timeout exception":       {err: &smithy.GenericAPIError{Code: "RequestTimeoutException"}, wantReason: v1alpha1.ReasonAWSError, wantTransient: true},
		"service unavailable":             {err: &smithy.GenericAPIError{Code: "ServiceUnavailable"}, wantReason: v1alpha1.ReasonAWSError, wantTransient: true},
		"throttled exception":             {err: &smithy.GenericAPIError{Code: "ThrottledException"}, wantReason: v1alpha1.ReasonThrottled, wantTransient: true},
		"limit exceeded":                  {err: &smithy.GenericAPIError{Code: "LimitExceeded"}, wantReason: v1alpha1.ReasonThrottled, wantTransient: true},
		"limit exceeded exception":        {err: &smithy.GenericAPIError{Code: "LimitExceededException"}, wantReason: v1alpha1.ReasonThrottled, wantTransient: true},
		"too many requests":               {err: &smithy.GenericAPIError{Code: "TooManyRequestsException"}, wantReason: v1alpha1.ReasonThrottled, wantTransient: true},
		"request limit exceeded":          {err: &smithy.GenericAPIError{Code: "RequestLimitExceeded"}, wantReason: v1alpha1.ReasonThrottled, wantTransient: true},
		"unrecognized client (permanent)": {err: &smithy.GenericAPIError{Code: "UnrecognizedClientException"}, wantReason: v1alpha1.ReasonAWSError},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			err := Classify(fmt.Errorf("operation error: %w", tc.err), "prod/db", "v1")
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Classify returned %T", err)
			}
			if e.Reason != tc.wantReason || e.Transient != tc.wantTransient {
				t.Errorf("got %s transient=%v, want %s transient=%v", e.Reason, e.Transient, tc.wantReason, tc.wantTransient)
			}
			if !strings.Contains(e.Error(), `"prod/db"`) || !strings.Contains(e.Error(), `"v1"`) {
				t.Errorf("message %q does not name the secret and version", e.Error())
			}
			if !errors.Is(err, tc.err) {
				t.Errorf("the SDK error is not wrapped")
			}
		})
	}
}

// countingAPI answers GetSecretValue with "<secretId>/<versionId>" as the secret string, or
// err, and counts calls. A non-nil release channel holds every call until it is closed.
type countingAPI struct {
	mu      sync.Mutex
	calls   int
	err     error
	release chan struct{}
	entered chan struct{}
}

func (a *countingAPI) GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, _ ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error) {
	a.mu.Lock()
	a.calls++
	err, release, entered := a.err, a.release, a.entered
	a.mu.Unlock()
	if entered != nil {
		entered <- struct{}{}
	}
	if release != nil {
		select {
		case <-release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if err != nil {
		return nil, err
	}
	return &secretsmanager.GetSecretValueOutput{SecretString: aws.String(*in.SecretId + "/" + *in.VersionId)}, nil
}

func (a *countingAPI) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.calls
}

func TestCacheServesRepeatsWithoutCalls(t *testing.T) {
	api := &countingAPI{}
	var observed []string
	c := NewCache(api, CacheOptions{OnCall: func(op, result string) { observed = append(observed, op+" "+result) }})
	for range 3 {
		v, err := c.Get(context.Background(), Identity{}, "s", "v1")
		if err != nil || string(v.Bytes()) != "s/v1" {
			t.Fatalf("Get = %q, %v", v.Bytes(), err)
		}
	}
	if api.count() != 1 {
		t.Errorf("calls = %d, want 1", api.count())
	}
	if s := c.Stats(); s.Hits != 2 || s.Misses != 1 || s.Entries != 1 {
		t.Errorf("stats = %+v", s)
	}
	if strings.Join(observed, ",") != "GetSecretValue success" {
		t.Errorf("observed calls = %q", observed)
	}
}

// TestCacheKeepsNoErrorAsAVersion: a failed read is never an entry; it is held for a while
// (TestFailedReadsAreHeldAndShared), and the call is observed with its reason.
func TestCacheKeepsNoErrorAsAVersion(t *testing.T) {
	api := &countingAPI{err: &types.ResourceNotFoundException{Message: aws.String("can't find the specified secret.")}}
	var observed []string
	c, _, _ := guardedCache(t, api, CacheOptions{OnCall: func(op, result string) { observed = append(observed, result) }})
	for range 2 {
		if _, err := c.Get(context.Background(), Identity{}, "s", "v1"); err == nil {
			t.Fatal("want an error")
		}
	}
	if s := c.Stats(); api.count() != 1 || s.Entries != 0 || s.Holds != 1 {
		t.Errorf("calls = %d, stats %+v: want 1 call, no entry, 1 hold", api.count(), s)
	}
	if strings.Join(observed, ",") != "SecretNotFound" {
		t.Errorf("observed results = %q", observed)
	}
}

func TestCacheEvictsLeastRecentlyUsed(t *testing.T) {
	api := &countingAPI{}
	// "s/vN" costs 1+2+4+entryOverhead bytes: room for two entries, not three.
	c := NewCache(api, CacheOptions{MaxBytes: 2 * (7 + entryOverhead)})
	ctx := context.Background()
	for _, v := range []string{"v1", "v2", "v1", "v3"} { // v3 evicts v2, the least recently used
		if _, err := c.Get(ctx, Identity{}, "s", v); err != nil {
			t.Fatal(err)
		}
	}
	if api.count() != 3 {
		t.Fatalf("calls = %d, want 3", api.count())
	}
	if _, err := c.Get(ctx, Identity{}, "s", "v1"); err != nil || api.count() != 3 {
		t.Errorf("v1 was evicted (calls = %d)", api.count())
	}
	if _, err := c.Get(ctx, Identity{}, "s", "v2"); err != nil || api.count() != 4 {
		t.Errorf("v2 was kept (calls = %d)", api.count())
	}
	if s := c.Stats(); s.Entries != 2 || s.Bytes > 2*(7+entryOverhead) {
		t.Errorf("stats = %+v, want 2 entries within the bound", s)
	}
}

// TestCacheSharesCallsInFlight holds the first call open while more Gets arrive: they share it.
func TestCacheSharesCallsInFlight(t *testing.T) {
	api := &countingAPI{release: make(chan struct{}), entered: make(chan struct{}, 10)}
	// Nothing is cached, so a caller can only be served without a call of its own by sharing
	// the call in flight; and the call is held until every caller is in flight.
	c := NewCache(api, CacheOptions{MaxBytes: -1})
	var joined atomic.Int32
	c.joined = func() { joined.Add(1) }
	const n = 10
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := c.Get(context.Background(), Identity{}, "s", "v1")
			errs <- err
		}()
	}
	<-api.entered
	deadline := time.Now().Add(10 * time.Second)
	for joined.Load() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d callers in flight after 10s", joined.Load(), n)
		}
		time.Sleep(time.Millisecond)
	}
	close(api.release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if api.count() != 1 {
		t.Errorf("calls = %d, want 1", api.count())
	}
}

// TestCacheWaiterGivingUpKeepsTheCall shows that a caller whose context ends gets an error at
// once, while the shared call goes on and fills the cache for the others.
func TestCacheWaiterGivingUpKeepsTheCall(t *testing.T) {
	api := &countingAPI{release: make(chan struct{}), entered: make(chan struct{}, 1)}
	c := NewCache(api, CacheOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan error, 1)
	go func() {
		_, err := c.Get(ctx, Identity{}, "s", "v1")
		got <- err
	}()
	<-api.entered
	cancel()
	if err := <-got; err == nil {
		t.Fatal("want an error for the caller that gave up")
	}
	close(api.release)
	deadline := time.Now().Add(10 * time.Second)
	for c.Stats().Entries == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the shared call never filled the cache")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := c.Get(context.Background(), Identity{}, "s", "v1"); err != nil || api.count() != 1 {
		t.Errorf("Get = %v, calls = %d, want the cached version and 1 call", err, api.count())
	}
}

func TestNewHonoursEndpointAndRegion(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	client, err := New(context.Background(), Config{Region: "eu-west-1", Endpoint: "http://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	if o := client.Options(); o.Region != "eu-west-1" || aws.ToString(o.BaseEndpoint) != "http://127.0.0.1:1" {
		t.Errorf("region %q endpoint %q", o.Region, aws.ToString(o.BaseEndpoint))
	}
}

// TestCacheStatsDuringMisses reads the counters while a burst of misses is under way, as a
// Prometheus scrape does: hits must never exceed the reads made (they once underflowed to 1.8e19).
func TestCacheStatsDuringMisses(t *testing.T) {
	c := NewCache(&countingAPI{}, CacheOptions{})
	const workers, perWorker = 8, 500
	stop := make(chan struct{})
	worst := make(chan uint64, 1)
	go func() {
		var max uint64
		for {
			select {
			case <-stop:
				worst <- max
				return
			default:
			}
			if h := c.Stats().Hits; h > max {
				max = h
			}
		}
	}()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWorker {
				if _, err := c.Get(context.Background(), Identity{}, fmt.Sprintf("s%d", w), fmt.Sprintf("v%d", i)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	if max := <-worst; max != 0 {
		t.Errorf("hits seen during a burst of misses = %d, want 0", max)
	}
	if s := c.Stats(); s.Hits != 0 || s.Misses != workers*perWorker {
		t.Errorf("stats = %+v, want 0 hits and %d misses", s, workers*perWorker)
	}
}
