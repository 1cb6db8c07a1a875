package awssm

import (
	"bytes"
	"container/list"
	"context"
	"errors"
	"math/rand/v2"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	"github.com/mumoshu/aws-secret-controller/pkg/apis/mumoshu/v1alpha1"
)

// DefaultCacheBytes bounds the cache when CacheOptions.MaxBytes is zero. Secrets Manager versions
// are at most 64 KiB and usually far smaller: 32 MiB holds tens of thousands of typical ones.
const DefaultCacheBytes = 32 << 20

// entryOverhead approximates what an entry costs besides its key and content.
const entryOverhead = 128

// Backoff is a hold that grows per failure: Initial after the first, doubling up to Max, each
// shortened by up to a fifth at random so that holds set together do not end together.
type Backoff struct {
	Initial, Max time.Duration
}

// Default holds. A transient failure is held from 500 ms to a minute; a permanent one (NotFound,
// AccessDenied, DecryptionFailure, a bad request) from 30 s to 10 minutes: only a change in AWS
// fixes it, and that change sends no event. Throttling and failures of the endpoint (no answer,
// a 5xx) are not the version's: they are held for the first step only, every time, and the
// pacer and the circuit do the backing off.
var (
	DefaultTransientHold = Backoff{Initial: 500 * time.Millisecond, Max: time.Minute}
	DefaultPermanentHold = Backoff{Initial: 30 * time.Second, Max: 10 * time.Minute}
)

// CircuitOptions tune the circuit that stops reads while Secrets Manager does not answer.
type CircuitOptions struct {
	// Failures is how many calls in a row must fail without an answer from AWS (connection
	// errors, timeouts, 5xx) to open the circuit, with no answer for Silence either. Zero means
	// 5 and 1 s: an endpoint that answers some calls (failing half of them at random, say) is
	// working, and its failures are held per version instead.
	Failures int
	Silence  time.Duration
	// ProbeInitial and ProbeMax bound the interval between probes while it is open: it starts
	// at ProbeInitial and doubles up to ProbeMax. Zero means 1 s and 5 s.
	ProbeInitial, ProbeMax time.Duration
}

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
	// TransientHold and PermanentHold say how long a failed version is held, per failure in a
	// row. Zero values mean DefaultTransientHold and DefaultPermanentHold.
	TransientHold, PermanentHold Backoff
	// Circuit tunes the circuit breaker in front of Secrets Manager.
	Circuit CircuitOptions
	// Clock times holds and probes. Nil means the real clock.
	Clock clock.WithDelayedExecution
	// Logger logs failures, once per hold or probe. The zero Logger means klog's.
	Logger klog.Logger
	// OnMapped, if set, is told of the bytes the cache keeps outside the Go heap each time they
	// grow (on Linux, the cached versions; at most MaxBytes): memory the Go runtime's limit does
	// not count. It is called with the cache's lock held.
	OnMapped func(mapped int64)
}

func (o CacheOptions) withDefaults() CacheOptions {
	if o.MaxBytes == 0 {
		o.MaxBytes = DefaultCacheBytes
	}
	if o.Timeout == 0 {
		o.Timeout = 30 * time.Second
	}
	if o.TransientHold == (Backoff{}) {
		o.TransientHold = DefaultTransientHold
	}
	if o.PermanentHold == (Backoff{}) {
		o.PermanentHold = DefaultPermanentHold
	}
	if o.Circuit.Failures == 0 {
		o.Circuit.Failures = 5
	}
	if o.Circuit.Silence == 0 {
		o.Circuit.Silence = time.Second
	}
	if o.Circuit.ProbeInitial == 0 {
		o.Circuit.ProbeInitial = time.Second
	}
	if o.Circuit.ProbeMax == 0 {
		o.Circuit.ProbeMax = 5 * time.Second
	}
	if o.Clock == nil {
		o.Clock = clock.RealClock{}
	}
	if o.Logger.GetSink() == nil {
		o.Logger = klog.Background()
	}
	return o
}

// FetchOptions are what a caller of Fetch can say besides which version it wants.
type FetchOptions struct {
	// Wake, if set, makes Fetch return at once instead of waiting on a call made for another
	// caller: it returns ErrInFlight, or an *Error with Parked set while the circuit is open, and
	// calls Wake (once, from another goroutine) when asking again can be answered. Wake must
	// not block.
	Wake func()
	// WakeKey, if set, names the caller: a second Wake with the same key, while the first is
	// still waiting, replaces it, so that a caller asking again and again waits once.
	WakeKey any
	// IgnoreHold asks AWS even though the version is held after a failure: the caller's
	// reason to read changed (a new spec, a new namespace policy). A circuit that is open still
	// stops the call.
	IgnoreHold bool
}

