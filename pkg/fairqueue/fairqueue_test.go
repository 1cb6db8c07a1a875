package fairqueue

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/client-go/util/workqueue"
	clocktesting "k8s.io/utils/clock/testing"
)

// Items in these tests are "tenant/name" strings; the controller uses cache.ObjectName and the
// namespace, which behaves the same.
func tenantOf(item string) string {
	tenant, _, _ := strings.Cut(item, "/")
	return tenant
}

func item(tenant string, i int) string { return fmt.Sprintf("%s/%d", tenant, i) }

// popAll pops until Len is zero, failing if that takes more pops than items pushed.
func popAll(t *testing.T, q *Queue[string]) []string {
	t.Helper()
	var got []string
	for n := q.Len(); q.Len() > 0; {
		got = append(got, q.Pop())
		if len(got) > n {
			t.Fatalf("popped %d items but only %d were queued: %v", len(got), n, got)
		}
	}
	return got
}

// storedEntries counts every entry the queue holds, live or stale, and the tenants it tracks:
// what memory is proportional to.
func storedEntries(q *Queue[string]) (entries, tenants int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for i := range q.classes {
		c := &q.classes[i]
		tenants += len(c.tenants)
		for _, tf := range c.tenants {
			entries += tf.entries.len()
		}
	}
	return entries, tenants
}

// TestOrdering covers the ordering rules on the raw Queue with short, readable scenarios.
func TestOrdering(t *testing.T) {
	type op struct {
		touch  bool // Touch instead of Push
		item   string
		prio   Priority
		noHint bool // add without calling Hint first
	}
	push := func(it string, p Priority) op { return op{item: it, prio: p} }
	touch := func(it string, p Priority) op { return op{touch: true, item: it, prio: p} }
	touchNoHint := func(it string) op { return op{touch: true, item: it, noHint: true} }
	pushNoHint := func(it string) op { return op{item: it, noHint: true} }

	for _, tc := range []struct {
		name     string
		lowEvery int
		ops      []op
		want     []string
	}{{
		name:     "High before Low",
		lowEvery: 100,
		ops:      []op{push("a/l1", Low), push("a/h1", High), push("b/l2", Low), push("b/h2", High)},
		want:     []string{"a/h1", "b/h2", "a/l1", "b/l2"},
	}, {
		name: "no hint means High",
		ops:  []op{push("a/l", Low), pushNoHint("a/h")},
		want: []string{"a/h", "a/l"},
	}, {
		name: "round robin across tenants, FIFO within a tenant",
		ops: []op{
			push("a/1", High), push("a/2", High), push("a/3", High),
			push("b/1", High), push("c/1", High), push("b/2", High),
		},
		want: []string{"a/1", "b/1", "c/1", "a/2", "b/2", "a/3"},
	}, {
		name:     "round robin within Low too",
		lowEvery: 100,
		ops:      []op{push("a/1", Low), push("a/2", Low), push("b/1", Low)},
		want:     []string{"a/1", "b/1", "a/2"},
	}, {
		name:     "Touch with High promotes a Low item",
		lowEvery: 100,
		ops:      []op{push("b/h", High), push("a/1", Low), push("a/2", Low), touch("a/2", High)},
		want:     []string{"b/h", "a/2", "a/1"},
	}, {
		name:     "Touch without hint promotes",
		lowEvery: 100,
		ops:      []op{push("a/1", Low), push("a/2", Low), touchNoHint("a/2")},
		want:     []string{"a/2", "a/1"},
	}, {
		name:     "promoted item joins the back of its tenant's High FIFO",
		lowEvery: 100,
		ops:      []op{push("a/h1", High), push("a/l", Low), push("a/h2", High), touch("a/l", High)},
		want:     []string{"a/h1", "a/h2", "a/l"},
	}, {
		name:     "no demotion: Low Touch leaves a High item High",
		lowEvery: 100,
		ops:      []op{push("a/h", High), push("a/l", Low), touch("a/h", Low)},
		want:     []string{"a/h", "a/l"},
	}, {
		name: "Touch within the class keeps the FIFO place",
		ops:  []op{push("a/1", High), push("a/2", High), touch("a/1", High)},
		want: []string{"a/1", "a/2"},
	}, {
		name: "Push of a queued item acts as Touch: no duplicate, promoted",
		ops:  []op{push("a/1", Low), push("a/2", Low), push("a/2", High)},
		want: []string{"a/2", "a/1"},
	}, {
		name: "Touch of an unknown item acts as Push",
		ops:  []op{push("a/1", High), touch("a/2", Low), push("b/1", Low)},
		want: []string{"a/1", "a/2", "b/1"},
	}, {
		name:     "LowEvery interleave",
		lowEvery: 3,
		ops: []op{
			push("a/h1", High), push("a/h2", High), push("a/h3", High), push("a/h4", High), push("a/h5", High),
			push("b/l1", Low), push("b/l2", Low),
		},
		want: []string{"a/h1", "a/h2", "b/l1", "a/h3", "a/h4", "b/l2", "a/h5"},
	}, {
		name:     "LowEvery 1 serves Low first",
		lowEvery: 1,
		ops:      []op{push("a/h", High), push("b/l", Low)},
		want:     []string{"b/l", "a/h"},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			q := New(tenantOf, Options{LowEvery: tc.lowEvery})
			for _, o := range tc.ops {
				if !o.noHint {
					q.Hint(o.item, o.prio)
				}
				if o.touch {
					q.Touch(o.item)
				} else {
					q.Push(o.item)
				}
			}
			if got := q.Len(); got != len(tc.want) {
				t.Errorf("Len() = %d, want %d", got, len(tc.want))
			}
			if got := popAll(t, q); strings.Join(got, " ") != strings.Join(tc.want, " ") {
				t.Errorf("pop order = %v, want %v", got, tc.want)
			}
			if got := q.Pop(); got != "" {
				t.Errorf("Pop() on empty queue = %q, want zero value", got)
			}
			if n := len(q.hints); n != 0 {
				t.Errorf("%d hints left after every hinted item was pushed", n)
			}
		})
	}
}

