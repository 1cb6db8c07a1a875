// Package capacity is the controller's memory formula: the resident set it reaches for a number
// of AWSSecrets, and the requests, limits and GOMEMLIMIT that follow. The Deployment in
// manifests/, the chart's defaults and the capacity table in docs/operations.md are derived from it (tests
// hold them to it), and every benchmark run committed under docs/ must stay within it.
package capacity

import "math"

// The formula's terms, fitted to the peak resident sets (VmHWM) that `make bench` measured; see
// docs/capacity.md for the runs and the fit.
const (
	// BaseMiB is the resident set of a controller with no AWSSecret, including the syncs in
	// flight (16 workers, each bounded by the rendering budget).
	BaseMiB = 40.0
	// PerObjectKiB is what one synced AWSSecret adds: the AWSSecret and its Secret in the
	// informer caches (metadata, no values), the queue, and the garbage the Go runtime keeps at
	// GOGC=50.
	PerObjectKiB = 5.5
	// CacheFactor is the resident bytes per byte of content in the version cache
	// (--version-cache-bytes): entries and the GC's headroom.
	CacheFactor = 1.5
	// DefaultCacheBytes is --version-cache-bytes' default (awssm.DefaultCacheBytes).
	DefaultCacheBytes = 32 << 20
	// Headroom is the limit's margin over the peak: bursts the benchmarks did not produce.
	Headroom = 1.25
	// GoMemLimitFraction is GOMEMLIMIT's share of the limit: the GC works harder near it instead
	// of letting the kernel kill the container.
	GoMemLimitFraction = 0.8
)

// DefaultObjects is how many AWSSecrets the shipped Deployment and the chart's defaults are
// sized for.
const DefaultObjects = 20000

// PeakMiB is the resident set the controller reaches at most with objects AWSSecrets and a
// version cache bound of cacheBytes (0 for the default; negative for none).
func PeakMiB(objects int, cacheBytes int64) float64 {
	switch {
	case cacheBytes == 0:
		cacheBytes = DefaultCacheBytes
	case cacheBytes < 0:
		cacheBytes = 0
	}
	return BaseMiB + PerObjectKiB*float64(objects)/1024 + CacheFactor*float64(cacheBytes)/(1<<20)
}

// Resources are the memory settings of a controller's container, in MiB.
type Resources struct {
	RequestMiB, LimitMiB, GoMemLimitMiB int64
}

// For returns the memory settings for objects AWSSecrets with the default version cache: the
// request covers the peak (in steps of 16 MiB), the limit adds Headroom (in steps of 32 MiB),
// GOMEMLIMIT is GoMemLimitFraction of the limit (whole MiB, rounded down).
func For(objects int) Resources {
	peak := PeakMiB(objects, 0)
	limit := roundUp(peak*Headroom, 32)
	return Resources{
		RequestMiB:    roundUp(peak, 16),
		LimitMiB:      limit,
		GoMemLimitMiB: int64(math.Floor(float64(limit) * GoMemLimitFraction)),
	}
}

// Objects is how many AWSSecrets a memory limit of limitMiB serves with the default version cache.
func Objects(limitMiB int64) int {
	n := (float64(limitMiB)/Headroom - PeakMiB(0, 0)) * 1024 / PerObjectKiB
	if n < 0 {
		return 0
	}
	return int(n)
}

func roundUp(mib float64, step int64) int64 {
	return int64(math.Ceil(mib/float64(step))) * step
}