// ErrInFlight is Fetch's answer, with FetchOptions.Wake set, when the version is being read for
// another caller: Wake is called when that read is done.
var ErrInFlight = errors.New("the version is being read for another AWSSecret")

// Cache serves versions of secrets. A version never changes in Secrets Manager, so an entry never
// goes stale and is kept until space runs out. Entries are keyed by the identity that read them,
// so that a version one identity may read is never served to another.
//
// Success and failure are shared alike. Concurrent requests for the same version as the same
// identity share one call. A failed read is held for a back-off that grows per failure in a
// row: every request for that version gets the same error without a call until the hold ends.
// When calls stop getting answers (connection errors, timeouts, 5xx), a circuit opens: no call
// is made but one probe at a time, and every request parked on the circuit is woken when a probe
// is answered. It is safe for concurrent use.
type Cache struct {
	api  API
	opts CacheOptions

	mu      sync.Mutex
	lru     *list.List // of *entry, most recently used first
	slabs   *slabs     // the entries' content
	index   map[versionKey]*list.Element
	bytes   int64
	flights map[versionKey]*flight
	holds   map[versionKey]*hold
	sweepAt int
	circuit circuit

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
	key versionKey
	// content holds the version outside the Go heap (see slabs), binary saying in which form;
	// when the slabs had no room, version holds it instead.
	content []byte
	binary  bool
	version Version
	cost    int64
}

// get returns the entry's version, copied out of its slot: a sync never reads a slot that an
// eviction may zero and reuse.
func (e *entry) get() Version {
	switch {
	case e.content == nil:
		return e.version
	case e.binary:
		return Version{Binary: bytes.Clone(e.content)}
	default:
		s := string(e.content)
		return Version{String: &s}
	}
}

// flight is one call to Secrets Manager and the callers waiting on it.
type flight struct {
	done  chan struct{}
	v     Version
	err   error
	wakes wakeSet
}

// hold is a version whose last read failed.
type hold struct {
	err      *Error
	failures int
	until    time.Time
	// answered counts the requests answered from the hold since its last log line.
	answered int
}

// circuit is the state of the path to Secrets Manager. It is guarded by Cache.mu.
type circuit struct {
	// failures counts calls in a row that got no answer; answered is when AWS last answered.
	failures int
	answered time.Time
	open     bool
	since    time.Time
	// probing is set while a probe is in flight; next is when the next one starts.
	probing  bool
	interval time.Duration
	next     time.Time
	timer    clock.Timer
	// probe is a version someone is waiting for: the next probe reads it.
	probe versionKey
	// waiters are woken when the circuit closes; refused counts the requests it stopped.
	waiters wakeSet
	refused int
	last    *Error
	probes  int
}

// NewCache returns a cache in front of api, the client that reads as the controller's own
// identity.
func NewCache(api API, opts CacheOptions) *Cache {
	c := &Cache{
		api: api, opts: opts.withDefaults(), lru: list.New(), index: map[versionKey]*list.Element{},
		flights: map[versionKey]*flight{}, holds: map[versionKey]*hold{}, sweepAt: 1024,
	}
	c.slabs = newSlabs(max(c.opts.MaxBytes, 0), c.opts.OnMapped)
	runtime.AddCleanup(c, (*slabs).unmapAll, c.slabs)
	return c
}

// CacheStats are the cache's counters since it was made.
type CacheStats struct {
	// Hits are Gets answered without a call of their own: from the cache, or by sharing another
	// Get's call in flight.
	Hits uint64
	// Misses are calls made to Secrets Manager, probes included.
	Misses uint64
	// Entries and Bytes are what the cache holds now.
	Entries int
	Bytes   int64
	// Holds are the versions held after a failure now.
	Holds int
	// CircuitOpen says whether reads are stopped because Secrets Manager does not answer;
	// Parked are the requests waiting for it to close.
	CircuitOpen bool
	Parked      int
}

// Stats returns the cache's counters.
func (c *Cache) Stats() CacheStats {
	now := c.opts.Clock.Now()
	c.mu.Lock()
	s := CacheStats{Entries: c.lru.Len(), Bytes: c.bytes, CircuitOpen: c.circuit.open, Parked: c.circuit.waiters.len()}
	for _, h := range c.holds {
		if now.Before(h.until) {
			s.Holds++
		}
	}
	c.mu.Unlock()
	s.Hits, s.Misses = c.hits.Load(), c.calls.Load()
	return s
}

