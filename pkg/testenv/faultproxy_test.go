package testenv

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/smithy-go"
)

// fpTarget is a stand-in for Secrets Manager: it answers every request as GetSecretValue does
// and counts the requests it got.
type fpTarget struct {
	URL string
	n   atomic.Int64
}

func (tg *fpTarget) requests() int64 { return tg.n.Load() }

func newFPTarget(t *testing.T) *fpTarget {
	t.Helper()
	tg := &fpTarget{}
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		tg.n.Add(1)
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		w.Header().Set("X-Amzn-Requestid", "00000000-0000-0000-0000-000000000000")
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, `{"ARN":"arn:aws:secretsmanager:us-east-1:1:secret:s","Name":"s","VersionId":"v1","SecretString":"{\"a\":\"b\"}"}`)
	}))
	t.Cleanup(s.Close)
	tg.URL = s.URL
	return tg
}

// newFPProxy starts a FaultProxy in front of a new target, with faults f.
func newFPProxy(t *testing.T, f Faults) (*FaultProxy, *fpTarget) {
	t.Helper()
	tg := newFPTarget(t)
	p, err := NewFaultProxy(tg.URL)
	if err != nil {
		t.Fatalf("NewFaultProxy: %v", err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	if err := p.SetFaults(f); err != nil {
		t.Fatalf("SetFaults(%+v): %v", f, err)
	}
	return p, tg
}

// newFPClient is a Secrets Manager client for url that makes one request per call.
func newFPClient(url string) *secretsmanager.Client {
	return secretsmanager.New(secretsmanager.Options{
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider("test", "test", ""),
		BaseEndpoint: aws.String(url),
		Retryer:      aws.NopRetryer{},
	})
}

func getSecret(ctx context.Context, c *secretsmanager.Client) (*secretsmanager.GetSecretValueOutput, error) {
	return c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("s")})
}

func TestFaultProxyForwards(t *testing.T) {
	p, tg := newFPProxy(t, Faults{})
	out, err := getSecret(context.Background(), newFPClient(p.URL))
	if err != nil {
		t.Fatalf("GetSecretValue: %v", err)
	}
	if got, want := aws.ToString(out.SecretString), `{"a":"b"}`; got != want {
		t.Errorf("SecretString = %q, want %q", got, want)
	}
	if got, want := aws.ToString(out.VersionId), "v1"; got != want {
		t.Errorf("VersionId = %q, want %q", got, want)
	}
	if got := tg.requests(); got != 1 {
		t.Errorf("target got %d requests, want 1", got)
	}
	reqs := p.Requests()
	if len(reqs) != 1 {
		t.Fatalf("Requests() = %+v, want 1 entry", reqs)
	}
	r := reqs[0]
	if got, want := r.Operation, "secretsmanager.GetSecretValue"; got != want {
		t.Errorf("Operation = %q, want %q", got, want)
	}
	if got, want := r.Outcome, OutcomeForwarded; got != want {
		t.Errorf("Outcome = %q, want %q", got, want)
	}
	if !strings.Contains(r.UserAgent, "aws-sdk-go-v2") {
		t.Errorf("UserAgent = %q, want one containing %q", r.UserAgent, "aws-sdk-go-v2")
	}
	if r.Time.IsZero() {
		t.Errorf("Time is zero")
	}
}

