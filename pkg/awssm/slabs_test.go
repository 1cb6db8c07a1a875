package awssm

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"
	"unsafe"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
)

// TestSlabs: slots of the size asked for, apart from each other; a released slot is zeroed and
// reused; no slab is mapped past the bound.
func TestSlabs(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("slabs are mapped on Linux only")
	}
	var told []int64
	s := newSlabs(slabBytes, func(mapped int64) { told = append(told, mapped) })
	defer s.unmapAll()
	a, b := s.alloc(1000), s.alloc(1000)
	if len(a) != 1000 || cap(a) != 1024 || len(b) != 1000 {
		t.Fatalf("alloc(1000): len %d cap %d, len %d", len(a), cap(a), len(b))
	}
	copy(a, bytes.Repeat([]byte("a"), 1000))
	copy(b, bytes.Repeat([]byte("b"), 1000))
	if string(a) != strings.Repeat("a", 1000) || string(b) != strings.Repeat("b", 1000) {
		t.Fatal("two slots overlap")
	}
	n := 2
	for s.alloc(1000) != nil {
		n++
	}
	if n != slabBytes/1024 {
		t.Errorf("one slab held %d slots of 1,024 bytes, want %d", n, slabBytes/1024)
	}
	if s.alloc(5000) != nil || s.mapped != slabBytes {
		t.Errorf("a second slab was mapped past the bound (%d bytes mapped)", s.mapped)
	}
	if len(told) != 1 || told[0] != slabBytes {
		t.Errorf("told of %v bytes mapped, want [%d]", told, slabBytes)
	}
	s.release(a)
	if c := s.alloc(900); &c[0] != &a[0] || !bytes.Equal(c[:cap(c)], make([]byte, 1024)) {
		t.Error("a released slot is not reused, or not zeroed")
	}
}

// TestCacheHitsAreCopies: a version the cache served stays as it was after its entry is evicted
// and its slot zeroed and given to another version.
func TestCacheHitsAreCopies(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("slabs are mapped on Linux only")
	}
	api := &bigAPI{}
	// Versions of 20,000 bytes ("vNvN..."): three fit in the bound, in one slab of three slots.
	c := NewCache(api, CacheOptions{MaxBytes: slabBytes})
	ctx := context.Background()
	get := func(v string) Version {
		t.Helper()
		got, err := c.Get(ctx, Identity{}, "s", v)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	get("v1")
	hit := get("v1") // from the slot
	if api.count() != 1 || c.slabs.mapped != slabBytes {
		t.Fatalf("calls = %d, %d bytes mapped: want v1 cached in a slab", api.count(), c.slabs.mapped)
	}
	for _, v := range []string{"v2", "v3", "v4"} { // v4 evicts v1 and takes its slot
		get(v)
	}
	if s := c.Stats(); s.Entries != 3 || api.count() != 4 {
		t.Fatalf("stats %+v, calls %d: want v1 evicted", s, api.count())
	}
	if string(hit.Bytes()) != strings.Repeat("v1", 10000) {
		t.Error("a version served from the cache changed when its slot was reused")
	}
	if string(get("v4").Bytes()) != strings.Repeat("v4", 10000) {
		t.Error("v4 read back wrong from the reused slot")
	}
}

// bigAPI answers every version with 20,000 bytes: its id, repeated.
type bigAPI struct{ countingAPI }

func (a *bigAPI) GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, opts ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error) {
	if _, err := a.countingAPI.GetSecretValue(ctx, in, opts...); err != nil {
		return nil, err
	}
	return &secretsmanager.GetSecretValueOutput{SecretString: aws.String(strings.Repeat(*in.VersionId, 10000))}, nil
}

// TestSlabsAreLeftOutOfCoreFiles: the kernel shows a slab's mapping with the "dd" (do not dump)
// flag in /proc/self/smaps.
func TestSlabsAreLeftOutOfCoreFiles(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("slabs are mapped on Linux only")
	}
	s := newSlabs(slabBytes, nil)
	defer s.unmapAll()
	b := s.alloc(1)
	addr := uint64(uintptr(unsafe.Pointer(&b[0])))
	smaps, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		t.Skip(err)
	}
	inSlab := false
	for _, line := range strings.Split(string(smaps), "\n") {
		var lo, hi uint64
		if n, _ := fmt.Sscanf(line, "%x-%x ", &lo, &hi); n == 2 && !strings.HasPrefix(line, "VmFlags") {
			inSlab = lo <= addr && addr < hi
			continue
		}
		if flags, ok := strings.CutPrefix(line, "VmFlags:"); ok && inSlab {
			if !slices.Contains(strings.Fields(flags), "dd") {
				t.Errorf("the slab's mapping has VmFlags %q, without dd", strings.TrimSpace(flags))
			}
			return
		}
	}
	t.Fatalf("no mapping in /proc/self/smaps holds the slab at %#x", addr)
}