// TestRoundRobinBacklog: a tenant with one item does not wait behind another tenant's backlog,
// in either class.
func TestRoundRobinBacklog(t *testing.T) {
	for _, p := range []Priority{High, Low} {
		t.Run(p.String(), func(t *testing.T) {
			q := New(tenantOf, Options{})
			for i := range 1000 {
				q.Hint(item("a", i), p)
				q.Push(item("a", i))
			}
			q.Hint("b/0", p)
			q.Push("b/0")
			if first, second := q.Pop(), q.Pop(); first != "b/0" && second != "b/0" {
				t.Errorf("first two pops = %q, %q; want b/0 among them", first, second)
			}
		})
	}
}

// TestLowNotStarved: with High refilled after every pop, every Low item still completes, the
// k-th Low item is popped by pop k*LowEvery (the guarantee), and not before (High keeps its
// precedence).
func TestLowNotStarved(t *testing.T) {
	const lowItems, pops = 1000, 10000
	for _, lowEvery := range []int{2, 4, 10} {
		t.Run(fmt.Sprintf("LowEvery=%d", lowEvery), func(t *testing.T) {
			q := New(tenantOf, Options{LowEvery: lowEvery})
			for i := range lowItems {
				it := item(fmt.Sprintf("bulk%d", i%10), i)
				q.Hint(it, Low)
				q.Push(it)
			}
			q.Push("edits/0")
			lowSeen := 0
			for n := 1; n <= pops; n++ {
				got := q.Pop()
				q.Push(item("edits", n)) // High is never empty
				if strings.HasPrefix(got, "edits/") {
					continue
				}
				lowSeen++
				if bound := lowSeen * lowEvery; n > bound {
					t.Fatalf("Low item #%d (%s) popped at pop %d, after the bound %d", lowSeen, got, n, bound)
				} else if n < bound {
					t.Fatalf("Low item #%d (%s) popped at pop %d, before High's share ran out at %d", lowSeen, got, n, bound)
				}
			}
			if lowSeen != lowItems {
				t.Errorf("%d of %d Low items popped in %d pops", lowSeen, lowItems, pops)
			}
			if _, low := q.Pending(); low != 0 {
				t.Errorf("%d Low items still pending", low)
			}
		})
	}
}

