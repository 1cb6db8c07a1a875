package main

// mutant is one way of breaking the code that a mutation tool would not generate (a call
// removed, a check or a selector made a no-op, an input dropped from a hash), and the test that
// must turn red when it is applied.
type mutant struct {
	// name says what the mutant breaks.
	name string
	// file is the file it edits, relative to the repository; edits replace old with new, each
	// old appearing exactly once in the file.
	file  string
	edits []edit
	// pkg and test are the package and the -run pattern that must fail.
	pkg, test string
}

type edit struct{ old, new string }

// mutants are the kinds of breakage the review found no test for, and the claims they back.
var mutants = []mutant{
	{
		name:  "single flight: every call its own flight",
		file:  "pkg/awssm/cache.go",
		edits: []edit{{"\tif f := c.flights[key]; f != nil {", "\tif f := c.flights[key]; false && f != nil {"}},
		pkg:   "./pkg/awssm", test: "TestCacheSharesCallsInFlight",
	},
	{
		name:  "the Secret cache keeps the data",
		file:  "pkg/controller/cache.go",
		edits: []edit{{"\t\tDropSecretData(secret)\n\t\tsecret.Type", "\t\t_ = secret\n\t\tsecret.Type"}},
		pkg:   "./pkg/controller", test: "TestTheCacheHoldsNoValue",
	},
	{
		name:  "the informers' watch keeps the data until the transform",
		file:  "pkg/controller/cache.go",
		edits: []edit{{"\t\t\t\t\t_, _ = TransformForCache(e.Object) // cannot fail\n", "\t\t\t\t\t_ = e.Object\n"}},
		pkg:   "./pkg/controller", test: "TestTheCacheHoldsNoValue",
	},
	{
		name:  "the informers' list keeps the data until the transform",
		file:  "pkg/controller/cache.go",
		edits: []edit{{"\t\t\t\t_, err := TransformForCache(obj)\n\t\t\t\treturn err\n", "\t\t\t\treturn nil\n"}},
		pkg:   "./pkg/controller", test: "TestTheCacheHoldsNoValue",
	},
	{
		name:  "the transform not idempotent",
		file:  "pkg/controller/secret.go",
		edits: []edit{{"\tif _, done := secret.Annotations[cachedDataDigest]; done && ", "\tif _, done := secret.Annotations[cachedDataDigest]; false && done && "}},
		pkg:   "./pkg/controller", test: "TestTransformForCacheIsIdempotent",
	},
	{
		name:  "a repair of the marks sends data",
		file:  "pkg/controller/sync.go",
		edits: []edit{{`patch, err := json.Marshal(map[string]any{"metadata": map[string]any{`, `patch, err := json.Marshal(map[string]any{"data": map[string]any{}, "metadata": map[string]any{`}},
		pkg:   "./pkg/controller", test: "TestSyncHandler",
	},
	{
		name:  "a type change reads AWS instead of the Secret's own data",
		file:  "pkg/controller/sync.go",
		edits: []edit{{"\t\tif live.UID == existing.UID && render.DataHash(live.Data) == have.hash {", "\t\tif false && live.UID == existing.UID {"}},
		pkg:   "./pkg/controller", test: "TestSyncHandler",
	},
	{
		name:  "the Secret informer's selector a no-op",
		file:  "pkg/controller/secret.go",
		edits: []edit{{`	o.LabelSelector = ManagedByLabel + "=" + ComponentName`, `	_ = o`}},
		pkg:   "./pkg/controller", test: "TestManagedSecretsOnly",
	},
	{
		name:  "the data hash ignores the values' bytes",
		file:  "pkg/render/mapping.go",
		edits: []edit{{"\t\th.Write(data[key])\n", "\t\t_ = data[key]\n"}},
		pkg:   "./pkg/controller", test: "TestSyncHandler",
	},
	{
		name:  "the Ready message names no version",
		file:  "pkg/controller/secret.go",
		edits: []edit{{"func (r refs) String() string {\n", "func (r refs) String() string {\n\treturn \"\"\n"}},
		pkg:   "./pkg/controller", test: "TestSyncHandler",
	},
	{
		name: "a Namespace update re-syncs whatever changed",
		file: "pkg/controller/controller.go",
		edits: []edit{{"\t\t\t\tif policyChanged(old, new) {\n\t\t\t\t\tc.handleNamespace(new, fairqueue.High)\n\t\t\t\t}",
			"\t\t\t\t_ = policyChanged\n\t\t\t\tc.handleNamespace(new, fairqueue.High)"}},
		pkg: "./pkg/controller", test: "TestNamespaceEventsWakeOnlyForPolicy",
	},
	{
		name:  "the policy check removed",
		file:  "pkg/controller/sync.go",
		edits: []edit{{"\tif !decision.Allowed {", "\tif false && !decision.Allowed {"}},
		pkg:   "./pkg/controller", test: "TestTenancy",
	},
	{
		name:  "transient retries without back-off",
		file:  "pkg/controller/controller.go",
		edits: []edit{{"(50*time.Millisecond, 5*time.Minute)", "(0, 0)"}},
		pkg:   "./pkg/controller", test: "TestDefaultRetryPacing",
	},
	{
		name:  "permanent failures retried at once",
		file:  "pkg/controller/controller.go",
		edits: []edit{{"(30*time.Second, 10*time.Minute)", "(0, 0)"}},
		pkg:   "./pkg/controller", test: "TestDefaultRetryPacing",
	},
	{
		name:  "a role client made on every read",
		file:  "pkg/awssm/roles.go",
		edits: []edit{{"\tif c, ok := r.clients[id]; ok {", "\tif c, ok := r.clients[id]; ok && false {"}},
		pkg:   "./pkg/awssm", test: "TestRolesKeepOneClientPerIdentity",
	},
	{
		name:  "every event is an edit (no priority for edits over the initial list)",
		file:  "pkg/controller/controller.go",
		edits: []edit{{"func priorityOf(bulk bool) fairqueue.Priority {\n", "func priorityOf(bulk bool) fairqueue.Priority {\n\treturn fairqueue.High\n"}},
		pkg:   "./pkg/controller", test: "TestQueueOrder",
	},
	{
		name: "one FIFO queue for every namespace",
		file: "pkg/controller/controller.go",
		edits: []edit{{"\tc.queue = fairqueue.NewRateLimitingQueue(c.order, c.retry, opts.QueueName)",
			"\tc.queue = workqueue.NewTypedRateLimitingQueueWithConfig(c.retry, workqueue.TypedRateLimitingQueueConfig[cache.ObjectName]{Name: opts.QueueName})"}},
		pkg: "./pkg/controller", test: "TestQueueOrder",
	},
	{
		name:  "a failed rendering rendered (and read) again",
		file:  "pkg/controller/failures.go",
		edits: []edit{{"\treturn f.err\n", "\treturn nil\n"}},
		pkg:   "./pkg/controller", test: "TestRenderFailureIsRemembered",
	},
	{
		name: "a template error passes on what the template computed",
		file: "pkg/render/template.go",
		edits: []edit{
			{"\t\t\t\treturn \"\", errMissingKey\n", "\t\t\t\treturn \"\", fmt.Errorf(\"no key %q: %w\", key, errMissingKey)\n"},
			{`return newError(v1alpha1.ReasonInvalidTemplate, "%s: %s", place, ke.kind)`, `return newError(v1alpha1.ReasonInvalidTemplate, "%s: %s (%s)", place, ke.kind, err)`},
		},
		pkg: "./pkg/controller", test: "TestNoFormOfAValueLeaks",
	},
	{
		name:  "printf widths unbounded",
		file:  "pkg/render/template.go",
		edits: []edit{{"\t\t\tif n = n*10 + int(format[i]-'0'); n > maxFormatWidth {", "\t\t\tif n = n*10 + int(format[i]-'0'); false {"}},
		pkg:   "./pkg/render", test: "TestBombs",
	},
	{
		name:  "the range step bound dropped",
		file:  "pkg/render/template.go",
		edits: []edit{{"steps > b.limits.RangeSteps {", "false && steps > b.limits.RangeSteps {"}},
		pkg:   "./pkg/render", test: "TestBombs",
	},
	{
		name:  "comparisons uncharged",
		file:  "pkg/render/template.go",
		edits: []edit{{"\t\tif err := b.compare(min(a.Len(), o.Len())); err != nil {", "\t\tif err := b.compare(0); err != nil {"}},
		pkg:   "./pkg/render", test: "TestBombs",
	},
	{
		name:  "the deadline never checked",
		file:  "pkg/render/render.go",
		edits: []edit{{"\tif b.ctx != nil && b.ctx.Err() != nil {", "\tif false {"}},
		pkg:   "./pkg/render", test: "TestRenderingStopsAtTheDeadline",
	},
	{
		name:  "the spec's bounds not re-checked",
		file:  "pkg/render/render.go",
		edits: []edit{{"\tif n := len(spec.Data); n > limits.DataEntries {", "\tif n := len(spec.Data); false && n > limits.DataEntries {"}},
		pkg:   "./pkg/render", test: "TestSpecBounds",
	},
	{
		name: "a property error quotes the member it reached",
		file: "pkg/render/payload.go",
		edits: []edit{{"\t\t\tif depth == 0 {\n\t\t\t\treturn nil, newError(v1alpha1.ReasonInvalidSecretFormat, \"%s: the secret is not a JSON object\", field)\n\t\t\t}\n\t\t\treturn nil, invalid(depth)",
			"\t\t\tif depth == 0 {\n\t\t\t\treturn nil, newError(v1alpha1.ReasonInvalidSecretFormat, \"%s: the secret is not a JSON object\", field)\n\t\t\t}\n\t\t\treturn nil, newError(v1alpha1.ReasonInvalidSecretFormat, \"%s: member %d holds %q\", field, depth, fmt.Sprint(tok))"}},
		pkg: "./pkg/render", test: "TestDataEntries",
	},
	{
		name:  "the bump tool's concurrency unbounded",
		file:  "pkg/bump/resolve.go",
		edits: []edit{{"\tg.SetLimit(max(concurrency, 1))", "\t_ = concurrency"}},
		pkg:   "./pkg/bump", test: "TestResolveKeepsConcurrencyCallsInFlight",
	},
	{
		name:  "the bump tool skips references it cannot rewrite",
		file:  "cmd/update-aws-secret-ids/main.go",
		edits: []edit{{"\t\t\tcase r.Problem != \"\":\n\t\t\t\tfail(", "\t\t\tcase r.Problem != \"\":\n\t\t\t\tcontinue\n\t\t\t\tfail("}},
		pkg:   "./cmd/update-aws-secret-ids", test: "TestReferencesThatCannotBeBumpedFail",
	},
	{
		name:  "the bump tool always resolves AWSCURRENT",
		file:  "cmd/update-aws-secret-ids/main.go",
		edits: []edit{{"bump.Resolve(ctx, api, ids, opts.stage, opts.concurrency)", "bump.Resolve(ctx, api, ids, \"AWSCURRENT\", opts.concurrency)"}},
		pkg:   "./cmd/update-aws-secret-ids", test: "TestStage",
	},
	{
		name:  "the namespace allow-list not consulted",
		file:  "pkg/tenancy/tenancy.go",
		edits: []edit{{"p.Mode == ModeAllowList && !namespacePatterns.Allows(id)", "false && p.Mode == ModeAllowList && !namespacePatterns.Allows(id)"}},
		pkg:   "./pkg/tenancy", test: "TestDecide",
	},
}
