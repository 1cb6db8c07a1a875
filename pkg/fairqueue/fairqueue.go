// Package fairqueue orders the pending items of a client-go workqueue so that user edits
// overtake bulk work and no tenant (namespace) waits behind another tenant's backlog, without
// starving anything.
//
// A Queue plugs into client-go as the workqueue.Queue[T] of a workqueue.Typed[T] (see
// NewRateLimitingQueue), so de-duplication, the processing set, per-item rate limiting,
// delayed adds, shutdown draining and the queue's Prometheus metrics all stay client-go's;
// this package only decides which pending item Get returns next.
//
// Ordering:
//
//   - Two classes. High is for user edits and retries; Low is for the informer's initial
//     list and periodic resyncs. Pop serves High first, except that while Low items wait at
//     least one pop in every Options.LowEvery pops is Low. Low work therefore always
//     completes under a continuous stream of High work: a Low item that has k-1 Low items
//     served before it is popped within k*LowEvery pops.
//   - Within a class every tenant has a FIFO and tenants are served round robin, so a tenant
//     with one pending item waits for at most one item of each other tenant with pending
//     items in that class (plus the LowEvery interleave), however long their backlogs are.
//   - An item gets its class from the last Hint before the Push or Touch that queues it;
//     without a hint it is High. A High Touch of an item queued Low promotes it to the back
//     of its tenant's High FIFO; nothing ever demotes a queued item.
//
// Why this exists rather than controller-runtime's priority queue: that queue served strictly
// by priority, and under a steady stream of high-priority adds low-priority items were never
// popped; External Secrets Operator silently stopped reconciling at ~3,000 objects
// (external-secrets#6053). Here the Low share of pops is guaranteed.
package fairqueue

import (
	"sync"
)

// Priority is the class an item is queued in.
type Priority int

const (
	// Low is for bulk work nobody is waiting for: the informer's initial list and periodic
	// resyncs.
	Low Priority = iota
	// High is for work somebody is waiting for: user edits and retries. It is the default for
	// items without a Hint, so that forgetting a hint never delays a user.
	High
)

// String names the priority, for logs and test failures.
func (p Priority) String() string {
	switch p {
	case Low:
		return "Low"
	case High:
		return "High"
	default:
		return "Priority(?)"
	}
}

// DefaultLowEvery is the Options.LowEvery used when it is left zero: one pop in four goes to
// Low work while it waits, so bulk work still progresses at a quarter of the throughput under
// a storm of edits, and an edit waits for at most one resync per three edits ahead of it.
const DefaultLowEvery = 4

// compactMin is the number of stale entries a class tolerates before compacting even when
// they dominate, so tiny queues do not rebuild on every promotion.
const compactMin = 64

// Options tunes a Queue.
type Options struct {
	// LowEvery guarantees at least one Low pop in every LowEvery consecutive pops while Low
	// items wait. Zero or negative means DefaultLowEvery. One means Low is always served
	// first, i.e. High has no precedence.
	LowEvery int
}

// Queue is a two-class, per-tenant round-robin queue implementing client-go's
// workqueue.Queue[T]. Create it with New. All methods are safe for concurrent use: client-go
// calls Push, Touch, Pop and Len under its own lock, but Hint and Pending are called from other
// goroutines (informer handlers, metrics scrapes), so the Queue has its own mutex.
type Queue[T comparable] struct {
	mu       sync.Mutex
	tenantOf func(T) string
	lowEvery int

	// items holds every live (queued) item; len(items) is Len.
	items map[T]itemState
	// hints are the priorities for items' next Push or Touch. One entry per item, removed when
	// used, so it is bounded by the items hinted and not yet added.
	hints map[T]Priority
	// classes is indexed by Priority.
	classes [2]class[T]
	// highStreak counts High pops in a row while Low items waited, for the LowEvery rule.
	highStreak int
	// gen stamps entries; an entry is live only while its item's state carries the same
	// stamp, which is what makes promotion O(1) (the old entry is left behind, stale).
	gen uint64
}

// itemState is what the queue knows about a live item.
type itemState struct {
	tenant string // cached so tenantOf runs once per Push
	prio   Priority
	gen    uint64 // the stamp of the item's one live entry
}

// entry is a slot in a tenant FIFO. It is stale when its item is no longer queued or was
// re-queued (promoted) under a newer stamp.
type entry[T comparable] struct {
	item T
	gen  uint64
}

// tenantFIFO is one tenant's FIFO within a class.
type tenantFIFO[T comparable] struct {
	name    string
	entries deque[entry[T]]
}

