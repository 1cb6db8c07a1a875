package controller

import (
	"context"
	"strings"
	"sync"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"

	"github.com/mumoshu/aws-secret-controller/pkg/apis/mumoshu/v1alpha1"
	"github.com/mumoshu/aws-secret-controller/pkg/awssm"
	"github.com/mumoshu/aws-secret-controller/pkg/fairqueue"
	"github.com/mumoshu/aws-secret-controller/pkg/tenancy"
)

// namespaceInformer is a Namespace metadata informer whose store the test fills by hand.
func namespaceInformer(namespaces ...*metav1.PartialObjectMetadata) cache.SharedIndexInformer {
	inf := cache.NewSharedIndexInformer(&cache.ListWatch{
		ListFunc:  func(metav1.ListOptions) (runtime.Object, error) { return &metav1.PartialObjectMetadataList{}, nil },
		WatchFunc: func(metav1.ListOptions) (watch.Interface, error) { return watch.NewFake(), nil },
	}, &metav1.PartialObjectMetadata{}, 0, cache.Indexers{})
	for _, ns := range namespaces {
		_ = inf.GetIndexer().Add(ns)
	}
	return inf
}

func namespaceWith(name string, annotations map[string]string) *metav1.PartialObjectMetadata {
	return &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: annotations}}
}

// recordingVersions is a VersionGetter that records the identity of each read.
type recordingVersions struct {
	next VersionGetter
	mu   sync.Mutex
	ids  []awssm.Identity
}

func (r *recordingVersions) Get(ctx context.Context, id awssm.Identity, secretID, versionID string) (awssm.Version, error) {
	r.mu.Lock()
	r.ids = append(r.ids, id)
	r.mu.Unlock()
	return r.next.Get(ctx, id, secretID, versionID)
}

