//go:build !linux

package awssm

// mapSlab maps nothing outside Linux: cached versions stay in the Go heap.
func mapSlab(int) []byte { return nil }

func unmapSlab([]byte) {}
