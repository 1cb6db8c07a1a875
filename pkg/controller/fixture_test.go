package controller

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	kubeinformers "k8s.io/client-go/informers"
	k8sfake "k8s.io/client-go/kubernetes/fake"
	core "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2"
	"k8s.io/klog/v2/textlogger"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/mumoshu/aws-secret-controller/pkg/apis/mumoshu/v1alpha1"
	"github.com/mumoshu/aws-secret-controller/pkg/awssm"
	"github.com/mumoshu/aws-secret-controller/pkg/generated/clientset/versioned/fake"
	informers "github.com/mumoshu/aws-secret-controller/pkg/generated/informers/externalversions"
)

// The seed example's ids.
const (
	seedSecretID  = "prod/mysecret"
	seedVersionID = "c43e66cb-d0fe-44c5-9b7e-d450441a04be"
	newVersionID  = "0b5a2f3c-5f76-4b8e-9f47-2c0e0c6a7d11"
)

// testNow is the clock of every fixture, so conditions compare with DeepEqual.
var testNow = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

// fakeAWS is a Secrets Manager that holds versions in memory and counts GetSecretValue calls per
// (secretId, versionId).
type fakeAWS struct {
	mu       sync.Mutex
	versions map[versionRef]*secretsmanager.GetSecretValueOutput
	errs     map[versionRef]error
	calls    map[versionRef]int
	// block, when set, is received from before answering, to hold calls in flight.
	block chan struct{}
}

type versionRef struct{ secretID, versionID string }

func newFakeAWS() *fakeAWS {
	return &fakeAWS{
		versions: map[versionRef]*secretsmanager.GetSecretValueOutput{},
		errs:     map[versionRef]error{},
		calls:    map[versionRef]int{},
	}
}

func (f *fakeAWS) putString(secretID, versionID, content string) {
	f.versions[versionRef{secretID, versionID}] = &secretsmanager.GetSecretValueOutput{SecretString: aws.String(content)}
}

func (f *fakeAWS) putBinary(secretID, versionID string, content []byte) {
	f.versions[versionRef{secretID, versionID}] = &secretsmanager.GetSecretValueOutput{SecretBinary: content}
}

func (f *fakeAWS) GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, _ ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error) {
	if in.VersionStage != nil || in.VersionId == nil {
		return nil, errors.New("fakeAWS: the controller must ask by VersionId only")
	}
	ref := versionRef{aws.ToString(in.SecretId), aws.ToString(in.VersionId)}
	f.mu.Lock()
	f.calls[ref]++
	block := f.block
	f.mu.Unlock()
	if block != nil {
		<-block
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.errs[ref]; err != nil {
		return nil, err
	}
	if out, ok := f.versions[ref]; ok {
		return out, nil
	}
	return nil, &smtypes.ResourceNotFoundException{Message: aws.String("Secrets Manager can't find the specified secret value for VersionId: " + ref.versionID)}
}

func (f *fakeAWS) totalCalls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.calls {
		n += c
	}
	return n
}

// fixture is a controller over fake clientsets, with listers filled by hand.
type fixture struct {
	t *testing.T

	kubeClient *k8sfake.Clientset
	client     *fake.Clientset
	aws        *fakeAWS
	cache      *awssm.Cache
	recorder   *record.FakeRecorder
	// logs holds everything the controller logged, at every verbosity.
	logs *syncBuffer

	// The informer factories, for tests that start them; and the informers' stores, for
	// tests that move the cache on by hand.
	factory          informers.SharedInformerFactory
	kubeFactory      kubeinformers.SharedInformerFactory
	awsSecretIndexer cache.Indexer
	secretIndexer    cache.Indexer

	// options, if set, adjusts the controller's options.
	options func(*Options)
	// secretReactors run before the fake's own handling of Secret actions, to make the API
	// server refuse a write (Invalid, Forbidden, Conflict).
	secretReactors []core.ReactionFunc

	// Objects to put in the listers; kubeObjects and objects also go into the clientsets.
	awsSecretLister []*v1alpha1.AWSSecret
	secretLister    []*corev1.Secret
	kubeObjects     []runtime.Object
	objects         []runtime.Object
}

func newFixture(t *testing.T) *fixture {
	return &fixture{t: t, aws: newFakeAWS(), logs: &syncBuffer{}}
}

// syncBuffer is a bytes.Buffer safe for the logger's concurrent writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// context returns a context whose logger writes every verbosity into f.logs.
func (f *fixture) context() context.Context {
	logger := textlogger.NewLogger(textlogger.NewConfig(textlogger.Output(f.logs), textlogger.Verbosity(10)))
	ctx, cancel := context.WithCancel(klog.NewContext(context.Background(), logger))
	f.t.Cleanup(cancel)
	return ctx
}

