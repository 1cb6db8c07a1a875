package awssm

import "syscall"

// madvDontDump is MADV_DONTDUMP (16 on every Linux architecture), which package syscall does
// not name.
const madvDontDump = 0x10

// mapSlab maps n bytes of private anonymous memory, left out of core files, or returns nil.
func mapSlab(n int) []byte {
	b, err := syscall.Mmap(-1, 0, n, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		return nil
	}
	_ = syscall.Madvise(b, madvDontDump) // best effort: a kernel without it still maps
	return b
}

func unmapSlab(b []byte) { _ = syscall.Munmap(b) }