func TestTenancy(t *testing.T) {
	const teamA = "team-a/db"
	allowTeamA := map[string]string{tenancy.AnnotationAllowedSecretIDs: "team-a/*"}
	tests := map[string]struct {
		policy     tenancy.Policy
		namespace  map[string]string // annotations of namespace default; nil: not in the cache
		secretID   string
		preCached  bool // the version is in the cache already, read by another namespace
		withSecret bool // a Secret written while it was allowed exists
		// wantWait: the namespace is not known yet, so the sync waits: an error, no status, no
		// read at all.
		wantWait bool

		wantReason string
		wantCalls  int
		wantWrites []string // Secret verbs
		wantRole   string
	}{
		"allowed by the annotation": {
			policy: tenancy.Policy{Mode: tenancy.ModeAllowList}, namespace: allowTeamA, secretID: teamA,
			wantReason: v1alpha1.ReasonSynced, wantCalls: 1, wantWrites: []string{"create"},
		},
		"not in the allow-list: no AWS call": {
			policy: tenancy.Policy{Mode: tenancy.ModeAllowList}, namespace: allowTeamA, secretID: "team-b/db",
			wantReason: v1alpha1.ReasonSecretNotAllowed,
		},
		"not in the allow-list, version cached by another namespace: not served": {
			policy: tenancy.Policy{Mode: tenancy.ModeAllowList}, namespace: allowTeamA, secretID: "team-b/db", preCached: true,
			wantReason: v1alpha1.ReasonSecretNotAllowed, wantCalls: 1, // the other namespace's
		},
		"unannotated namespace in allow-list mode": {
			policy: tenancy.Policy{Mode: tenancy.ModeAllowList}, namespace: map[string]string{}, secretID: teamA,
			wantReason: v1alpha1.ReasonSecretNotAllowed,
		},
		"namespace not yet in the cache in allow-list mode: wait, no status": {
			policy: tenancy.Policy{Mode: tenancy.ModeAllowList}, secretID: teamA,
			wantWait: true,
		},
		"namespace not yet in the cache in open mode: no read as the wrong identity": {
			policy: tenancy.Policy{Mode: tenancy.ModeOpen}, secretID: teamA,
			wantWait: true,
		},
		"denied: a Secret written while allowed is left as it is": {
			policy: tenancy.Policy{Mode: tenancy.ModeAllowList}, namespace: map[string]string{tenancy.AnnotationAllowedSecretIDs: "other/*"}, secretID: teamA, withSecret: true,
			wantReason: v1alpha1.ReasonSecretNotAllowed,
		},
		"open mode, outside --allowed-secret-ids": {
			policy: tenancy.Policy{Mode: tenancy.ModeOpen, Global: tenancy.Patterns{"prod/*"}}, namespace: allowTeamA, secretID: teamA,
			wantReason: v1alpha1.ReasonSecretNotAllowed,
		},
		"open mode reads as the namespace's role": {
			policy:     tenancy.Policy{Mode: tenancy.ModeOpen},
			namespace:  map[string]string{tenancy.AnnotationRoleARN: "arn:aws:iam::111111111111:role/team-a"},
			secretID:   teamA,
			wantReason: v1alpha1.ReasonSynced, wantCalls: 1, wantWrites: []string{"create"},
			wantRole: "arn:aws:iam::111111111111:role/team-a",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t)
			f.aws.putString(tc.secretID, seedVersionID, `{"password":"`+secretValue+`"}`)
			var namespaces []*metav1.PartialObjectMetadata
			if tc.namespace != nil {
				namespaces = append(namespaces, namespaceWith("default", tc.namespace))
			}
			a := newAWSSecret("app", tc.secretID, seedVersionID)
			if tc.withSecret {
				a.Status = syncedStatus(a)
				f.seedSecret(syncedSecret(a, map[string]string{"password": secretValue}))
			}
			f.seedAWSSecret(a)
			// Every identity reads the same fake AWS; the recording shows which one asked.
			f.cache = awssm.NewCache(f.aws, awssm.CacheOptions{Roles: func(awssm.Identity) (awssm.API, error) { return f.aws, nil }})
			var rec *recordingVersions
			f.options = func(o *Options) {
				o.Policy = tc.policy
				o.NamespaceInformer = namespaceInformer(namespaces...)
				rec = &recordingVersions{next: o.Versions}
				o.Versions = rec
			}
			ctx := f.context()
			c := f.newController(ctx)
			if tc.preCached {
				if _, err := f.cache.Get(ctx, awssm.Identity{}, tc.secretID, seedVersionID); err != nil {
					t.Fatal(err)
				}
			}
			hitsBefore := f.cache.Stats().Hits

			err := c.syncHandler(ctx, keyOf(t, a))
			if tc.wantWait {
				if err == nil || f.aws.totalCalls() != 0 || len(rec.ids) != 0 || len(f.writes()) != 0 {
					t.Errorf("unknown namespace: err %v, %d AWS calls, %d reads, writes %v; want an error and nothing else", err, f.aws.totalCalls(), len(rec.ids), f.writes())
				}
				return
			}
			if (err != nil) != (tc.wantReason != v1alpha1.ReasonSynced) {
				t.Errorf("syncHandler() = %v", err)
			}
			if n := f.aws.totalCalls(); n != tc.wantCalls {
				t.Errorf("AWS calls = %d, want %d", n, tc.wantCalls)
			}
			if tc.wantReason == v1alpha1.ReasonSecretNotAllowed {
				if len(rec.ids) != 0 || f.cache.Stats().Hits != hitsBefore {
					t.Errorf("a denied read reached the cache: %d reads, hits %d→%d", len(rec.ids), hitsBefore, f.cache.Stats().Hits)
				}
			}
			var verbs []string
			var status *v1alpha1.AWSSecret
			for _, w := range f.writes() {
				switch w.GetResource().Resource {
				case "secrets":
					verbs = append(verbs, w.GetVerb())
				case "awssecrets":
					status = w.(interface{ GetObject() runtime.Object }).GetObject().(*v1alpha1.AWSSecret)
				}
			}
			if strings.Join(verbs, ",") != strings.Join(tc.wantWrites, ",") {
				t.Errorf("Secret writes = %v, want %v", verbs, tc.wantWrites)
			}
			if status == nil {
				t.Fatal("no status written")
			}
			cond := status.Status.Conditions[0]
			if cond.Reason != tc.wantReason {
				t.Errorf("Ready reason = %s (%s), want %s", cond.Reason, cond.Message, tc.wantReason)
			}
			if tc.wantReason == v1alpha1.ReasonSecretNotAllowed {
				if !strings.Contains(cond.Message, "default") || !strings.Contains(cond.Message, tc.secretID) {
					t.Errorf("message %q does not name the namespace and the secret id", cond.Message)
				}
				if tc.withSecret && (status.Status.StringDataFrom == nil || status.Status.StringDataFrom.VersionID != seedVersionID) {
					t.Errorf("status no longer says which version the kept Secret holds: %+v", status.Status.StringDataFrom)
				}
				events := f.events()
				if len(events) != 1 || !strings.HasPrefix(events[0], "Warning SecretNotAllowed ") {
					t.Errorf("events = %q, want one Warning SecretNotAllowed", events)
				}
			}
			if tc.wantRole != "" {
				if len(rec.ids) != 1 || rec.ids[0] != (awssm.Identity{RoleARN: tc.wantRole, Namespace: "default"}) {
					t.Errorf("read as %v, want role %s for namespace default", rec.ids, tc.wantRole)
				}
			}
			f.assertNoLeak(err, nil, secretValue)
		})
	}
}