// TestLowLateArrivalBound: High pops made while no Low item waited do not count for a Low item
// that arrives later: it neither overtakes High early nor waits more than LowEvery pops. Low
// can run empty by pops or by promotion.
func TestLowLateArrivalBound(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(q *Queue[string])
	}{{
		name: "Low never queued before",
		setup: func(q *Queue[string]) {
			for range 5 {
				q.Pop()
			}
		},
	}, {
		name: "Low emptied by promotion, then a High pop",
		setup: func(q *Queue[string]) {
			q.Hint("bulk/old", Low)
			q.Push("bulk/old")
			q.Pop()
			q.Pop()             // two High pops while Low waited
			q.Touch("bulk/old") // promoted: Low is empty, nothing Low was popped
			q.Pop()             // a High pop while no Low waits
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			q := New(tenantOf, Options{LowEvery: 4})
			for i := range 10 {
				q.Push(item("edits", i))
			}
			tc.setup(q)
			q.Hint("bulk/0", Low)
			q.Push("bulk/0")
			var got []string
			for range 4 {
				got = append(got, q.Pop())
			}
			if got[3] != "bulk/0" {
				t.Errorf("pops after Low arrived = %v; want bulk/0 exactly 4th", got)
			}
		})
	}
}

// TestStaleEntriesBounded: promotion leaves stale entries behind; they must not count in Len
// and must not accumulate.
func TestStaleEntriesBounded(t *testing.T) {
	t.Run("promote then pop, forever", func(t *testing.T) {
		q := New(tenantOf, Options{})
		for i := range 10000 {
			it := item(fmt.Sprintf("t%d", i%7), i)
			q.Hint(it, Low)
			q.Push(it)
			q.Touch(it) // promoted: the Low entry is now stale
			if q.Len() != 1 {
				t.Fatalf("Len() = %d after promoting one item, want 1", q.Len())
			}
			if got := q.Pop(); got != it {
				t.Fatalf("Pop() = %q, want %q", got, it)
			}
			if entries, _ := storedEntries(q); entries > 2*compactMin {
				t.Fatalf("after %d promote+pop rounds the queue stores %d entries for 0 items", i+1, entries)
			}
		}
	})
	t.Run("promote most of a large Low backlog", func(t *testing.T) {
		q := New(tenantOf, Options{LowEvery: 2})
		const n = 5000
		for i := range n {
			it := item(fmt.Sprintf("t%d", i%50), i)
			q.Hint(it, Low)
			q.Push(it)
		}
		for i := range n {
			if i%10 != 0 {
				q.Touch(item(fmt.Sprintf("t%d", i%50), i))
			}
			if entries, _ := storedEntries(q); entries > 2*q.Len()+2*compactMin {
				t.Fatalf("%d entries stored for %d items", entries, q.Len())
			}
		}
		if high, low := q.Pending(); high != n-n/10 || low != n/10 || q.Len() != n {
			t.Fatalf("Pending() = %d, %d, Len() = %d; want %d, %d, %d", high, low, q.Len(), n-n/10, n/10, n)
		}
		seen := map[string]bool{}
		for _, it := range popAll(t, q) {
			if seen[it] {
				t.Fatalf("%s popped twice", it)
			}
			seen[it] = true
		}
		if len(seen) != n {
			t.Fatalf("popped %d distinct items, want %d", len(seen), n)
		}
		if entries, tenants := storedEntries(q); entries != 0 || tenants != 0 {
			t.Errorf("empty queue still stores %d entries and %d tenants", entries, tenants)
		}
	})
}

// TestDequeShrinks: a tenant FIFO gives memory back after a burst.
func TestDequeShrinks(t *testing.T) {
	var d deque[int]
	for i := range 10000 {
		d.pushBack(i)
	}
	for i := range 9990 {
		if got := d.popFront(); got != i {
			t.Fatalf("popFront() = %d, want %d", got, i)
		}
	}
	if d.len() != 10 || cap(d.buf) > 4*dequeShrinkMin {
		t.Errorf("len %d, cap %d after draining a burst of 10000 to 10", d.len(), cap(d.buf))
	}
	for i := 9990; i < 10000; i++ {
		if got := d.popFront(); got != i {
			t.Fatalf("popFront() = %d, want %d", got, i)
		}
	}
}

