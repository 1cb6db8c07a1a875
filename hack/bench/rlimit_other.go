//go:build !linux

package main

import "errors"

// setAddressSpaceLimit is Linux's only: elsewhere the emulated memory limit has no backstop.
func setAddressSpaceLimit(int, int64) error { return errors.New("not supported on this OS") }