func (f *fixture) newController(ctx context.Context) *Controller {
	f.t.Helper()
	f.client = fake.NewClientset(f.objects...)
	f.kubeClient = k8sfake.NewClientset(f.kubeObjects...)
	// The fake would store a dry-run create; the API server validates it, runs admission and
	// stores nothing. Validation is the e2e suite's job; here a dry run just stores nothing.
	f.kubeClient.PrependReactor("create", "secrets", func(action core.Action) (bool, runtime.Object, error) {
		create := action.(core.CreateAction)
		if !isDryRun(action) {
			return false, nil, nil
		}
		obj := create.GetObject().DeepCopyObject().(*corev1.Secret)
		obj.Name = obj.GenerateName + "dryrun"
		return true, obj, nil
	})
	for _, r := range f.secretReactors {
		for _, verb := range []string{"create", "update", "delete", "get"} {
			f.kubeClient.PrependReactor(verb, "secrets", r)
		}
	}
	f.recorder = record.NewFakeRecorder(100)
	if f.cache == nil {
		// Its log lines go where the controller's do, so that leak checks read them too.
		f.cache = awssm.NewCache(f.aws, awssm.CacheOptions{Logger: klog.FromContext(ctx)})
	}

	factory := informers.NewSharedInformerFactory(f.client, 0)
	kubeFactory := kubeinformers.NewSharedInformerFactoryWithOptions(f.kubeClient, 0,
		kubeinformers.WithTweakListOptions(ManagedSecretsOnly), kubeinformers.WithTransform(TransformForCache))
	opts := Options{
		KubeClient:        f.kubeClient,
		AWSSecretClient:   f.client,
		AWSSecretInformer: factory.Mumoshu().V1alpha1().AWSSecrets(),
		SecretInformer:    kubeFactory.Core().V1().Secrets(),
		Versions:          f.cache,
		Recorder:          f.recorder,
		Clock:             clocktesting.NewFakePassiveClock(testNow),
	}
	if f.options != nil {
		f.options(&opts)
	}
	c, err := NewController(ctx, opts)
	if err != nil {
		f.t.Fatal(err)
	}
	f.factory, f.kubeFactory = factory, kubeFactory
	f.awsSecretIndexer = factory.Mumoshu().V1alpha1().AWSSecrets().Informer().GetIndexer()
	f.secretIndexer = kubeFactory.Core().V1().Secrets().Informer().GetIndexer()
	for _, a := range f.awsSecretLister {
		if err := f.awsSecretIndexer.Add(a); err != nil {
			f.t.Fatal(err)
		}
	}
	for _, s := range f.secretLister {
		// As the informer would cache it (cmd/aws-secret-controller uses the transform).
		cached, _ := TransformForCache(s.DeepCopy())
		if err := f.secretIndexer.Add(cached); err != nil {
			f.t.Fatal(err)
		}
	}
	return c
}

// startWith seeds an AWSSecret, builds the controller and syncs the AWSSecret once, returning
// the context, the controller and the sync's error.
func (f *fixture) startWith(a *v1alpha1.AWSSecret) (context.Context, *Controller, error) {
	f.t.Helper()
	f.seedAWSSecret(a)
	ctx := f.context()
	c := f.newController(ctx)
	return ctx, c, c.syncHandler(ctx, keyOf(f.t, a))
}

// seed puts an AWSSecret in its lister and clientset.
func (f *fixture) seedAWSSecret(a *v1alpha1.AWSSecret) {
	f.awsSecretLister = append(f.awsSecretLister, a)
	f.objects = append(f.objects, a)
}

// seedSecret puts a Secret in the clientset and, when the informer would see it, in its lister.
func (f *fixture) seedSecret(s *corev1.Secret) {
	f.kubeObjects = append(f.kubeObjects, s)
	if s.Labels[ManagedByLabel] == ComponentName {
		f.secretLister = append(f.secretLister, s)
	}
}

// writes returns the clientsets' actions other than reads (get, list, watch).
func (f *fixture) writes() []core.Action {
	var out []core.Action
	for _, a := range append(f.kubeClient.Actions(), f.client.Actions()...) {
		switch a.GetVerb() {
		case "get", "list", "watch":
			continue
		}
		out = append(out, a)
	}
	return out
}

// storedSecret is a Secret of namespace default as the fake API server holds it.
func (f *fixture) storedSecret(ctx context.Context, name string) *corev1.Secret {
	f.t.Helper()
	s, err := f.kubeClient.CoreV1().Secrets(metav1.NamespaceDefault).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		f.t.Fatal(err)
	}
	return s
}

// storedAWSSecret is an AWSSecret of namespace default as the fake API server holds it.
func (f *fixture) storedAWSSecret(ctx context.Context, name string) *v1alpha1.AWSSecret {
	f.t.Helper()
	a, err := f.client.MumoshuV1alpha1().AWSSecrets(metav1.NamespaceDefault).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		f.t.Fatal(err)
	}
	return a
}

