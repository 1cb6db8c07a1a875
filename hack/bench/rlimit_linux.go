package main

import (
	"errors"
	"syscall"
	"unsafe"
)

// setAddressSpaceLimit sets RLIMIT_AS of another process (prlimit(2)).
func setAddressSpaceLimit(pid int, bytes int64) error {
	lim := syscall.Rlimit{Cur: uint64(bytes), Max: uint64(bytes)}
	_, _, errno := syscall.RawSyscall6(syscall.SYS_PRLIMIT64, uintptr(pid), uintptr(syscall.RLIMIT_AS), uintptr(unsafe.Pointer(&lim)), 0, 0, 0)
	if errno != 0 {
		return errors.New(errno.Error())
	}
	return nil
}