func TestHints(t *testing.T) {
	t.Run("consumed by the Push that uses it", func(t *testing.T) {
		q := New(tenantOf, Options{})
		q.Hint("a/1", Low)
		q.Push("a/1")
		if high, low := q.Pending(); high != 0 || low != 1 {
			t.Fatalf("Pending() = %d, %d; want 0, 1", high, low)
		}
		q.Pop()
		q.Push("a/1") // no new hint: High
		if high, low := q.Pending(); high != 1 || low != 0 {
			t.Errorf("second Push without hint: Pending() = %d, %d; want 1, 0", high, low)
		}
	})
	t.Run("a pending High hint is not lowered", func(t *testing.T) {
		q := New(tenantOf, Options{})
		q.Hint("a/1", High)
		q.Hint("a/1", Low)
		q.Push("a/1")
		if high, low := q.Pending(); high != 1 || low != 0 {
			t.Errorf("Pending() = %d, %d; want 1, 0", high, low)
		}
	})
	t.Run("replaced, not accumulated", func(t *testing.T) {
		q := New(tenantOf, Options{})
		for i := range 1000 {
			q.Hint("a/1", Priority(i%2))
		}
		if n := len(q.hints); n != 1 {
			t.Errorf("%d hints stored for one item", n)
		}
	})
	t.Run("concurrent with Push and Pop", func(t *testing.T) {
		q := New(tenantOf, Options{})
		var wg sync.WaitGroup
		for g := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range 2000 {
					it := item(fmt.Sprintf("t%d", g), i%50)
					q.Hint(it, Priority(i%2))
					q.Pending()
				}
			}()
		}
		var popped int
		for i := range 2000 {
			q.Push(item("t0", i%50))
			q.Touch(item("t0", i%50))
			if q.Len() > 40 {
				q.Pop()
				popped++
			}
		}
		wg.Wait()
		if popped == 0 || q.Len() > 50 {
			t.Errorf("popped %d, Len() = %d", popped, q.Len())
		}
	})
}

// --- Through client-go's workqueue, built by NewRateLimitingQueueWithConfig. ---

// eventually polls cond until it holds or a generous deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Microsecond)
	}
}

func newWorkqueue(t *testing.T, opts Options) (workqueue.TypedRateLimitingInterface[string], *Queue[string], *clocktesting.FakeClock) {
	t.Helper()
	fc := clocktesting.NewFakeClock(time.Unix(1700000000, 0))
	fq := New(tenantOf, opts)
	limiter := workqueue.NewTypedItemExponentialFailureRateLimiter[string](time.Second, time.Minute)
	// No Name: no metrics, so the only clock waiter at start is the delaying queue's
	// heartbeat, which the delay tests count on.
	wq := NewRateLimitingQueueWithConfig(fq, limiter, Config{Clock: fc})
	t.Cleanup(wq.ShutDown)
	return wq, fq, fc
}

func get(t *testing.T, wq workqueue.TypedInterface[string]) string {
	t.Helper()
	it, shutdown := wq.Get()
	if shutdown {
		t.Fatalf("Get() reported shutdown")
	}
	return it
}