// Get returns one version of a secret, from the cache when it is there. It waits for a call
// another caller made; a held failure, or an open circuit, is returned at once. The returned
// Version shares memory with the cache: do not modify it.
func (c *Cache) Get(ctx context.Context, id Identity, secretID, versionID string) (Version, error) {
	return c.Fetch(ctx, id, secretID, versionID, FetchOptions{})
}

// Fetch returns one version of a secret like Get. With opts.Wake set it never waits on a call
// made for another caller: see FetchOptions.
func (c *Cache) Fetch(ctx context.Context, id Identity, secretID, versionID string, opts FetchOptions) (Version, error) {
	key := versionKey{id, secretID, versionID}
	v, f, own, err := c.begin(key, opts)
	if err != nil || f == nil {
		return v, err
	}
	if own {
		go c.call(key, f, false)
	}
	if c.joined != nil {
		c.joined()
	}
	select {
	case <-f.done:
	case <-ctx.Done():
		// The call is shared by every waiter: one waiter giving up does not cancel it.
		return Version{}, Classify(ctx.Err(), secretID, versionID)
	}
	if f.err == nil {
		if !own {
			c.hits.Add(1)
		}
		return f.v, nil
	}
	var e *Error
	if errors.As(f.err, &e) && e.endpoint && opts.Wake != nil {
		// The path to AWS failed; if that opened the circuit, wait for it like everyone else.
		c.mu.Lock()
		if c.circuit.open {
			err := c.parkLocked(key, opts)
			c.mu.Unlock()
			return Version{}, err
		}
		c.mu.Unlock()
	}
	return Version{}, f.err
}

// begin decides how a request is answered: from the cache (v), from a hold or the circuit (err),
// or by a flight (f), which the caller starts if own.
func (c *Cache) begin(key versionKey, opts FetchOptions) (v Version, f *flight, own bool, err error) {
	now := c.opts.Clock.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.index[key]; ok {
		c.lru.MoveToFront(el)
		c.hits.Add(1)
		return el.Value.(*entry).get(), nil, false, nil
	}
	if h := c.holds[key]; h != nil && !opts.IgnoreHold && now.Before(h.until) {
		h.answered++
		held := *h.err
		held.RetryAfter = h.until.Sub(now)
		return Version{}, nil, false, &held
	}
	if f := c.flights[key]; f != nil {
		if opts.Wake != nil {
			f.wakes.add(opts.WakeKey, opts.Wake)
			return Version{}, nil, false, ErrInFlight
		}
		return Version{}, f, false, nil
	}
	if c.circuit.open {
		return Version{}, nil, false, c.parkLocked(key, opts)
	}
	f = &flight{done: make(chan struct{})}
	c.flights[key] = f
	return Version{}, f, true, nil
}

// parkLocked answers a request while the circuit is open: the version becomes the next probe's,
// and wake, if set, is called when the circuit closes.
func (c *Cache) parkLocked(key versionKey, opts FetchOptions) error {
	cs := &c.circuit
	cs.refused++
	cs.probe = key
	e := &Error{
		Reason:    v1alpha1.ReasonAWSError,
		Transient: true,
		msg: "reading version " + strconv.Quote(key.versionID) + " of secret " + strconv.Quote(key.secretID) +
			": not tried: Secrets Manager is not answering (" + cs.last.describe + "); reads resume when it answers a probe",
		err: cs.last,
	}
	if opts.Wake != nil {
		cs.waiters.add(opts.WakeKey, opts.Wake)
		e.Parked = true
	} else if d := cs.next.Sub(c.opts.Clock.Now()); d > 0 {
		e.RetryAfter = d
	}
	return e
}

// call reads key from AWS for flight f and shares the outcome.
func (c *Cache) call(key versionKey, f *flight, probe bool) {
	var v Version
	api, err := c.apiFor(key.identity)
	if err == nil {
		// A shared call must not be canceled by any one waiter: it has a context of its own.
		ctx, cancel := context.WithTimeout(context.Background(), c.opts.Timeout)
		c.calls.Add(1)
		v, err = get(ctx, api, key.secretID, key.versionID)
		cancel()
		if c.opts.OnCall != nil {
			result := "success"
			if e, ok := err.(*Error); ok {
				result = e.Reason
			}
			c.opts.OnCall("GetSecretValue", result)
		}
	}
	c.finish(key, f, v, err, probe)
}

