package awssm

import (
	"errors"
	"math"
	"testing"
	"time"

	"github.com/aws/smithy-go"
	clocktesting "k8s.io/utils/clock/testing"
)

// TestPacerBacksOffThrottling: with no cap, the first throttle sets the rate to half the
// last second's, further throttles halve it at most once a second down to the floor, and each
// second without throttling adds the floor back until pacing stops.
func TestPacerBacksOffThrottling(t *testing.T) {
	clk := clocktesting.NewFakeClock(epoch)
	var attempts = map[string]int{}
	p := NewPacer(PacerOptions{Clock: clk, OnAttempt: func(op, result string) { attempts[op+" "+result]++ }})
	throttle := &smithy.GenericAPIError{Code: "ThrottlingException"}
	limit := func() float64 { return p.Stats().Limit }
	if !math.IsInf(limit(), 1) {
		t.Fatalf("limit before any throttle = %v, want none", limit())
	}
	// 200 attempts in a second, then a throttle.
	for range 200 {
		p.started()
	}
	p.observe("GetSecretValue", throttle)
	if limit() != 100 {
		t.Fatalf("limit after the first throttle = %v, want half of 200", limit())
	}
	// More throttles within the second change nothing.
	for range 10 {
		p.observe("GetSecretValue", throttle)
	}
	if limit() != 100 {
		t.Fatalf("limit after throttles in the same second = %v, want 100", limit())
	}
	// A throttle each second, at the rate allowed, halves it down to the floor.
	for _, want := range []float64{50, 25, DefaultMinQPS, DefaultMinQPS} {
		clk.Step(time.Second)
		for range int(limit()) {
			p.started()
		}
		p.observe("GetSecretValue", throttle)
		if limit() != want {
			t.Fatalf("limit = %v, want %v", limit(), want)
		}
	}
	// A success within a second of a throttle raises nothing; each later second raises it by
	// the floor, until twice the first throttled rate (400), where pacing stops.
	p.observe("GetSecretValue", nil)
	if limit() != DefaultMinQPS {
		t.Fatalf("limit right after a throttle = %v", limit())
	}
	seconds := 0
	for !math.IsInf(limit(), 1) {
		before := limit()
		clk.Step(time.Second)
		p.observe("GetSecretValue", nil)
		if after := limit(); !math.IsInf(after, 1) && after != before+DefaultMinQPS {
			t.Fatalf("limit %v after %v, want +%v", after, before, float64(DefaultMinQPS))
		}
		if seconds++; seconds > 100 {
			t.Fatal("pacing never stopped")
		}
	}
	if seconds != 19 {
		t.Errorf("seconds to recover from %v to 400 = %d, want 19", float64(DefaultMinQPS), seconds)
	}
	if d := p.Stats().Decreases; d != 5 {
		t.Errorf("decreases = %d, want 5", d)
	}
	if attempts["GetSecretValue Throttled"] != 15 || attempts["GetSecretValue success"] != 20 {
		t.Errorf("attempts = %v", attempts)
	}
	if p.observe("GetSecretValue", errors.New("connection refused")); attempts["GetSecretValue error"] != 1 {
		t.Errorf("attempts = %v", attempts)
	}
}

// TestPacerHonoursItsCap: with --aws-api-qps set, throttling starts from the cap, not above it,
// and recovery stops at it.
func TestPacerHonoursItsCap(t *testing.T) {
	clk := clocktesting.NewFakeClock(epoch)
	p := NewPacer(PacerOptions{QPS: 60, Clock: clk})
	if p.Stats().Limit != 60 {
		t.Fatalf("limit = %v, want the cap", p.Stats().Limit)
	}
	for range 500 {
		p.started()
	}
	p.observe("GetSecretValue", &smithy.GenericAPIError{Code: "ThrottlingException"})
	if p.Stats().Limit != 30 {
		t.Fatalf("limit after a throttle = %v, want half the cap", p.Stats().Limit)
	}
	for range 5 {
		clk.Step(time.Second)
		p.observe("GetSecretValue", nil)
	}
	if p.Stats().Limit != 60 {
		t.Errorf("limit after recovery = %v, want the cap", p.Stats().Limit)
	}
}