// class is one priority class: tenant FIFOs plus the round-robin ring of tenants that have
// entries. A tenant is in the ring exactly when it is in tenants.
type class[T comparable] struct {
	tenants map[string]*tenantFIFO[T]
	ring    deque[*tenantFIFO[T]]
	live    int // live items in this class
	stale   int // stale entries still stored in this class's FIFOs
}

// New returns an empty queue. tenantOf names an item's tenant; the controller passes the
// item's namespace. It is called once per Push of a new item, under the queue's lock, so it
// must be cheap and must not call back into the queue.
func New[T comparable](tenantOf func(T) string, opts Options) *Queue[T] {
	if opts.LowEvery <= 0 {
		opts.LowEvery = DefaultLowEvery
	}
	q := &Queue[T]{
		tenantOf: tenantOf,
		lowEvery: opts.LowEvery,
		items:    map[T]itemState{},
		hints:    map[T]Priority{},
	}
	for i := range q.classes {
		q.classes[i].tenants = map[string]*tenantFIFO[T]{}
	}
	return q
}

// Hint records the priority the item's next Push or Touch gets; without a hint an item is
// High, and any p other than Low counts as High. Call it right before adding the item to the
// workqueue, for every add: Low for the informer's initial list and resyncs, High otherwise. The hint is used up by that
// Push or Touch. If the add is collapsed because the item is being processed, client-go pushes
// the item at Done, and that Push uses the hint.
//
// A pending High hint is not lowered by a later Low hint: if a user edit and then a resync
// arrive while the item is being processed, the re-queue at Done must still be High. For that
// the edit must call Hint(item, High) too: an add collapsed while processing never reaches the
// Queue, so an unhinted edit leaves nothing for the later Low hint to lose against. Hints
// are stored one per item (replaced, never accumulated), so a hint whose add never reaches
// the queue (for example after shutdown) costs one map entry until that item's next add.
func (q *Queue[T]) Hint(item T, p Priority) {
	if p != Low {
		p = High
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if old, ok := q.hints[item]; ok && old > p {
		return
	}
	q.hints[item] = p
}

// takeHint returns and forgets the item's hint; High without one. Callers hold q.mu.
func (q *Queue[T]) takeHint(item T) Priority {
	p, ok := q.hints[item]
	if !ok {
		return High
	}
	delete(q.hints, item)
	return p
}

// Push queues a new item at the back of its tenant's FIFO in the class its hint names.
// client-go calls it for an item that is not queued; for an item that already is, Push acts
// as Touch so that the item is never queued twice.
func (q *Queue[T]) Push(item T) {
	q.mu.Lock()
	defer q.mu.Unlock()
	p := q.takeHint(item)
	if st, ok := q.items[item]; ok {
		q.touchLocked(item, st, p)
		return
	}
	q.pushLocked(item, p)
}

// pushLocked queues an item that is not queued. Callers hold q.mu.
func (q *Queue[T]) pushLocked(item T, p Priority) {
	q.gen++
	st := itemState{tenant: q.tenantOf(item), prio: p, gen: q.gen}
	q.items[item] = st
	q.classes[p].push(st.tenant, entry[T]{item: item, gen: st.gen})
}

// Touch is called by client-go when an item that is already queued is added again. A High
// hint (or no hint) promotes a Low item to the back of its tenant's High FIFO; otherwise the
// item keeps its place. Touch never demotes. For an item that is not queued, Touch acts as
// Push, which client-go never relies on but keeps Len honest if a caller does.
func (q *Queue[T]) Touch(item T) { q.Push(item) }

// touchLocked applies priority p to the queued item. Callers hold q.mu.
func (q *Queue[T]) touchLocked(item T, st itemState, p Priority) {
	if p != High || st.prio != Low {
		return // same class keeps its FIFO place; never demote
	}
	// Promote lazily: leave the Low entry behind as stale and queue a fresh High entry.
	low := &q.classes[Low]
	low.live--
	low.stale++
	q.gen++
	st.prio, st.gen = High, q.gen
	q.items[item] = st
	q.classes[High].push(st.tenant, entry[T]{item: item, gen: st.gen})
	q.maybeCompact(low)
}

// Len is the number of queued (live) items; stale entries left by promotion do not count.
func (q *Queue[T]) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items)
}

// Pending returns the number of queued items per class, e.g. for a gauge.
func (q *Queue[T]) Pending() (high, low int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.classes[High].live, q.classes[Low].live
}