func TestWorkqueueSemantics(t *testing.T) {
	t.Run("duplicates collapse", func(t *testing.T) {
		wq, _, _ := newWorkqueue(t, Options{})
		wq.Add("a/1")
		wq.Add("a/1")
		wq.Add("a/2")
		wq.Add("a/1")
		if wq.Len() != 2 {
			t.Fatalf("Len() = %d, want 2", wq.Len())
		}
		if got := []string{get(t, wq), get(t, wq)}; got[0] != "a/1" || got[1] != "a/2" {
			t.Errorf("Get order = %v", got)
		}
	})
	t.Run("added while processing comes back once after Done", func(t *testing.T) {
		wq, fq, _ := newWorkqueue(t, Options{})
		wq.Add("a/1")
		it := get(t, wq)
		wq.Add("a/1")
		fq.Hint("a/1", Low)
		wq.Add("a/1")
		if wq.Len() != 0 {
			t.Fatalf("Len() = %d while the only item is processing, want 0", wq.Len())
		}
		wq.Done(it)
		if wq.Len() != 1 {
			t.Fatalf("Len() = %d after Done, want 1", wq.Len())
		}
		if high, low := fq.Pending(); high != 0 || low != 1 {
			t.Errorf("re-queued at Done with Pending() = %d, %d; want the Low hint to apply", high, low)
		}
		wq.Done(get(t, wq))
		if wq.Len() != 0 {
			t.Errorf("Len() = %d, want 0: the item must come back exactly once", wq.Len())
		}
	})
	t.Run("edit then resync while processing stays High", func(t *testing.T) {
		wq, fq, _ := newWorkqueue(t, Options{})
		wq.Add("a/1")
		it := get(t, wq)
		fq.Hint("a/1", High) // the edit
		wq.Add("a/1")
		fq.Hint("a/1", Low) // a resync before Done
		wq.Add("a/1")
		wq.Done(it)
		if high, low := fq.Pending(); high != 1 || low != 0 {
			t.Errorf("Pending() = %d, %d; want the edit's High to survive the resync", high, low)
		}
	})
	t.Run("ShutDownWithDrain drains", func(t *testing.T) {
		wq, _, _ := newWorkqueue(t, Options{})
		for i := range 20 {
			wq.Add(item(fmt.Sprintf("t%d", i%3), i))
		}
		held := get(t, wq) // in processing until we say so
		var processed atomic.Int32
		var wg sync.WaitGroup
		for range 3 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					it, shutdown := wq.Get()
					if shutdown {
						return
					}
					processed.Add(1)
					wq.Done(it)
				}
			}()
		}
		var heldDone atomic.Bool
		drained := make(chan bool)
		go func() {
			wq.ShutDownWithDrain()
			drained <- heldDone.Load()
		}()
		eventually(t, "shutdown to start", wq.ShuttingDown)
		heldDone.Store(true)
		wq.Done(held)
		if !<-drained {
			t.Errorf("ShutDownWithDrain returned while an item was still processing")
		}
		wg.Wait()
		if n := processed.Load(); n != 19 {
			t.Errorf("workers processed %d of the 19 other items", n)
		}
		wq.Add("late/1")
		if wq.Len() != 0 {
			t.Errorf("Add after shutdown queued an item")
		}
		if _, shutdown := wq.Get(); !shutdown {
			t.Errorf("Get after drain did not report shutdown")
		}
	})
	t.Run("AddAfter and AddRateLimited wait for the clock", func(t *testing.T) {
		wq, fq, fc := newWorkqueue(t, Options{})
		base := fc.Waiters() // the delaying queue's heartbeat
		fq.Hint("a/later", Low)
		wq.AddAfter("a/later", 10*time.Second)
		eventually(t, "the AddAfter timer", func() bool { return fc.Waiters() > base })
		fc.Step(9 * time.Second)
		if wq.Len() != 0 {
			t.Fatalf("AddAfter item queued after 9s of 10s")
		}
		fc.Step(time.Second)
		eventually(t, "the AddAfter item", func() bool { return wq.Len() == 1 })
		if high, low := fq.Pending(); high != 0 || low != 1 {
			t.Errorf("delayed item Pending() = %d, %d; want its Low hint to apply when it lands", high, low)
		}
		if got := get(t, wq); got != "a/later" {
			t.Fatalf("Get() = %q", got)
		}
		wq.Done("a/later")

		base = fc.Waiters()
		wq.AddRateLimited("a/retry") // first failure: 1s
		if wq.NumRequeues("a/retry") != 1 {
			t.Errorf("NumRequeues = %d, want 1", wq.NumRequeues("a/retry"))
		}
		eventually(t, "the rate-limit timer", func() bool { return fc.Waiters() > base })
		if wq.Len() != 0 {
			t.Fatalf("rate-limited item queued before the clock moved")
		}
		fc.Step(time.Second)
		eventually(t, "the rate-limited item", func() bool { return wq.Len() == 1 })
		if got := get(t, wq); got != "a/retry" {
			t.Fatalf("Get() = %q", got)
		}
		wq.Forget("a/retry")
		wq.Done("a/retry")
	})
}

