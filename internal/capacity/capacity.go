// Package capacity is the controller's memory formula: the Go heap it needs for a number of
// AWSSecrets, and the GOMEMLIMIT, requests and limits that follow. The Deployment in manifests/,
// the chart's defaults, the capacity table in docs/operations.md and the GOMEMLIMIT hack/bench
// gives the controllers it measures are derived from it (tests hold them to it), and every
// benchmark run committed under docs/ must stay within it.
package capacity

import (
	"math"
	"regexp"
	"strconv"
)

// The formula's terms, fitted to what `make bench` measured; see docs/memory.md for the runs
// and the fit.
const (
	// BaseMiB is the Go memory of a controller with no AWSSecret, including the syncs in flight
	// (16 workers, each bounded by the rendering budget): the hostile tenant benchmark peaked at
	// 70.6 MiB resident, of which about 40 MiB is the binary.
	BaseMiB = 24.0
	// PerObjectKiB is what one synced AWSSecret adds to the Go memory: the AWSSecret and its
	// Secret in the informer caches (metadata, no values), the queue and the indexes, 2.7 KiB
	// live between 50,000 and 100,000 AWSSecrets, and the GC's room above it.
	PerObjectKiB = 2.9
	// CacheFactor is the Go memory per byte of content in the version cache
	// (--version-cache-bytes, which counts each entry's key and overhead too).
	CacheFactor = 1.0
	// DefaultCacheBytes is --version-cache-bytes' default (awssm.DefaultCacheBytes).
	DefaultCacheBytes = 32 << 20
	// BinaryMiB is what the process holds besides the Go runtime's memory, which GOMEMLIMIT does
	// not count: the binary's code and read-only data, as far as they are resident (RssFile in
	// /proc/PID/status: 40.2 to 43.8 MiB during cold starts of 100,000 AWSSecrets).
	BinaryMiB = 44.0
	// Overshoot is how far the Go memory may pass GOMEMLIMIT, a soft limit, for a while: during
	// the cold start of 100,000 AWSSecrets it peaked 5 % above it, while the GC caught up.
	Overshoot = 0.1
	// Headroom is the limit's margin over the peak: GOMEMLIMIT is a soft limit, and a burst the
	// benchmarks did not produce may pass it for a while.
	Headroom = 1.25
)

// DefaultObjects is how many AWSSecrets the shipped Deployment and the chart's defaults are
// sized for.
const DefaultObjects = 20000

// GoMemLimitMiB is the Go memory (GOMEMLIMIT) the controller needs for objects AWSSecrets and a
// version cache bound of cacheBytes (0 for the default; negative for none). With it set, the GC
// keeps the Go heap under it, working harder as the heap nears it, instead of letting the heap
// grow to GOGC's target (1.5 times the live heap at the binary's GOGC=50).
func GoMemLimitMiB(objects int, cacheBytes int64) float64 {
	switch {
	case cacheBytes == 0:
		cacheBytes = DefaultCacheBytes
	case cacheBytes < 0:
		cacheBytes = 0
	}
	return BaseMiB + PerObjectKiB*float64(objects)/1024 + CacheFactor*float64(cacheBytes)/(1<<20)
}

// ResidentMiB is the resident set of a controller run with GOMEMLIMIT set to GoMemLimitMiB for
// the same objects and cache bound, once it has synced them: at most GOMEMLIMIT and the binary.
func ResidentMiB(objects int, cacheBytes int64) float64 {
	return GoMemLimitMiB(objects, cacheBytes) + BinaryMiB
}

// PeakMiB is the resident set that controller reaches at most, while it syncs.
func PeakMiB(objects int, cacheBytes int64) float64 {
	return PeakWithGoMemLimit(GoMemLimitMiB(objects, cacheBytes))
}

// PeakWithGoMemLimit is the resident set a controller run with GOMEMLIMIT set to goMemLimitMiB
// reaches at most, as long as its live heap fits under it: GOMEMLIMIT with its Overshoot, and
// the binary.
func PeakWithGoMemLimit(goMemLimitMiB float64) float64 {
	return (1+Overshoot)*goMemLimitMiB + BinaryMiB
}

// Resources are the memory settings of a controller's container, in MiB.
type Resources struct {
	RequestMiB, LimitMiB, GoMemLimitMiB int64
}

// For returns the memory settings for objects AWSSecrets with the default version cache.
func For(objects int) Resources { return ResourcesFor(objects, 0) }

// ResourcesFor returns the memory settings for objects AWSSecrets and a version cache bound of
// cacheBytes (as GoMemLimitMiB takes it): GOMEMLIMIT (whole MiB, rounded up), the request
// covering the peak (in steps of 16 MiB), and the limit adding Headroom to the peak (in steps of
// 32 MiB).
func ResourcesFor(objects int, cacheBytes int64) Resources {
	peak := PeakMiB(objects, cacheBytes)
	return Resources{
		RequestMiB:    roundUp(peak, 16),
		LimitMiB:      roundUp(peak*Headroom, 32),
		GoMemLimitMiB: roundUp(GoMemLimitMiB(objects, cacheBytes), 1),
	}
}

// Objects is how many AWSSecrets a memory limit of limitMiB serves with the default version
// cache (and GOMEMLIMIT as For sets it for that many): the most whose peak, with Headroom, fits
// under it. PeakMiB is linear in the objects; each adds its difference at one object.
func Objects(limitMiB int64) int {
	perObject := PeakMiB(1, 0) - PeakMiB(0, 0)
	n := (float64(limitMiB)/Headroom - PeakMiB(0, 0)) / perObject
	if n < 0 {
		return 0
	}
	return int(n)
}

var cacheBytesFlag = regexp.MustCompile(`--version-cache-bytes[= ](-?[0-9]+)`)

// CacheBytesInArgs is the --version-cache-bytes in a controller's flags, space separated, as
// GoMemLimitMiB takes it (0, the default, when they have none).
func CacheBytesInArgs(args string) int64 {
	if m := cacheBytesFlag.FindStringSubmatch(args); m != nil {
		n, _ := strconv.ParseInt(m[1], 10, 64)
		return n
	}
	return 0
}

func roundUp(mib float64, step int64) int64 {
	return int64(math.Ceil(mib/float64(step))) * step
}
