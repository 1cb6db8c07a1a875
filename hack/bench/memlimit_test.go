package main

import (
	"slices"
	"testing"

	"github.com/mumoshu/aws-secret-controller/internal/capacity"
)

// TestControllerEnv: the controllers run with the GOMEMLIMIT --gomemlimit asks for, the formula's
// by default (for the run's objects and version cache, or the shipped Deployment's for N1 and
// H1), and one in --controller-env wins.
func TestControllerEnv(t *testing.T) {
	for _, tc := range []struct {
		name         string
		cfg          config
		shipped      bool
		wantEnv      []string
		wantLimitMiB int64
	}{
		{name: "formula", cfg: config{objects: 100000, goMemLimit: "formula"},
			wantEnv: []string{"GOMEMLIMIT=340MiB"}, wantLimitMiB: capacity.For(100000).GoMemLimitMiB},
		{name: "formula, smaller cache", cfg: config{objects: 100000, goMemLimit: "formula", controllerArgs: "--workers 4 --version-cache-bytes=1048576"},
			wantEnv: []string{"GOMEMLIMIT=309MiB"}, wantLimitMiB: 309},
		{name: "formula, shipped", cfg: config{objects: 10000, goMemLimit: "formula"}, shipped: true,
			wantEnv: []string{"GOMEMLIMIT=113MiB"}, wantLimitMiB: capacity.For(capacity.DefaultObjects).GoMemLimitMiB},
		{name: "off", cfg: config{objects: 100000, goMemLimit: "off", controllerEnv: "GOGC=50"},
			wantEnv: []string{"GOGC=50"}},
		{name: "explicit", cfg: config{objects: 100000, goMemLimit: "300MiB"},
			wantEnv: []string{"GOMEMLIMIT=300MiB"}, wantLimitMiB: 300},
		{name: "environment wins", cfg: config{objects: 100000, goMemLimit: "formula", controllerEnv: "GOMEMLIMIT=200MiB GOGC=50"},
			wantEnv: []string{"GOMEMLIMIT=200MiB", "GOGC=50"}, wantLimitMiB: 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := &bench{cfg: tc.cfg}
			env, limit := b.controllerEnv(tc.shipped)
			if !slices.Equal(env, tc.wantEnv) || limit != tc.wantLimitMiB {
				t.Errorf("controllerEnv(%v) = %q, %d; want %q, %d", tc.shipped, env, limit, tc.wantEnv, tc.wantLimitMiB)
			}
		})
	}
	for _, bad := range []string{"", "300", "300Mi", "1GiB", "formulas"} {
		if _, err := parseGoMemLimit(bad); err == nil {
			t.Errorf("parseGoMemLimit(%q) accepted it", bad)
		}
	}
}