func TestWorkqueueFairness(t *testing.T) {
	t.Run("quiet tenant behind 10000 items of another", func(t *testing.T) {
		wq, _, _ := newWorkqueue(t, Options{})
		for i := range 10000 {
			wq.Add(item("a", i))
		}
		wq.Add("b/0")
		if first, second := get(t, wq), get(t, wq); first != "b/0" && second != "b/0" {
			t.Errorf("first two Gets = %q, %q; want b/0 among them", first, second)
		}
	})
	t.Run("edit overtakes the initial list", func(t *testing.T) {
		wq, fq, _ := newWorkqueue(t, Options{})
		for i := range 1000 {
			fq.Hint(item("a", i), Low)
			wq.Add(item("a", i))
		}
		fq.Hint("a/500", High) // an edit to an item still queued from the initial list
		wq.Add("a/500")
		wq.Add("b/new") // a new object, no hint
		if got := []string{get(t, wq), get(t, wq)}; got[0] != "a/500" || got[1] != "b/new" {
			t.Errorf("first Gets = %v, want the promoted edit, then the new object", got)
		}
		if wq.Len() != 999 {
			t.Errorf("Len() = %d, want 999: promotion must not duplicate", wq.Len())
		}
	})
}

// countingProvider counts metric constructions per kind and queue name.
type countingProvider struct {
	mu      sync.Mutex
	created map[string]int
	depth   atomic.Int64
	retries atomic.Int64
}

type nopMetric struct{}

func (nopMetric) Inc()            {}
func (nopMetric) Dec()            {}
func (nopMetric) Set(float64)     {}
func (nopMetric) Observe(float64) {}

type depthMetric struct{ n *atomic.Int64 }

func (d depthMetric) Inc() { d.n.Add(1) }
func (d depthMetric) Dec() { d.n.Add(-1) }

type retryMetric struct{ n *atomic.Int64 }

func (r retryMetric) Inc() { r.n.Add(1) }

func (p *countingProvider) count(kind, name string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.created[kind+"/"+name]++
}
func (p *countingProvider) NewDepthMetric(name string) workqueue.GaugeMetric {
	p.count("depth", name)
	return depthMetric{&p.depth}
}
func (p *countingProvider) NewAddsMetric(name string) workqueue.CounterMetric {
	p.count("adds", name)
	return nopMetric{}
}
func (p *countingProvider) NewLatencyMetric(name string) workqueue.HistogramMetric {
	p.count("latency", name)
	return nopMetric{}
}
func (p *countingProvider) NewWorkDurationMetric(name string) workqueue.HistogramMetric {
	p.count("workDuration", name)
	return nopMetric{}
}
func (p *countingProvider) NewUnfinishedWorkSecondsMetric(name string) workqueue.SettableGaugeMetric {
	p.count("unfinished", name)
	return nopMetric{}
}
func (p *countingProvider) NewLongestRunningProcessorSecondsMetric(name string) workqueue.SettableGaugeMetric {
	p.count("longestRunning", name)
	return nopMetric{}
}
func (p *countingProvider) NewRetriesMetric(name string) workqueue.CounterMetric {
	p.count("retries", name)
	return retryMetric{&p.retries}
}