// TestFaultProxyErrorAnswers checks that throttles and server errors reach the SDK as AWS's own
// do, and are never forwarded.
func TestFaultProxyErrorAnswers(t *testing.T) {
	tests := map[string]struct {
		faults      Faults
		wantCode    string
		wantStatus  int
		wantOutcome string
		// wantThrottle is what the SDK's default throttle check says of the error.
		wantThrottle aws.Ternary
	}{
		"throttle": {
			faults:       Faults{Throttle: 1},
			wantCode:     "ThrottlingException",
			wantStatus:   http.StatusBadRequest,
			wantOutcome:  OutcomeThrottled,
			wantThrottle: aws.TrueTernary,
		},
		"server error": {
			faults:       Faults{ServerError: 1},
			wantCode:     "InternalServiceError",
			wantStatus:   http.StatusInternalServerError,
			wantOutcome:  OutcomeServerError,
			wantThrottle: aws.UnknownTernary,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			p, tg := newFPProxy(t, tc.faults)
			_, err := getSecret(context.Background(), newFPClient(p.URL))
			if err == nil {
				t.Fatalf("GetSecretValue succeeded, want %s", tc.wantCode)
			}
			var apiErr smithy.APIError
			if !errors.As(err, &apiErr) {
				t.Fatalf("err = %v (%T), want a smithy.APIError", err, err)
			}
			if got := apiErr.ErrorCode(); got != tc.wantCode {
				t.Errorf("ErrorCode() = %q, want %q", got, tc.wantCode)
			}
			var respErr *awshttp.ResponseError
			if !errors.As(err, &respErr) {
				t.Fatalf("err = %v, want an *awshttp.ResponseError", err)
			}
			if got := respErr.HTTPStatusCode(); got != tc.wantStatus {
				t.Errorf("HTTPStatusCode() = %d, want %d", got, tc.wantStatus)
			}
			if got := retry.IsErrorThrottles(retry.DefaultThrottles).IsErrorThrottle(err); got != tc.wantThrottle {
				t.Errorf("IsErrorThrottle = %v, want %v", got, tc.wantThrottle)
			}
			if got := retry.IsErrorRetryables(retry.DefaultRetryables).IsErrorRetryable(err); got != aws.TrueTernary {
				t.Errorf("IsErrorRetryable = %v, want %v", got, aws.TrueTernary)
			}
			if got := tg.requests(); got != 0 {
				t.Errorf("target got %d requests, want 0", got)
			}
			if reqs := p.Requests(); len(reqs) != 1 || reqs[0].Outcome != tc.wantOutcome {
				t.Errorf("Requests() = %+v, want 1 with Outcome %q", reqs, tc.wantOutcome)
			}
		})
	}
}

func TestFaultProxyReset(t *testing.T) {
	p, tg := newFPProxy(t, Faults{Reset: 1})
	_, err := getSecret(context.Background(), newFPClient(p.URL))
	if err == nil {
		t.Fatal("GetSecretValue succeeded, want a reset connection")
	}
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("err = %v, want one that wraps ECONNRESET", err)
	}
	if !strings.Contains(err.Error(), "connection reset") {
		t.Errorf("err = %v, want one that mentions %q", err, "connection reset")
	}
	if got := retry.IsErrorRetryables(retry.DefaultRetryables).IsErrorRetryable(err); got != aws.TrueTernary {
		t.Errorf("IsErrorRetryable = %v, want %v", got, aws.TrueTernary)
	}
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		t.Errorf("err = %v is an API error %q, want a connection error", err, apiErr.ErrorCode())
	}
	if got := tg.requests(); got != 0 {
		t.Errorf("target got %d requests, want 0", got)
	}
	if reqs := p.Requests(); len(reqs) != 1 || reqs[0].Outcome != OutcomeReset {
		t.Errorf("Requests() = %+v, want 1 with Outcome %q", reqs, OutcomeReset)
	}
}

// TestFaultProxyFractions checks that a fraction faults exactly that share of the requests,
// spread evenly rather than bunched.
func TestFaultProxyFractions(t *testing.T) {
	tests := map[string]struct {
		faults      Faults
		calls       int
		wantOutcome string
		wantFaulted int
	}{
		"throttle quarter":  {faults: Faults{Throttle: 0.25}, calls: 8, wantOutcome: OutcomeThrottled, wantFaulted: 2},
		"throttle half":     {faults: Faults{Throttle: 0.5}, calls: 6, wantOutcome: OutcomeThrottled, wantFaulted: 3},
		"server error 1/3":  {faults: Faults{ServerError: 1.0 / 3}, calls: 9, wantOutcome: OutcomeServerError, wantFaulted: 3},
		"reset quarter":     {faults: Faults{Reset: 0.25}, calls: 8, wantOutcome: OutcomeReset, wantFaulted: 2},
		"throttle zero":     {faults: Faults{Throttle: 0}, calls: 4, wantOutcome: OutcomeThrottled, wantFaulted: 0},
		"server error full": {faults: Faults{ServerError: 1}, calls: 3, wantOutcome: OutcomeServerError, wantFaulted: 3},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			p, tg := newFPProxy(t, tc.faults)
			c := newFPClient(p.URL)
			failed := 0
			for i := 0; i < tc.calls; i++ {
				if _, err := getSecret(context.Background(), c); err != nil {
					failed++
				}
			}
			reqs := p.Requests()
			if len(reqs) != tc.calls {
				t.Fatalf("Requests() has %d entries, want %d", len(reqs), tc.calls)
			}
			var at []int // indices of the faulted requests
			for i, r := range reqs {
				switch r.Outcome {
				case tc.wantOutcome:
					at = append(at, i)
				case OutcomeForwarded:
				default:
					t.Errorf("request %d: Outcome = %q, want %q or %q", i, r.Outcome, tc.wantOutcome, OutcomeForwarded)
				}
			}
			if len(at) != tc.wantFaulted {
				t.Fatalf("faulted requests at %v, want %d of %d", at, tc.wantFaulted, tc.calls)
			}
			if failed != tc.wantFaulted {
				t.Errorf("%d calls failed, want %d", failed, tc.wantFaulted)
			}
			if got, want := tg.requests(), int64(tc.calls-tc.wantFaulted); got != want {
				t.Errorf("target got %d requests, want %d", got, want)
			}
			// Evenly spread: consecutive faults are exactly 1/fraction requests apart.
			if len(at) > 1 {
				gap := tc.calls / tc.wantFaulted
				for i := 1; i < len(at); i++ {
					if at[i]-at[i-1] != gap {
						t.Errorf("faulted requests at %v, want them %d apart", at, gap)
						break
					}
				}
			}
		})
	}
}