// forgetRecorded clears the actions and events recorded so far, so a test can look at what one
// more sync does.
func (f *fixture) forgetRecorded() {
	f.kubeClient.ClearActions()
	f.client.ClearActions()
	f.events()
}

// events drains the fake recorder.
func (f *fixture) events() []string {
	var out []string
	for {
		select {
		case e := <-f.recorder.Events:
			out = append(out, e)
		default:
			return out
		}
	}
}

// assertNoLeak fails when a secret value appears in anything the controller says about a sync:
// events, the AWSSecret status it wrote, the error it returned, and its logs.
func (f *fixture) assertNoLeak(syncErr error, events []string, values ...string) {
	f.t.Helper()
	var said strings.Builder
	said.WriteString(f.logs.String())
	said.WriteString(strings.Join(events, "\n"))
	if syncErr != nil {
		said.WriteString(syncErr.Error())
	}
	for _, a := range f.client.Actions() {
		if u, ok := a.(core.UpdateAction); ok {
			if as, ok := u.GetObject().(*v1alpha1.AWSSecret); ok {
				status, _ := json.Marshal(as.Status)
				said.Write(status)
			}
		}
	}
	for i, v := range values {
		if strings.Contains(said.String(), v) {
			// Named by its place in the list: test output is output too.
			f.t.Errorf("secret value %d of %d (%d bytes) leaked into events, status, error or logs", i+1, len(values), len(v))
		}
	}
}

// newAWSSecret returns the seed's example AWSSecret in namespace default.
func newAWSSecret(name, secretID, versionID string) *v1alpha1.AWSSecret {
	return &v1alpha1.AWSSecret{
		TypeMeta: metav1.TypeMeta{APIVersion: v1alpha1.SchemeGroupVersion.String(), Kind: "AWSSecret"},
		ObjectMeta: metav1.ObjectMeta{
			Name:       name,
			Namespace:  metav1.NamespaceDefault,
			UID:        types.UID("uid-" + name),
			Generation: 1,
		},
		Spec: v1alpha1.AWSSecretSpec{
			StringDataFrom: &v1alpha1.DataSource{
				SecretsManagerSecretRef: v1alpha1.SecretsManagerSecretRef{SecretID: secretID, VersionID: versionID},
			},
		},
	}
}

// syncedStatus is the status of an AWSSecret whose Secret holds its pinned versions, written
// out from the spec here rather than by the code under test.
func syncedStatus(a *v1alpha1.AWSSecret) v1alpha1.AWSSecretStatus {
	var s v1alpha1.AWSSecretStatus
	s.ObservedGeneration = a.Generation
	var held []string
	if r := a.Spec.StringDataFrom; r != nil {
		ref := r.SecretsManagerSecretRef
		s.StringDataFrom = &ref
		held = append(held, "version "+ref.VersionID+" of "+ref.SecretID)
	}
	if r := a.Spec.DataFrom; r != nil {
		ref := r.SecretsManagerSecretRef
		s.DataFrom = &ref
		held = append(held, "version "+ref.VersionID+" of "+ref.SecretID)
	}
	// The data entries' versions, each once, by secretId then versionId.
	seen := map[v1alpha1.SecretsManagerSecretRef]bool{}
	for _, e := range a.Spec.Data {
		if !seen[e.SecretsManagerSecretRef] {
			seen[e.SecretsManagerSecretRef] = true
			s.Data = append(s.Data, e.SecretsManagerSecretRef)
		}
	}
	slices.SortFunc(s.Data, func(x, y v1alpha1.SecretsManagerSecretRef) int {
		return cmp.Or(strings.Compare(x.SecretID, y.SecretID), strings.Compare(x.VersionID, y.VersionID))
	})
	for _, ref := range s.Data {
		held = append(held, "version "+ref.VersionID+" of "+ref.SecretID)
	}
	s.Conditions = []metav1.Condition{{
		Type:               v1alpha1.ConditionReady,
		Status:             metav1.ConditionTrue,
		Reason:             v1alpha1.ReasonSynced,
		Message:            "Secret holds " + strings.Join(held, " and "),
		ObservedGeneration: a.Generation,
		LastTransitionTime: metav1.NewTime(testNow),
	}}
	return s
}

// keyOf is the queue key of an object.
func keyOf(t *testing.T, obj any) cache.ObjectName {
	t.Helper()
	key, err := cache.ObjectToName(obj)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// isDryRun says whether an action is a dry-run create.
func isDryRun(action core.Action) bool {
	create, ok := action.(core.CreateActionImpl)
	return ok && len(create.CreateOptions.DryRun) > 0
}
