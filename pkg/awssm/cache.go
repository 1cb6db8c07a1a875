package awssm

import (
	"container/list"
	"context"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/mumoshu/aws-secret-controller/pkg/apis/mumoshu/v1alpha1"
)

// DefaultCacheBytes bounds the cache when CacheOptions.MaxBytes is zero. Secrets Manager versions
// are at most 64 KiB and usually far smaller: 32 MiB holds tens of thousands of typical ones.
const DefaultCacheBytes = 32 << 20

// entryOverhead approximates what an entry costs besides its key and content.
const entryOverhead = 128

// CacheOptions tune a Cache.
type CacheOptions struct {
	// MaxBytes bounds the content held; least recently used versions go first. Zero means
	// DefaultCacheBytes; negative disables caching (in-flight calls are still shared).
	MaxBytes int64
	// Timeout bounds one call to Secrets Manager, SDK retries included. Zero means 30s.
	Timeout time.Duration
	// OnCall, if set, is told of every call made to Secrets Manager: the operation and the
	// result, "success" or the error's reason.
	OnCall func(operation, result string)
	// Roles, if set, gives the clients that read as role identities (normally *Roles.For). Nil
	// means reads as a role fail.
	Roles func(Identity) (API, error)
}

// Cache serves versions of secrets. A version never changes in Secrets Manager, so an entry never
// goes stale and is kept until space runs out. Entries are keyed by the identity that read them,
// so that a version one identity may read is never served to another. Concurrent requests for
// the same version as the same identity share one call. Errors are not cached. It is safe for
// concurrent use.
type Cache struct {
	api     API
	opts    CacheOptions
	flights singleflight.Group

	mu    sync.Mutex
	lru   *list.List // of *entry, most recently used first
	index map[versionKey]*list.Element
	bytes int64

	// hits and calls are counted where they happen, never derived from each other, so that a
	// read of both during a burst of misses can never show more hits than reads.
	hits  atomic.Uint64
	calls atomic.Uint64

	// joined, if set, is called when a Get has started or joined its flight: tests wait for
	// every caller to be in flight before they let the call return.
	joined func()
}

type versionKey struct {
	identity            Identity
	secretID, versionID string
}

type entry struct {
	key     versionKey
	version Version
	cost    int64
}

// NewCache returns a cache in front of api, the client that reads as the controller's own
// identity.
func NewCache(api API, opts CacheOptions) *Cache {
	if opts.MaxBytes == 0 {
		opts.MaxBytes = DefaultCacheBytes
	}
	if opts.Timeout == 0 {
		opts.Timeout = 30 * time.Second
	}
	return &Cache{api: api, opts: opts, lru: list.New(), index: map[versionKey]*list.Element{}}
}

// CacheStats are the cache's counters since it was made.
type CacheStats struct {
	// Hits are Gets answered without a call of their own: from the cache, or by sharing another
	// Get's call in flight.
	Hits uint64
	// Misses are calls made to Secrets Manager.
	Misses uint64
	// Entries and Bytes are what the cache holds now.
	Entries int
	Bytes   int64
}

// Stats returns the cache's counters.
func (c *Cache) Stats() CacheStats {
	c.mu.Lock()
	entries, bytes := c.lru.Len(), c.bytes
	c.mu.Unlock()
	return CacheStats{Hits: c.hits.Load(), Misses: c.calls.Load(), Entries: entries, Bytes: bytes}
}

// Get returns one version of a secret, from the cache when it is there. The returned Version
// shares memory with the cache: do not modify it.
func (c *Cache) Get(ctx context.Context, id Identity, secretID, versionID string) (Version, error) {
	key := versionKey{id, secretID, versionID}
	if v, ok := c.lookup(key); ok {
		c.hits.Add(1)
		return v, nil
	}
	// called is set by the one caller whose function the flight runs, and only if that
	// function asked AWS; every other caller shared a call or found the entry.
	var called bool
	flight := c.flights.DoChan(id.RoleARN+"\x00"+id.Namespace+"\x00"+secretID+"\x00"+versionID, func() (any, error) {
		// Another flight may have filled the entry between lookup and DoChan.
		if v, ok := c.lookup(key); ok {
			return v, nil
		}
		api, err := c.apiFor(id)
		if err != nil {
			return nil, err
		}
		called = true
		// The call is shared by every waiter: one waiter giving up must not cancel it.
		callCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.opts.Timeout)
		defer cancel()
		c.calls.Add(1)
		v, err := get(callCtx, api, secretID, versionID)
		if c.opts.OnCall != nil {
			result := "success"
			if e, ok := err.(*Error); ok {
				result = e.Reason
			}
			c.opts.OnCall("GetSecretValue", result)
		}
		if err != nil {
			return nil, err
		}
		c.add(key, v)
		return v, nil
	})
	if c.joined != nil {
		c.joined()
	}
	select {
	case res := <-flight:
		// The flight's function happened before its result was sent: reading called is safe.
		if !called {
			c.hits.Add(1)
		}
		if res.Err != nil {
			return Version{}, res.Err
		}
		return res.Val.(Version), nil
	case <-ctx.Done():
		return Version{}, Classify(ctx.Err(), secretID, versionID)
	}
}

func (c *Cache) apiFor(id Identity) (API, error) {
	if id.RoleARN == "" {
		return c.api, nil
	}
	if c.opts.Roles == nil {
		return nil, &Error{Reason: v1alpha1.ReasonAWSError, msg: "reading as " + id.String() + ": the controller has no way to assume roles"}
	}
	return c.opts.Roles(id)
}

func (c *Cache) lookup(key versionKey) (Version, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.index[key]
	if !ok {
		return Version{}, false
	}
	c.lru.MoveToFront(el)
	return el.Value.(*entry).version, true
}

func (c *Cache) add(key versionKey, v Version) {
	cost := int64(len(key.identity.RoleARN) + len(key.identity.Namespace) + len(key.secretID) + len(key.versionID) + v.size() + entryOverhead)
	if cost > c.opts.MaxBytes {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.index[key]; ok {
		return
	}
	c.index[key] = c.lru.PushFront(&entry{key: key, version: v, cost: cost})
	c.bytes += cost
	for c.bytes > c.opts.MaxBytes {
		oldest := c.lru.Back()
		e := oldest.Value.(*entry)
		c.lru.Remove(oldest)
		delete(c.index, e.key)
		c.bytes -= e.cost
	}
}