// TestPolicyEditsActAtOnce: a change to a Namespace's policy annotations re-queues its
// AWSSecrets; other Namespace updates do not.
func TestPolicyEditsActAtOnce(t *testing.T) {
	before := namespaceWith("default", map[string]string{"other": "x"})
	tests := map[string]struct {
		after *metav1.PartialObjectMetadata
		want  bool
	}{
		"allow-list added":             {after: namespaceWith("default", map[string]string{"other": "x", tenancy.AnnotationAllowedSecretIDs: "a/*"}), want: true},
		"role added":                   {after: namespaceWith("default", map[string]string{"other": "x", tenancy.AnnotationRoleARN: "arn"}), want: true},
		"unrelated annotation removed": {after: namespaceWith("default", nil), want: false},
		"unrelated change only":        {after: namespaceWith("default", map[string]string{"other": "y"}), want: false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := policyChanged(before, tc.after); got != tc.want {
				t.Errorf("policyChanged() = %v, want %v", got, tc.want)
			}
		})
	}
	removed := policyChanged(namespaceWith("default", map[string]string{tenancy.AnnotationAllowedSecretIDs: "a/*"}), namespaceWith("default", nil))
	if !removed {
		t.Error("removing the allow-list is a policy change")
	}

	f := newFixture(t)
	for _, name := range []string{"one", "two"} {
		f.seedAWSSecret(newAWSSecret(name, "a/b", seedVersionID))
	}
	other := newAWSSecret("elsewhere", "a/b", seedVersionID)
	other.Namespace = "other"
	f.seedAWSSecret(other)
	c := f.newController(f.context())
	c.handleNamespace(namespaceWith("default", nil), fairqueue.High)
	if c.queue.Len() != 2 {
		t.Errorf("queued %d AWSSecrets, want the namespace's 2", c.queue.Len())
	}
}

// TestNamespaceEventsWakeOnlyForPolicy drives the Namespace informer's own events: an update
// that touches no policy annotation queues nothing, one that does queues that namespace's
// AWSSecrets, through the handlers NewController registers.
func TestNamespaceEventsWakeOnlyForPolicy(t *testing.T) {
	watcher := watch.NewFake()
	list := &metav1.PartialObjectMetadataList{Items: []metav1.PartialObjectMetadata{
		*namespaceWith("default", map[string]string{tenancy.AnnotationAllowedSecretIDs: "a/*", "other": "x"}),
		*namespaceWith("other", map[string]string{tenancy.AnnotationAllowedSecretIDs: "a/*"}),
	}}
	for i := range list.Items {
		list.Items[i].ResourceVersion = "1"
	}
	inf := cache.NewSharedIndexInformer(&cache.ListWatch{
		ListFunc:  func(metav1.ListOptions) (runtime.Object, error) { return list, nil },
		WatchFunc: func(metav1.ListOptions) (watch.Interface, error) { return watcher, nil },
	}, &metav1.PartialObjectMetadata{}, 0, cache.Indexers{})

	f := newFixture(t)
	for _, name := range []string{"one", "two"} {
		f.seedAWSSecret(newAWSSecret(name, "a/b", seedVersionID))
	}
	elsewhere := newAWSSecret("elsewhere", "a/b", seedVersionID)
	elsewhere.Namespace = "other"
	f.seedAWSSecret(elsewhere)
	f.options = func(o *Options) {
		o.Policy = tenancy.Policy{Mode: tenancy.ModeAllowList}
		o.NamespaceInformer = inf
	}
	ctx, cancel := context.WithCancel(f.context())
	defer cancel()
	c := f.newController(ctx)
	go inf.RunWithContext(ctx)
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		t.Fatal("the Namespace informer did not sync")
	}
	waitFor(t, "the initial list's AWSSecrets queued", func() bool { return c.queue.Len() == 3 })
	nextKeys(c, 3)

	update := func(name string, annotations map[string]string, rv string) {
		ns := namespaceWith(name, annotations)
		ns.ResourceVersion = rv
		watcher.Modify(ns)
	}
	// Unrelated: default's "other" annotation changes. Then a policy change in "other": once
	// its AWSSecret is queued, default's update has been handled too (one goroutine delivers
	// the events in order).
	update("default", map[string]string{tenancy.AnnotationAllowedSecretIDs: "a/*", "other": "y"}, "2")
	update("other", map[string]string{tenancy.AnnotationAllowedSecretIDs: "a/*, b/*"}, "3")
	waitFor(t, "the policy change queued", func() bool { return c.queue.Len() > 0 })
	if got := nextKeys(c, c.queue.Len()); len(got) != 1 || got[0] != (cache.ObjectName{Namespace: "other", Name: "elsewhere"}) {
		t.Errorf("queued %v, want only other/elsewhere: an unrelated Namespace update queued its AWSSecrets", got)
	}
	// A policy change in default queues its two.
	update("default", map[string]string{tenancy.AnnotationRoleARN: "arn:aws:iam::1:role/r", tenancy.AnnotationAllowedSecretIDs: "a/*", "other": "y"}, "4")
	waitFor(t, "default's AWSSecrets queued", func() bool { return c.queue.Len() == 2 })
}
