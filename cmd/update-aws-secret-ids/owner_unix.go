//go:build unix

package main

import (
	"io/fs"
	"syscall"
)

// owner returns a file's owner, group and number of hard links.
func owner(info fs.FileInfo) (uid, gid int, links uint64) {
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		return int(st.Uid), int(st.Gid), uint64(st.Nlink)
	}
	return -1, -1, 1
}
