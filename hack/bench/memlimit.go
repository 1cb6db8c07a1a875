package main

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/mumoshu/aws-secret-controller/internal/capacity"
)

// The controllers' GOMEMLIMIT (--gomemlimit): the benchmarks measure the controller as the
// capacity table has an operator deploy it, so that the memory they report is what a Deployment
// sized by internal/capacity would reach.

var mibValue = regexp.MustCompile(`^([0-9]+)MiB$`)

// parseGoMemLimit checks --gomemlimit: "formula", "off" or a value in MiB, which it returns.
func parseGoMemLimit(v string) (int64, error) {
	switch v {
	case "formula", "off":
		return 0, nil
	}
	if m := mibValue.FindStringSubmatch(v); m != nil {
		return strconv.ParseInt(m[1], 10, 64)
	}
	return 0, fmt.Errorf("--gomemlimit %q: want formula, off or a value in MiB such as 300MiB", v)
}

// controllerEnv is the environment of a controller the bench starts, and the GOMEMLIMIT in it in
// MiB (0 for none, or one not in MiB). shipped is for N1 and H1, which emulate the shipped
// Deployment's memory limit: "formula" then gives the shipped Deployment's GOMEMLIMIT.
func (b *bench) controllerEnv(shipped bool) ([]string, int64) {
	env := strings.Fields(b.cfg.controllerEnv)
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "GOMEMLIMIT="); ok {
			n, _ := parseGoMemLimit(v)
			return env, n
		}
	}
	var limit int64
	switch b.cfg.goMemLimit {
	case "off":
		return env, 0
	case "formula":
		if shipped {
			limit = capacity.For(capacity.DefaultObjects).GoMemLimitMiB
		} else {
			limit = capacity.ResourcesFor(b.cfg.objects, capacity.CacheBytesInArgs(b.cfg.controllerArgs)).GoMemLimitMiB
		}
	default:
		limit, _ = parseGoMemLimit(b.cfg.goMemLimit)
	}
	return append(env, fmt.Sprintf("GOMEMLIMIT=%dMiB", limit)), limit
}
