package fairqueue_test

import (
	"fmt"

	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"github.com/mumoshu/aws-secret-controller/pkg/fairqueue"
)

// The controller's wiring: namespaces are tenants; every add is preceded by a Hint. In the
// informer's handlers, an add with isInInitialList (cache.ResourceEventHandlerDetailedFuncs)
// and an update whose old and new resourceVersions are equal (a resync) are Low; everything
// else, including retries, is High.
func Example() {
	fq := fairqueue.New(func(n cache.ObjectName) string { return n.Namespace }, fairqueue.Options{})
	queue := fairqueue.NewRateLimitingQueue(fq, workqueue.DefaultTypedControllerRateLimiter[cache.ObjectName](), "awssecrets")
	defer queue.ShutDown()

	enqueue := func(name cache.ObjectName, p fairqueue.Priority) {
		fq.Hint(name, p)
		queue.Add(name)
	}
	for i := range 3 {
		enqueue(cache.ObjectName{Namespace: "team-a", Name: fmt.Sprint("s", i)}, fairqueue.Low) // initial list
	}
	enqueue(cache.ObjectName{Namespace: "team-b", Name: "db"}, fairqueue.Low)   // initial list
	enqueue(cache.ObjectName{Namespace: "team-a", Name: "s2"}, fairqueue.High)  // a user edits s2
	enqueue(cache.ObjectName{Namespace: "team-c", Name: "api"}, fairqueue.High) // a user creates api
	enqueue(cache.ObjectName{Namespace: "team-a", Name: "s1"}, fairqueue.Low)   // a resync: no change

	for queue.Len() > 0 {
		name, _ := queue.Get()
		fmt.Println(name)
		queue.Done(name)
		queue.Forget(name)
	}
	// Output:
	// team-a/s2
	// team-c/api
	// team-a/s0
	// team-b/db
	// team-a/s1
}
