package awssm

// slabs keep the content of cached versions outside the Go heap, in memory the process maps
// itself, so that
//   - the GC neither scans it nor lets the heap grow by half its size again before collecting
//     (GOGC), and Go's size classes do not round it up: in RSS the cache costs its content,
//     rounded up to slotStep;
//   - a freed slot is zeroed at once, not left for the GC to reuse some day;
//   - a core file leaves it out (MADV_DONTDUMP).
//
// Slots come in steps of slotStep bytes, carved from slabs of slabBytes (or one slot's size,
// if larger). A freed slot is kept for the next version of its size; slabs are unmapped when the
// Cache that owns them is garbage collected. mapped never passes the bound: a version that does
// not fit is kept in the Go heap instead. Slabs are not safe for concurrent use: the Cache's
// mutex guards them.
type slabs struct {
	bound, mapped int64
	onMapped      func(int64)      // if set, told of mapped when it grows
	free          map[int][][]byte // free slots by size
	all           [][]byte         // every slab mapped
}

const (
	slotStep  = 256
	slabBytes = 64 << 10
)

func newSlabs(bound int64, onMapped func(int64)) *slabs {
	return &slabs{bound: bound, onMapped: onMapped, free: map[int][][]byte{}}
}

// slotSize is the size of the slot that holds n bytes.
func slotSize(n int) int { return (n + slotStep - 1) / slotStep * slotStep }

// alloc returns n bytes outside the Go heap (its capacity is its slot's size), or nil when
// mapping more would pass the bound or the platform maps none.
func (s *slabs) alloc(n int) []byte {
	if n == 0 {
		return nil
	}
	size := slotSize(n)
	if free := s.free[size]; len(free) > 0 {
		b := free[len(free)-1]
		s.free[size] = free[:len(free)-1]
		return b[:n]
	}
	length := max(slabBytes, size)
	if s.mapped+int64(length) > s.bound {
		return nil
	}
	slab := mapSlab(length)
	if slab == nil {
		return nil
	}
	s.mapped += int64(length)
	s.all = append(s.all, slab)
	if s.onMapped != nil {
		s.onMapped(s.mapped)
	}
	for off := size; off+size <= len(slab); off += size {
		s.free[size] = append(s.free[size], slab[off:off+size:off+size])
	}
	return slab[:n:size]
}

// release zeroes a slot alloc returned and keeps it for reuse.
func (s *slabs) release(b []byte) {
	b = b[:cap(b)]
	clear(b)
	s.free[len(b)] = append(s.free[len(b)], b)
}

// unmapAll returns every slab to the kernel. Nothing may use a slot after it.
func (s *slabs) unmapAll() {
	for _, slab := range s.all {
		unmapSlab(slab)
	}
	s.all, s.free, s.mapped = nil, nil, 0
}
