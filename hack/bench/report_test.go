package main

import "testing"

func TestAWSCallsMet(t *testing.T) {
	for _, tc := range []struct {
		name                    string
		metrics, attempts, kumo int
		want                    bool
	}{
		{name: "exact", metrics: 2000, attempts: 2000, kumo: 2000, want: true},
		{name: "exact, attempts not recorded (an older report)", metrics: 2000, kumo: 2000, want: true},
		{name: "SDK retries the controller counted", metrics: 2000, attempts: 2003, kumo: 2003, want: true},
		{name: "a request nobody counted", metrics: 2000, attempts: 2003, kumo: 2004, want: false},
		{name: "extra requests, attempts not recorded", metrics: 2000, kumo: 2003, want: false},
		{name: "one call too many, retried", metrics: 2001, attempts: 2003, kumo: 2003, want: false},
		{name: "one call too many", metrics: 2001, attempts: 2001, kumo: 2000, want: false},
		{name: "a call the emulator never saw", metrics: 2000, attempts: 2000, kumo: 1999, want: false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := scenario{WantAWSCalls: 2000, AWSCallsMetrics: tc.metrics, AWSAttempts: tc.attempts, AWSCallsKumo: tc.kumo}
			if measured, got := awsCallsMet(s); got != tc.want {
				t.Errorf("awsCallsMet(metrics %d, attempts %d, emulator %d) = %q, %v; want %v", tc.metrics, tc.attempts, tc.kumo, measured, got, tc.want)
			}
		})
	}
}
