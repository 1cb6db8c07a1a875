package awssm

import (
	"context"
	"math"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"golang.org/x/time/rate"
	"k8s.io/utils/clock"

	"github.com/mumoshu/aws-secret-controller/pkg/apis/mumoshu/v1alpha1"
)

// PacerOptions tune a Pacer.
type PacerOptions struct {
	// QPS caps the attempts per second; zero means no cap but what throttling sets. Burst is
	// the cap's burst; zero means QPS (at least 1).
	QPS   float64
	Burst int
	// MinQPS is the floor throttling lowers the rate to. Zero means DefaultMinQPS.
	MinQPS float64
	// Clock times the rate's changes. Nil means the real clock.
	Clock clock.PassiveClock
	// OnAttempt, if set, is told of every attempt (each SDK retry is one): the operation and
	// "success", "Throttled" or "error".
	OnAttempt func(operation, result string)
}

// DefaultMinQPS is the floor of the rate throttling sets: 20 attempts per second is 0.2 % of
// Secrets Manager's GetSecretValue quota of 10,000 per second per account and region.
const DefaultMinQPS = 20

// Pacer paces the attempts of the Secrets Manager clients it wraps (every identity's: they share
// the account's quota). Throttling lowers its rate multiplicatively, at most once a second, to
// half the rate of the last second, never below the floor; each second without throttling raises
// it by the floor, until it is back at the cap (or, with no cap, twice the rate that was
// throttled, where the pacing stops). It is safe for concurrent use.
type Pacer struct {
	opts    PacerOptions
	limiter *rate.Limiter

	mu sync.Mutex
	// paced is set while throttling holds the rate below the cap.
	paced bool
	// limit is the rate while paced; ceiling is where pacing stops.
	limit, ceiling float64
	// changed is when the rate last changed; second and count measure the attempts of the
	// current second, last those of the one before.
	changed       time.Time
	second        time.Time
	count, last   int
	throttles     int
	decreases     int
	lastThrottled time.Time
}

// NewPacer returns a pacer.
func NewPacer(opts PacerOptions) *Pacer {
	if opts.MinQPS <= 0 {
		opts.MinQPS = DefaultMinQPS
	}
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	if opts.Burst <= 0 {
		opts.Burst = max(1, int(opts.QPS))
	}
	p := &Pacer{opts: opts, limiter: rate.NewLimiter(rate.Inf, opts.Burst)}
	if opts.QPS > 0 {
		p.limiter.SetLimit(rate.Limit(opts.QPS))
	}
	return p
}

// PacerStats say what a Pacer does now.
type PacerStats struct {
	// Limit is the attempts per second allowed now; +Inf means no limit.
	Limit float64
	// Throttles counts the throttled attempts seen; Decreases the times they lowered the rate.
	Throttles, Decreases int
}

// Stats returns the pacer's state.
func (p *Pacer) Stats() PacerStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	limit := float64(p.limiter.Limit())
	if p.limiter.Limit() == rate.Inf {
		limit = math.Inf(1)
	}
	return PacerStats{Limit: limit, Throttles: p.throttles, Decreases: p.decreases}
}

// Wrap returns a retryer that waits for the pacer before each attempt of r's, and tells it how
// each went.
func (p *Pacer) Wrap(r aws.Retryer) aws.Retryer {
	v2, ok := r.(aws.RetryerV2)
	if !ok {
		v2 = retryerV2{r}
	}
	return &pacedRetryer{RetryerV2: v2, p: p}
}

type pacedRetryer struct {
	aws.RetryerV2
	p *Pacer
}

func (r *pacedRetryer) GetAttemptToken(ctx context.Context) (func(error) error, error) {
	if err := r.p.wait(ctx); err != nil {
		return nil, err
	}
	release, err := r.RetryerV2.GetAttemptToken(ctx)
	if err != nil {
		return nil, err
	}
	op := awsmiddleware.GetOperationName(ctx)
	return func(err error) error {
		r.p.observe(op, err)
		return release(err)
	}, nil
}

// retryerV2 adapts a Retryer that predates GetAttemptToken.
type retryerV2 struct{ aws.Retryer }

func (r retryerV2) GetAttemptToken(context.Context) (func(error) error, error) {
	return r.GetInitialToken(), nil
}

func (p *Pacer) wait(ctx context.Context) error {
	if err := p.limiter.Wait(ctx); err != nil {
		return err
	}
	p.started()
	return nil
}

// started counts an attempt in the current second.
func (p *Pacer) started() {
	now := p.opts.Clock.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	if now.Sub(p.second) >= time.Second {
		p.last, p.count = p.count, 0
		if now.Sub(p.second) >= 2*time.Second {
			p.last = 0
		}
		p.second = now
	}
	p.count++
}

// observe adjusts the rate to an attempt's outcome.
func (p *Pacer) observe(op string, err error) {
	result := "success"
	throttled := false
	if err != nil {
		result = "error"
		if e, ok := Classify(err, "", "").(*Error); ok && e.Reason == v1alpha1.ReasonThrottled {
			result, throttled = v1alpha1.ReasonThrottled, true
		}
	}
	if p.opts.OnAttempt != nil {
		p.opts.OnAttempt(op, result)
	}
	now := p.opts.Clock.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case throttled:
		p.throttles++
		p.lastThrottled = now
		if p.paced && now.Sub(p.changed) < time.Second {
			return
		}
		// The rate of the last second, or of this one so far: what AWS found too much.
		measured := float64(max(p.last, p.count))
		if !p.paced {
			p.paced = true
			p.ceiling = 2 * measured
			if p.opts.QPS > 0 {
				p.ceiling = p.opts.QPS
			}
			p.limit = measured
			if p.opts.QPS > 0 {
				p.limit = min(measured, p.opts.QPS)
			}
		}
		p.limit = max(p.opts.MinQPS, math.Min(p.limit, measured)/2)
		p.changed = now
		p.decreases++
		p.limiter.SetLimitAt(now, rate.Limit(p.limit))
		p.limiter.SetBurstAt(now, 1)
	case err == nil && p.paced && now.Sub(p.changed) >= time.Second && now.Sub(p.lastThrottled) >= time.Second:
		p.limit += p.opts.MinQPS
		p.changed = now
		if p.limit < p.ceiling {
			p.limiter.SetLimitAt(now, rate.Limit(p.limit))
			return
		}
		p.paced = false
		if p.opts.QPS > 0 {
			p.limiter.SetLimitAt(now, rate.Limit(p.opts.QPS))
		} else {
			p.limiter.SetLimitAt(now, rate.Inf)
		}
		p.limiter.SetBurstAt(now, p.opts.Burst)
	}
}
