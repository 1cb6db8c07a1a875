package controller

import (
	"encoding/json"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"

	"github.com/mumoshu/aws-secret-controller/pkg/apis/mumoshu/v1alpha1"
)

// BenchmarkCachedBytesPerObject measures the Go heap the informer caches hold per synced
// AWSSecret (the AWSSecret and its Secret, decoded from JSON as an informer decodes them, through
// TransformForCache, in indexers with the namespace index), for 16-byte and 4 KiB values. The
// bytes per object do not depend on the value size: the cache holds the data's digest only.
// `make bench` measures the whole process on the real stack; this isolates the caches.
func BenchmarkCachedBytesPerObject(b *testing.B) {
	for _, size := range []int{16, 4096} {
		b.Run(fmt.Sprintf("value=%dB", size), func(b *testing.B) {
			const n = 10000
			var perObject float64
			for b.Loop() {
				perObject = cachedBytesPerObject(b, n, size)
			}
			b.ReportMetric(perObject, "B/object")
		})
	}
}

func cachedBytesPerObject(b *testing.B, n, size int) float64 {
	awsSecrets := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	secrets := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	// Encoded first, so that only what decoding and caching allocate is counted.
	encoded := make([][2][]byte, n)
	for i := range n {
		a := newAWSSecret(fmt.Sprintf("app-%05d", i), fmt.Sprintf("bench/secret-%04d", i%2000), fmt.Sprintf("%08x-0000-4000-8000-%012x", i%2000, i%2000))
		a.Namespace = fmt.Sprintf("bench-%02d", i%20)
		a.UID = types.UID(fmt.Sprintf("%08x-1111-4000-8000-%012x", i, i))
		a.ResourceVersion = fmt.Sprint(100000 + i)
		a.CreationTimestamp = metav1.NewTime(time.Unix(1764400000, 0))
		a.Annotations = map[string]string{lastAppliedAnnotation: strings.Repeat("x", 400)}
		a.ManagedFields = []metav1.ManagedFieldsEntry{{Manager: "kubectl", Operation: metav1.ManagedFieldsOperationApply}}
		a.Status = syncedStatus(a)
		s := syncedSecret(a, map[string]string{"username": "user", "password": strings.Repeat("p", size)})
		s.UID = types.UID(fmt.Sprintf("%08x-2222-4000-8000-%012x", i, i))
		s.ResourceVersion = fmt.Sprint(200000 + i)
		s.CreationTimestamp = a.CreationTimestamp
		s.ManagedFields = []metav1.ManagedFieldsEntry{{Manager: FieldManager, Operation: metav1.ManagedFieldsOperationUpdate}}
		var err error
		if encoded[i][0], err = json.Marshal(a); err != nil {
			b.Fatal(err)
		}
		if encoded[i][1], err = json.Marshal(s); err != nil {
			b.Fatal(err)
		}
	}
	before := heapInUse()
	for _, e := range encoded {
		a, s := &v1alpha1.AWSSecret{}, &corev1.Secret{}
		if json.Unmarshal(e[0], a) != nil || json.Unmarshal(e[1], s) != nil {
			b.Fatal("decoding")
		}
		for _, obj := range []any{a, s} {
			if _, err := TransformForCache(obj); err != nil {
				b.Fatal(err)
			}
		}
		if awsSecrets.Add(a) != nil || secrets.Add(s) != nil {
			b.Fatal("adding")
		}
	}
	after := heapInUse()
	runtime.KeepAlive(encoded)
	runtime.KeepAlive(awsSecrets)
	runtime.KeepAlive(secrets)
	return float64(after-before) / float64(n)
}

func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}