func TestFaultProxyRefuse(t *testing.T) {
	p, tg := newFPProxy(t, Faults{})
	ctx := context.Background()

	// This client keeps an idle keep-alive connection to the proxy from before the refusal.
	kept := newFPClient(p.URL)
	if _, err := getSecret(ctx, kept); err != nil {
		t.Fatalf("GetSecretValue before Refuse: %v", err)
	}

	if err := p.SetFaults(Faults{Refuse: true}); err != nil {
		t.Fatalf("SetFaults(Refuse): %v", err)
	}
	if _, err := getSecret(ctx, kept); err == nil {
		t.Errorf("GetSecretValue over a connection open before Refuse succeeded, want an error")
	}
	_, err := getSecret(ctx, newFPClient(p.URL))
	if err == nil {
		t.Fatal("GetSecretValue during Refuse succeeded, want connection refused")
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("err = %v, want one that wraps ECONNREFUSED", err)
	}
	if !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("err = %v, want one that mentions %q", err, "connection refused")
	}
	if got := retry.IsErrorRetryables(retry.DefaultRetryables).IsErrorRetryable(err); got != aws.TrueTernary {
		t.Errorf("IsErrorRetryable = %v, want %v", got, aws.TrueTernary)
	}
	if got := tg.requests(); got != 1 {
		t.Errorf("target got %d requests, want only the 1 from before Refuse", got)
	}
	if got := len(p.Requests()); got != 1 {
		t.Errorf("Requests() has %d entries, want only the 1 from before Refuse", got)
	}
	// Refusing again is harmless.
	if err := p.SetFaults(Faults{Refuse: true}); err != nil {
		t.Errorf("SetFaults(Refuse) again: %v", err)
	}

	if err := p.SetFaults(Faults{}); err != nil {
		t.Fatalf("SetFaults(none): %v", err)
	}
	for name, c := range map[string]*secretsmanager.Client{"new client": newFPClient(p.URL), "kept client": kept} {
		if _, err := getSecret(ctx, c); err != nil {
			t.Errorf("%s: GetSecretValue after Refuse ended: %v", name, err)
		}
	}
	if got := tg.requests(); got != 3 {
		t.Errorf("target got %d requests, want 3", got)
	}
}

func TestFaultProxyDelay(t *testing.T) {
	const delay = 300 * time.Millisecond
	p, tg := newFPProxy(t, Faults{Delay: delay})
	c := newFPClient(p.URL)

	start := time.Now()
	if _, err := getSecret(context.Background(), c); err != nil {
		t.Fatalf("GetSecretValue: %v", err)
	}
	if took := time.Since(start); took < delay {
		t.Errorf("GetSecretValue took %v, want at least %v", took, delay)
	}
	if got := tg.requests(); got != 1 {
		t.Fatalf("target got %d requests, want 1", got)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start = time.Now()
	_, err := getSecret(ctx, c)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("GetSecretValue with a 50ms deadline: err = %v, want context.DeadlineExceeded", err)
	}
	if took := time.Since(start); took >= delay {
		t.Errorf("GetSecretValue with a 50ms deadline took %v, want it to give up before the %v delay", took, delay)
	}
	// The abandoned request must never reach the target, not even once its delay is over: watch
	// until well past the time it would have been forwarded.
	for until := start.Add(delay + 200*time.Millisecond); time.Now().Before(until); time.Sleep(10 * time.Millisecond) {
		if got := tg.requests(); got != 1 {
			t.Fatalf("target got %d requests, want only the 1 from before the abandoned call", got)
		}
	}
	if got := len(p.Requests()); got != 2 {
		t.Errorf("Requests() has %d entries, want 2", got)
	}
}