// finish records a call's outcome: the version or a hold, the circuit's state; then it wakes
// whoever waits on it.
func (c *Cache) finish(key versionKey, f *flight, v Version, err error, probe bool) {
	now := c.opts.Clock.Now()
	var wakes []func()
	var log func()
	c.mu.Lock()
	delete(c.flights, key)
	if err == nil {
		c.addLocked(key, v)
		delete(c.holds, key)
		wakes, log = c.answeredLocked(now)
	} else {
		e, ok := err.(*Error)
		if !ok {
			e = Classify(err, key.secretID, key.versionID).(*Error)
		}
		switch {
		case !e.endpoint:
			// AWS answered, if only to refuse: the path works.
			var logHold func()
			wakes, log = c.answeredLocked(now)
			err, logHold = c.holdLocked(key, e, now)
			log = both(log, logHold)
		case probe:
			log = c.probeFailedLocked(e, now)
		case c.circuit.open:
			// A call started before the circuit opened: its waiters park on the circuit.
		default:
			log = c.unansweredLocked(key, e, now)
			if !c.circuit.open {
				err, log = c.holdLocked(key, e, now)
			}
		}
	}
	f.v, f.err = v, err
	wakes = append(wakes, f.wakes.drain()...)
	c.mu.Unlock()
	// Logged before anyone hears of the outcome, so that the line comes first.
	if log != nil {
		log()
	}
	close(f.done)
	for _, wake := range wakes {
		wake()
	}
}

// holdLocked holds a failed version for its next back-off step and returns the error every
// request gets until then, and the log line that says so: one per step, with how many requests
// the last step answered.
func (c *Cache) holdLocked(key versionKey, e *Error, now time.Time) (error, func()) {
	h := c.holds[key]
	b := c.opts.TransientHold
	if !e.Transient {
		b = c.opts.PermanentHold
	}
	if h == nil || now.Sub(h.until) > b.Max {
		// A hold that ended long ago starts over.
		h = &hold{}
		c.sweepLocked(now)
		c.holds[key] = h
	}
	h.failures++
	d := b.Max
	switch {
	case e.endpoint || e.Reason == v1alpha1.ReasonThrottled:
		// The endpoint's failure or the account's throttling, not this version's: the circuit
		// and the pacer escalate those, so the hold stays at its first step.
		d = b.Initial
	case h.failures <= 30:
		d = min(b.Max, b.Initial<<(h.failures-1))
	}
	d -= rand.N(d/5 + 1)
	h.err, h.until = e, now.Add(d)
	held := *e
	held.RetryAfter = d
	failures, answered := h.failures, h.answered
	h.answered = 0
	return &held, func() {
		c.opts.Logger.Error(e, "Reading a secret version failed; every read of it gets this error until the hold ends",
			"secretId", key.secretID, "versionId", key.versionID, "identity", key.identity.String(), "reason", e.Reason,
			"transient", e.Transient, "failuresInARow", failures, "hold", d.Round(time.Millisecond), "answeredFromLastHold", answered)
	}
}

// both returns a function that calls f and g, either of which may be nil.
func both(f, g func()) func() {
	return func() {
		for _, h := range []func(){f, g} {
			if h != nil {
				h()
			}
		}
	}
}

// sweepLocked drops holds that ended long ago, when their number has doubled since the last
// sweep: a tenant pinning many missing versions costs memory only while it keeps asking.
func (c *Cache) sweepLocked(now time.Time) {
	if len(c.holds) < c.sweepAt {
		return
	}
	for k, h := range c.holds {
		if now.Sub(h.until) > c.opts.PermanentHold.Max {
			delete(c.holds, k)
		}
	}
	c.sweepAt = max(1024, 2*len(c.holds))
}

// unansweredLocked counts a call that got no answer, and opens the circuit after enough in a
// row. Holds set for such failures are dropped: the circuit takes over.
func (c *Cache) unansweredLocked(key versionKey, e *Error, now time.Time) func() {
	cs := &c.circuit
	cs.last = e
	cs.failures++
	if cs.failures < c.opts.Circuit.Failures || now.Sub(cs.answered) < c.opts.Circuit.Silence {
		return nil
	}
	cs.open, cs.since, cs.probe, cs.refused, cs.probes = true, now, key, 0, 0
	cs.interval = c.opts.Circuit.ProbeInitial
	for k, h := range c.holds {
		if h.err.endpoint {
			delete(c.holds, k)
		}
	}
	c.scheduleProbeLocked(now)
	failures, interval := cs.failures, cs.interval
	return func() {
		c.opts.Logger.Error(e, "Secrets Manager is not answering; reads stop until a probe is answered",
			"failuresInARow", failures, "probeEvery", interval)
	}
}

