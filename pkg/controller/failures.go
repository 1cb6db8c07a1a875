package controller

import (
	"sync"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"

	"github.com/mumoshu/aws-secret-controller/pkg/apis/mumoshu/v1alpha1"
	"github.com/mumoshu/aws-secret-controller/pkg/render"
)

// renderMemo remembers, per AWSSecret, the spec generation that failed to render and how. The
// versions a spec pins never change, so the same generation fails the same way: its slow
// retries, resyncs and the events of its Secret cost neither a rendering nor a read. A failure
// at the sync's deadline is not remembered (a less busy machine may finish), nor is anything
// that is not a rendering failure (AWS errors, API errors).
type renderMemo struct {
	mu sync.Mutex
	// failed holds one entry per AWSSecret whose current generation failed to render; it is
	// dropped when the AWSSecret renders, changes or goes.
	failed map[cache.ObjectName]renderFailure
}

type renderFailure struct {
	uid        types.UID
	generation int64
	err        error
}

// get returns the failure remembered for the AWSSecret's current generation, or nil.
func (m *renderMemo) get(a *v1alpha1.AWSSecret) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	f, ok := m.failed[cache.MetaObjectToName(a)]
	if !ok || f.uid != a.UID || f.generation != a.Generation {
		return nil
	}
	return f.err
}

// put remembers err for the AWSSecret's generation if it is a rendering failure that the same
// inputs would repeat, and forgets any older one.
func (m *renderMemo) put(a *v1alpha1.AWSSecret, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	key := cache.MetaObjectToName(a)
	re, ok := render.IsRenderError(err)
	if !ok || re.Deadline {
		delete(m.failed, key)
		return
	}
	if m.failed == nil {
		m.failed = map[cache.ObjectName]renderFailure{}
	}
	m.failed[key] = renderFailure{uid: a.UID, generation: a.Generation, err: err}
}

func (m *renderMemo) forget(key cache.ObjectName) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.failed, key)
}

// readMemo remembers, per AWSSecret, the spec generation and namespace policy under which it was
// last told that a version could not be read. The failure is held for every AWSSecret pinning
// that version (awssm.Cache); an AWSSecret whose spec or policy changed since reads again at
// once: its owner may have changed it to fix the failure.
type readMemo struct {
	mu     sync.Mutex
	failed map[cache.ObjectName]readFailure
}

type readFailure struct {
	uid        types.UID
	generation int64
	stamp      string
}

// changed says whether the AWSSecret was told of a failed read under another spec or policy.
func (m *readMemo) changed(a *v1alpha1.AWSSecret, stamp string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	f, ok := m.failed[cache.MetaObjectToName(a)]
	return ok && f != readFailure{uid: a.UID, generation: a.Generation, stamp: stamp}
}

// put remembers that the AWSSecret was told of a failed read under its spec and stamp.
func (m *readMemo) put(a *v1alpha1.AWSSecret, stamp string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.failed == nil {
		m.failed = map[cache.ObjectName]readFailure{}
	}
	m.failed[cache.MetaObjectToName(a)] = readFailure{uid: a.UID, generation: a.Generation, stamp: stamp}
}

func (m *readMemo) forget(key cache.ObjectName) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.failed, key)
}