// Pop removes and returns the next item: High first, but Low when LowEvery-1 High pops in a
// row have passed while Low items waited; within the class, the next tenant in the round
// robin, its oldest item. client-go never pops an empty queue; if someone does, Pop returns
// the zero value rather than panicking. O(1) amortized: each stale entry is skipped at most
// once and each ring slot was paid for by a push.
func (q *Queue[T]) Pop() (item T) {
	q.mu.Lock()
	defer q.mu.Unlock()
	high, low := &q.classes[High], &q.classes[Low]
	var c *class[T]
	switch {
	case low.live > 0 && (high.live == 0 || q.highStreak >= q.lowEvery-1):
		c = low
		q.highStreak = 0
	case high.live > 0:
		c = high
		if low.live > 0 {
			q.highStreak++
		} else {
			// Only High pops that made Low wait count; a Low item arriving later gets the full
			// bound, not a debt run up while there was nothing to serve.
			q.highStreak = 0
		}
	default:
		return item
	}
	item = c.pop(q.isLive)
	delete(q.items, item)
	c.live--
	q.maybeCompact(c)
	return item
}

// isLive says whether e is its item's current entry. Callers hold q.mu.
func (q *Queue[T]) isLive(e entry[T]) bool {
	st, ok := q.items[e.item]
	return ok && st.gen == e.gen
}

// maybeCompact drops a class's stale entries once they outnumber its live items (and are more
// than a handful), so memory stays O(live items + tenants). The rebuild costs O(entries),
// at most twice the stale entries it removes, so it is O(1) amortized per promotion.
func (q *Queue[T]) maybeCompact(c *class[T]) {
	if c.stale <= c.live || (c.stale < compactMin && c.live > 0) {
		return
	}
	var ring deque[*tenantFIFO[T]]
	for c.ring.len() > 0 {
		t := c.ring.popFront()
		var kept deque[entry[T]]
		for t.entries.len() > 0 {
			if e := t.entries.popFront(); q.isLive(e) {
				kept.pushBack(e)
			}
		}
		if kept.len() == 0 {
			delete(c.tenants, t.name)
			continue
		}
		t.entries = kept
		ring.pushBack(t) // keep the round-robin order
	}
	c.ring = ring
	c.stale = 0
}

// push appends e to its tenant's FIFO, adding the tenant to the back of the ring if it had
// no entries, and counts it live.
func (c *class[T]) push(tenant string, e entry[T]) {
	t, ok := c.tenants[tenant]
	if !ok {
		t = &tenantFIFO[T]{name: tenant}
		c.tenants[tenant] = t
		c.ring.pushBack(t)
	}
	t.entries.pushBack(e)
	c.live++
}

// pop returns the oldest live entry of the tenant at the front of the ring, then moves that
// tenant to the back (or drops it when it has no entries left). Stale entries met on the way
// are discarded. The caller guarantees c.live > 0, so a live entry exists.
func (c *class[T]) pop(isLive func(entry[T]) bool) T {
	for {
		t := c.ring.popFront()
		var (
			e     entry[T]
			found bool
		)
		for t.entries.len() > 0 {
			e = t.entries.popFront()
			if isLive(e) {
				found = true
				break
			}
			c.stale--
		}
		if t.entries.len() == 0 {
			delete(c.tenants, t.name)
		} else {
			c.ring.pushBack(t)
		}
		if found {
			return e.item
		}
	}
}

// deque is a FIFO over a slice with a moving head. Popped slots are zeroed so they do not pin
// items; the dead prefix is reused before the slice grows, and the slice is reallocated
// smaller once it is mostly empty, so memory is O(current elements), not O(peak), and every
// operation is O(1) amortized.
type deque[E any] struct {
	buf  []E
	head int
}

// dequeShrinkMin is the capacity below which a deque never shrinks: small buffers are cheaper
// to keep than to reallocate.
const dequeShrinkMin = 64

func (d *deque[E]) len() int { return len(d.buf) - d.head }

func (d *deque[E]) pushBack(e E) {
	if len(d.buf) == cap(d.buf) && d.head > 0 && d.head >= len(d.buf)/2 {
		// At least half the buffer is dead prefix: shift down instead of growing.
		n := copy(d.buf, d.buf[d.head:])
		clear(d.buf[n:])
		d.buf = d.buf[:n]
		d.head = 0
	}
	d.buf = append(d.buf, e)
}

// popFront removes the front element; the caller checks len() > 0.
func (d *deque[E]) popFront() E {
	var zero E
	e := d.buf[d.head]
	d.buf[d.head] = zero
	d.head++
	switch n := d.len(); {
	case n == 0 && cap(d.buf) > dequeShrinkMin:
		d.buf, d.head = nil, 0
	case n == 0:
		d.buf, d.head = d.buf[:0], 0
	case cap(d.buf) > dequeShrinkMin && n*4 < cap(d.buf):
		// Give memory back after a burst: copying n elements is paid for by the more than
		// cap/4 pops that emptied the buffer this far.
		nb := make([]E, n, 2*n)
		copy(nb, d.buf[d.head:])
		d.buf, d.head = nb, 0
	}
	return e
}