// answeredLocked records an answer from AWS: the failures in a row end, and an open circuit
// closes, waking every request parked on it.
func (c *Cache) answeredLocked(now time.Time) ([]func(), func()) {
	cs := &c.circuit
	cs.failures, cs.answered = 0, now
	if !cs.open {
		return nil, nil
	}
	if cs.timer != nil {
		cs.timer.Stop()
	}
	wakes, refused, probes, down := cs.waiters.drain(), cs.refused, cs.probes, now.Sub(cs.since)
	*cs = circuit{answered: now}
	return wakes, func() {
		c.opts.Logger.Info("Secrets Manager answers again; parked reads resume",
			"unansweredFor", down.Round(time.Millisecond), "probes", probes, "readsStopped", refused, "parked", len(wakes))
	}
}

// probeFailedLocked schedules the next probe, at a longer interval.
func (c *Cache) probeFailedLocked(e *Error, now time.Time) func() {
	cs := &c.circuit
	cs.probing, cs.last = false, e
	cs.interval = min(2*cs.interval, c.opts.Circuit.ProbeMax)
	c.scheduleProbeLocked(now)
	interval, probes, parked, refused := cs.interval, cs.probes, cs.waiters.len(), cs.refused
	return func() {
		c.opts.Logger.Error(e, "Secrets Manager still not answering", "probes", probes, "nextProbeIn", interval,
			"parked", parked, "readsStopped", refused)
	}
}

func (c *Cache) scheduleProbeLocked(now time.Time) {
	cs := &c.circuit
	cs.next = now.Add(cs.interval)
	// Not c.probe itself: a fake clock runs the function while it holds its own lock.
	cs.timer = c.opts.Clock.AfterFunc(cs.interval, func() { go c.probe() })
}

// probe reads the version the last parked request wanted, as a flight anyone may join.
func (c *Cache) probe() {
	c.mu.Lock()
	cs := &c.circuit
	if !cs.open || cs.probing {
		c.mu.Unlock()
		return
	}
	key := cs.probe
	if _, ok := c.index[key]; ok || c.flights[key] != nil {
		// Answered already, or being read by a call that began before the circuit opened:
		// its outcome decides; look again after another interval.
		c.scheduleProbeLocked(c.opts.Clock.Now())
		c.mu.Unlock()
		return
	}
	cs.probing = true
	cs.probes++
	f := &flight{done: make(chan struct{})}
	c.flights[key] = f
	c.mu.Unlock()
	c.call(key, f, true)
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

func (c *Cache) addLocked(key versionKey, v Version) {
	cost := int64(len(key.identity.RoleARN) + len(key.identity.Namespace) + len(key.secretID) + len(key.versionID) + v.size() + entryOverhead)
	if cost > c.opts.MaxBytes {
		return
	}
	if _, ok := c.index[key]; ok {
		return
	}
	e := &entry{key: key, version: v, cost: cost}
	if b := c.slabs.alloc(v.size()); b != nil {
		if v.String != nil {
			copy(b, *v.String)
		} else {
			copy(b, v.Binary)
			e.binary = true
		}
		e.content, e.version, e.cost = b, Version{}, cost+int64(cap(b)-len(b))
	}
	c.index[key] = c.lru.PushFront(e)
	c.bytes += e.cost
	for c.bytes > c.opts.MaxBytes {
		oldest := c.lru.Back()
		e := oldest.Value.(*entry)
		c.lru.Remove(oldest)
		delete(c.index, e.key)
		c.bytes -= e.cost
		if e.content != nil {
			c.slabs.release(e.content)
		}
	}
}

// wakeSet holds the functions that wake parked callers, one per WakeKey.
type wakeSet struct {
	keyed map[any]func()
	anon  []func()
}

func (w *wakeSet) add(key any, wake func()) {
	if key == nil {
		w.anon = append(w.anon, wake)
		return
	}
	if w.keyed == nil {
		w.keyed = map[any]func(){}
	}
	w.keyed[key] = wake
}

func (w *wakeSet) len() int { return len(w.keyed) + len(w.anon) }

// drain returns every wake function and empties the set.
func (w *wakeSet) drain() []func() {
	out := w.anon
	for _, wake := range w.keyed {
		out = append(out, wake)
	}
	*w = wakeSet{}
	return out
}