// TestMetricsRegisteredOnce pins the claim in NewRateLimitingQueueWithConfig: passing Name at
// every level registers each metric exactly once, and all of them are registered.
func TestMetricsRegisteredOnce(t *testing.T) {
	p := &countingProvider{created: map[string]int{}}
	fc := clocktesting.NewFakeClock(time.Unix(1700000000, 0))
	wq := NewRateLimitingQueueWithConfig(New(tenantOf, Options{}),
		workqueue.NewTypedItemExponentialFailureRateLimiter[string](time.Second, time.Minute),
		Config{Name: "awssecrets", Clock: fc, MetricsProvider: p})
	defer func() {
		wq.ShutDown()
		fc.Step(time.Second) // lets the unfinished-work loop see the shutdown and exit
	}()

	p.mu.Lock()
	for _, kind := range []string{"depth", "adds", "latency", "workDuration", "unfinished", "longestRunning", "retries"} {
		if n := p.created[kind+"/awssecrets"]; n != 1 {
			t.Errorf("metric %s created %d times, want once", kind, n)
		}
	}
	if len(p.created) != 7 {
		t.Errorf("metrics created: %v, want exactly the 7 named awssecrets", p.created)
	}
	p.mu.Unlock()

	wq.Add("a/1")
	wq.Add("b/1")
	if d := p.depth.Load(); d != 2 {
		t.Errorf("depth = %d after two adds, want 2", d)
	}
	wq.AddRateLimited("c/1")
	if r := p.retries.Load(); r != 1 {
		t.Errorf("retries = %d after AddRateLimited, want 1", r)
	}
}

// --- Simulation: many workers through the real stack. ---

// recorder wraps a Queue to watch the exact pop sequence. client-go calls it under the
// workqueue's lock, so its fields need no lock of their own.
type recorder struct {
	fq *Queue[string]

	pops             int
	lowPops          int
	lastLowPop       int // pop number of the last Low pop
	lowPopsHighEmpty int // Low pops made while no High item waited
	highRun          int // High pops in a row while Low waited
	maxHighRun       int
	quietPops        int
	quietPushedAt    map[string]int // pops so far when the quiet item was pushed
	quietWorst       int            // most pops from a quiet item's push to its pop, inclusive
}

func (r *recorder) Len() int        { return r.fq.Len() }
func (r *recorder) Touch(it string) { r.fq.Touch(it) }

func (r *recorder) Push(it string) {
	r.fq.Push(it)
	if tenantOf(it) == "quiet" {
		r.quietPushedAt[it] = r.pops
	}
}

func (r *recorder) Pop() string {
	highBefore, lowBefore := r.fq.Pending()
	it := r.fq.Pop()
	_, lowAfter := r.fq.Pending()
	r.pops++
	switch {
	case lowAfter < lowBefore:
		r.lowPops++
		r.lastLowPop = r.pops
		if highBefore == 0 {
			r.lowPopsHighEmpty++
		}
		r.highRun = 0
	case lowBefore > 0:
		r.highRun++
		r.maxHighRun = max(r.maxHighRun, r.highRun)
	default:
		r.highRun = 0
	}
	if tenantOf(it) == "quiet" {
		r.quietPops++
		r.quietWorst = max(r.quietWorst, r.pops-r.quietPushedAt[it])
	}
	return it
}

// TestSimulationManyWorkers: 8 workers, a producer streaming High items of one tenant, a user
// making one edit at a time in another tenant, and 3000 Low items waiting (the size at which a
// strict priority queue silently stopped ESO, external-secrets#6053). The busy tenant starts with
// more High items than the Low items can let through (3 per Low item at LowEvery 4) and is
// refilled as they complete, so every Low pop happens under High pressure whatever the
// scheduling; all bounds are in pops, counted under the workqueue's lock.
func TestSimulationManyWorkers(t *testing.T) {
	const (
		lowEvery   = 4
		lowItems   = 3000
		workers    = 8
		busyQueued = 10000 // > (lowEvery-1)*lowItems: High never runs dry while Low waits
		maxBusy    = 60000 // the producer gives up here: Low starved
		// quietBound is the most pops from an edit's Add to its Get: one busy item ahead of
		// it in the High round robin, at most one Low pop from the LowEvery rule, itself.
		quietBound = 3
	)
	fq := New(tenantOf, Options{LowEvery: lowEvery})
	rec := &recorder{fq: fq, quietPushedAt: map[string]int{}}
	wq := compose[string](rec, workqueue.NewTypedItemExponentialFailureRateLimiter[string](time.Millisecond, time.Second), Config{})

	for i := range lowItems {
		it := item(fmt.Sprintf("bulk%02d", i%30), i)
		fq.Hint(it, Low)
		wq.Add(it)
	}
	// slots holds one token per busy item not yet done, so the producer keeps busyQueued
	// of them outstanding: a continuous stream, bounded memory.
	slots := make(chan struct{}, busyQueued)
	busy := 0
	addBusy := func() {
		slots <- struct{}{}
		fq.Hint(item("busy", busy), High)
		wq.Add(item("busy", busy))
		busy++
	}
	for range busyQueued {
		addBusy()
	}

	var lowDone, quietDone atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				it, shutdown := wq.Get()
				if shutdown {
					return
				}
				wq.Done(it)
				switch tenant := tenantOf(it); {
				case tenant == "busy":
					<-slots
				case tenant == "quiet":
					if n := int(quietDone.Add(1)); lowDone.Load() < lowItems && n < maxBusy {
						fq.Hint(item("quiet", n), High)
						wq.Add(item("quiet", n))
					}
				default:
					lowDone.Add(1)
				}
			}
		}()
	}

	// The quiet tenant edits one object at a time, as a user does: it makes its next edit when
	// it sees the previous one done (the worker makes it on the user's behalf, so edits keep
	// coming however the scheduler treats goroutines). Each edit is then first in its tenant's
	// FIFO, and its bound is the constant quietBound.
	fq.Hint(item("quiet", 0), High)
	wq.Add(item("quiet", 0))

	for lowDone.Load() < lowItems && busy < maxBusy {
		addBusy()
	}
	lowDoneWhileStreaming := lowDone.Load()
	wq.ShutDownWithDrain()
	wg.Wait()

	if lowDoneWhileStreaming != lowItems {
		t.Errorf("only %d of %d Low items completed during a stream of %d High items: Low starved", lowDoneWhileStreaming, lowItems, busy)
	}
	if rec.lowPopsHighEmpty != 0 {
		t.Errorf("%d Low pops found High empty; the simulation did not keep High pressure", rec.lowPopsHighEmpty)
	}
	if rec.maxHighRun > lowEvery-1 {
		t.Errorf("%d High pops in a row while Low waited, want at most %d", rec.maxHighRun, lowEvery-1)
	}
	if rec.lowPops != lowItems || lowDone.Load() != lowItems {
		t.Errorf("Low pops %d, completed %d, want %d", rec.lowPops, lowDone.Load(), lowItems)
	}
	if rec.lastLowPop > lowEvery*lowItems {
		t.Errorf("last Low item popped at pop %d, want by %d", rec.lastLowPop, lowEvery*lowItems)
	}
	quiet := int(quietDone.Load())
	if quiet == 0 || quiet != rec.quietPops {
		t.Errorf("%d quiet edits completed, %d popped; want equal and some", quiet, rec.quietPops)
	}
	if rec.quietWorst > quietBound {
		t.Errorf("a quiet edit waited %d pops, want at most %d", rec.quietWorst, quietBound)
	}
	t.Logf("pops %d (busy %d, quiet %d, low %d); last Low at pop %d; worst quiet wait %d pops; longest High run while Low waited %d",
		rec.pops, busy, quiet, rec.lowPops, rec.lastLowPop, rec.quietWorst, rec.maxHighRun)
}

// BenchmarkPushPop pushes 10,000 items over 100 tenants (a quarter Low, a tenth of those then
// promoted) and pops them all; ns/op is per item.
func BenchmarkPushPop(b *testing.B) {
	const n, tenants = 10000, 100
	items := make([]string, n)
	for i := range items {
		items[i] = item(fmt.Sprintf("ns%03d", i%tenants), i)
	}
	q := New(tenantOf, Options{})
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N / n {
		for i, it := range items {
			if i%4 == 0 {
				q.Hint(it, Low)
			}
			q.Push(it)
			if i%40 == 0 {
				q.Touch(it)
			}
		}
		for q.Len() > 0 {
			q.Pop()
		}
	}
	// Count the remainder so ns/op stays per item for any b.N.
	for i := range b.N % n {
		q.Push(items[i])
	}
	for q.Len() > 0 {
		q.Pop()
	}
}
