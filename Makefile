# aws-secret-controller. Everything a target needs is built from the Go module proxy at the
# versions pinned in go.mod and hack/tools/*/go.mod, into bin/ (git-ignored). Targets skip work
# that is already done.

SHELL := /usr/bin/env bash -o errexit -o nounset -o pipefail
BIN := $(CURDIR)/bin
GO ?= go

# Kubernetes release the control plane is built from; client-go is the matching v0.34.x.
KUBE_VERSION := v1.34.2
KUBE_LDFLAGS := -X k8s.io/component-base/version.gitVersion=$(KUBE_VERSION) \
	-X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=34

# How long `make fuzz` fuzzes each target (the payload, the mapping, the version bump's rewrite).
# `make test` runs their seed corpora as tests but does not fuzz: the fuzzing build instruments
# every dependency, which cost 4 min 45 s of a cold CI run.
FUZZTIME ?= 10s
# Extra flags for go test, e.g. TESTFLAGS='-run TestSeed -v'.
TESTFLAGS ?=

# What `make build` and `make image` stamp into the binary (--version) and the image's labels;
# `make image-push` pushes $(IMAGE):$(VERSION).
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
IMAGE ?= ghcr.io/mumoshu/aws-secret-controller
# Where `make chart-push` pushes the Helm chart.
CHART_REPO ?= oci://ghcr.io/mumoshu/charts
VERSION_LDFLAGS = -X main.version=$(VERSION) -X main.commit=$(COMMIT)

.PHONY: all build generate verify fmt-check vet test unit e2e alerts-test fuzz tools node-tools node-packages demo demo-cluster bench faults mutate clean

all: build

build: $(BIN)/aws-secret-controller $(BIN)/update-aws-secret-ids

# Always handed to go build, which knows best whether anything changed. Static and -trimpath,
# as the image and the bump tool's release binaries are built, so that those builds reuse every
# package compiled here (a cold `make test` compiles the dependencies once, not twice). The tools
# under hack/tools are built the same way: a package compiled with the same flags, at the same
# version, against the same dependencies is compiled once for all of them. For that, the kube
# module requires the versions of the modules it shares with this one, and the helm module those
# it shares with the prometheus module (hack/tools/modules_test.go keeps them so).
STATIC_BUILD := CGO_ENABLED=0 $(GO) build -trimpath
.PHONY: $(BIN)/aws-secret-controller $(BIN)/update-aws-secret-ids
$(BIN)/aws-secret-controller:
	$(STATIC_BUILD) -ldflags "$(VERSION_LDFLAGS)" -o $@ ./cmd/aws-secret-controller

# The tool that bumps pinned versionIds in Git (docs/bumping.md).
$(BIN)/update-aws-secret-ids:
	$(STATIC_BUILD) -o $@ ./cmd/update-aws-secret-ids

# Release binaries of the bump tool, for the composite action actions/update-aws-secret-ids and
# for people who do not build from source: $(BIN)/release/update-aws-secret-ids_<os>_<arch>[.exe]
# and SHA256SUMS. The release workflow builds every platform; TestReleaseBinaries the host's.
BUMP_PLATFORMS ?= linux/amd64 linux/arm64 darwin/amd64 darwin/arm64 windows/amd64 windows/arm64
.PHONY: bump-binaries
bump-binaries:
	rm -rf $(BIN)/release && mkdir -p $(BIN)/release
	for p in $(BUMP_PLATFORMS); do \
		os=$${p%/*}; arch=$${p#*/}; ext=; if [[ $$os == windows ]]; then ext=.exe; fi; \
		CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch $(GO) build -trimpath -o $(BIN)/release/update-aws-secret-ids_$${os}_$${arch}$$ext ./cmd/update-aws-secret-ids || exit 1; \
	done
	cd $(BIN)/release && sha256sum update-aws-secret-ids_* > SHA256SUMS

# The controller's OCI image for linux/amd64 and linux/arm64, built with no container engine by
# hack/tools/image (which stamps the binary as VERSION_LDFLAGS does): an OCI layout tarball named
# $(IMAGE):$(VERSION), for `ctr images import` or `docker load`. Rebuilt every time, like the
# binary; go build skips what is current.
.PHONY: image pause-image image-push image-test $(BIN)/aws-secret-controller-image.tar
image: $(BIN)/aws-secret-controller-image.tar

# IMAGE_PLATFORMS: `make test` builds the host's only (the node runs it; the image tool's test
# checks a two-platform index on a small program), the release both.
IMAGE_PLATFORMS ?= linux/amd64,linux/arm64
$(BIN)/aws-secret-controller-image.tar:
	cd hack/tools/image && $(GO) run . build --repo $(CURDIR) --ref $(IMAGE):$(VERSION) \
		--version $(VERSION) --commit $(COMMIT) --platforms $(IMAGE_PLATFORMS) --out $@

# The sandbox ("pause") image that the local test node runs Pods in: registry.k8s.io/pause:3.10.
pause-image: $(BIN)/pause-image.tar

$(BIN)/pause-image.tar: $(wildcard hack/tools/image/*.go hack/tools/image/pause/*.go) hack/tools/image/go.mod hack/tools/image/go.sum
	cd hack/tools/image && $(GO) run . pause --out $@

# The application image the node tests run next to the controller (test/node/testapp), for the
# host's platform.
.PHONY: testapp-image
testapp-image:
	cd hack/tools/image && $(GO) run . build --repo $(CURDIR) --pkg ./test/node/testapp \
		--ref localhost/aws-secret-controller-testapp:e2e --platforms linux/$$($(GO) env GOARCH) --out $(BIN)/testapp-image.tar

# Pushes the image to $(IMAGE):$(VERSION) with the credentials of `docker login`, and writes the
# index's digest to $(BIN)/image-digest for the release to sign and attest.
image-push: image
	cd hack/tools/image && $(GO) run . push --in $(BIN)/aws-secret-controller-image.tar --ref $(IMAGE):$(VERSION) \
		--digest-file $(BIN)/image-digest

# The image tool's tests: they build the image for both platforms and push it to a registry in
# the test process, and run `make chart-push` against such a registry.
image-test: $(BIN)/helm
	cd hack/tools/image && AWS_SECRET_CONTROLLER_BIN_DIR=$(BIN) $(GO) test -count=1 $(TESTFLAGS) ./...

generate:
	hack/update-codegen.sh

verify: fmt-check
	hack/verify-codegen.sh

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './bin/*')); \
	if [[ -n "$$out" ]]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

# With the build's flags (static, -trimpath), so that vet reuses the packages `make build`
# compiles instead of compiling every dependency a second time.
vet:
	CGO_ENABLED=0 $(GO) vet -trimpath ./...

# All tests: generated code current, vet clean, unit tests, the e2e suite on a real
# kube-apiserver, etcd and Secrets Manager emulator, and the node suite (the image, installed
# with the shipped manifests, as Pods on a real kubelet and containerd), all with the race
# detector (the fuzz targets' seed corpora included); the alerts, evaluated by promtool; the image
# tool's tests.
test: verify vet lint-workflows kube-score node-tools build sbom pause-image testapp-image $(BIN)/promtool
	$(MAKE) image IMAGE_PLATFORMS=linux/$$($(GO) env GOARCH)
	AWS_SECRET_CONTROLLER_BIN_DIR=$(BIN) $(GO) test -race -count=1 -timeout 30m $(TESTFLAGS) ./...
	$(MAKE) image-test

# -short skips the tests that start a stack (pkg/testenv, hack/demo, hack/faults).
unit:
	$(GO) test -race -short $(TESTFLAGS) $$($(GO) list ./... | grep -v -e /test/e2e -e /test/node)

e2e: tools build
	AWS_SECRET_CONTROLLER_BIN_DIR=$(BIN) $(GO) test -race -count=1 -v $(TESTFLAGS) ./test/e2e/...

fuzz:
	$(GO) test -run '^$$' -fuzz FuzzPayload -fuzztime $(FUZZTIME) ./pkg/render
	$(GO) test -run '^$$' -fuzz FuzzMapping -fuzztime $(FUZZTIME) ./pkg/render
	$(GO) test -run '^$$' -fuzz FuzzRewrite -fuzztime $(FUZZTIME) ./pkg/bump

# The real components the e2e tests, the demo and the benchmark run.
tools: $(BIN)/kube-apiserver $(BIN)/etcd $(BIN)/kubectl $(BIN)/kumo $(BIN)/helm $(BIN)/actionlint

# A real node for the tests that run the shipped manifests as Pods (pkg/testenv Options.Node):
# kubelet, kube-controller-manager and kube-scheduler from the same Kubernetes as kube-apiserver,
# and containerd, runc and the CNI plugins from Debian's packages (installed here when missing;
# that needs root, as the node itself does).
NODE_PACKAGES := containerd runc containernetworking-plugins
node-tools: tools $(BIN)/kubelet $(BIN)/kube-controller-manager $(BIN)/kube-scheduler node-packages

node-packages:
	@if ! command -v containerd >/dev/null || ! command -v runc >/dev/null || [[ ! -x /usr/lib/cni/bridge ]]; then \
		echo "installing $(NODE_PACKAGES)"; \
		sudo=; [[ $$(id -u) == 0 ]] || sudo=sudo; \
		export DEBIAN_FRONTEND=noninteractive; \
		$$sudo apt-get install -y --no-install-recommends $(NODE_PACKAGES) || \
			{ $$sudo apt-get update && $$sudo apt-get install -y --no-install-recommends $(NODE_PACKAGES); }; \
	fi

$(BIN)/kubelet $(BIN)/kube-controller-manager $(BIN)/kube-scheduler: hack/tools/kube/go.mod hack/tools/kube/go.sum
	cd hack/tools/kube && $(STATIC_BUILD) -o $@ -ldflags "$(KUBE_LDFLAGS)" k8s.io/kubernetes/cmd/$(notdir $@)

$(BIN)/kube-apiserver: hack/tools/kube/go.mod hack/tools/kube/go.sum
	cd hack/tools/kube && $(STATIC_BUILD) -o $@ -ldflags "$(KUBE_LDFLAGS)" k8s.io/kubernetes/cmd/kube-apiserver

$(BIN)/kubectl: hack/tools/kube/go.mod hack/tools/kube/go.sum
	cd hack/tools/kube && $(STATIC_BUILD) -o $@ -ldflags "$(KUBE_LDFLAGS)" k8s.io/kubernetes/cmd/kubectl

$(BIN)/etcd: hack/tools/kube/go.mod hack/tools/kube/go.sum hack/tools/kube/etcd/main.go
	cd hack/tools/kube && $(STATIC_BUILD) -o $@ ./etcd

# The Helm chart, packaged with the release's version (tag vX.Y.Z: chart X.Y.Z, appVersion vX.Y.Z,
# so its default image is the release's, as is the image Artifact Hub lists) and pushed to $(CHART_REPO). Log in first with
# `bin/helm registry login ghcr.io`. Writes the pushed manifest's digest to $(BIN)/chart-digest
# for the release to sign and attest. HELM_PUSH_FLAGS: e.g. --plain-http for a test registry.
HELM_PUSH_FLAGS ?=
.PHONY: chart-push
chart-push: $(BIN)/helm
	rm -rf $(BIN)/chart-src && mkdir -p $(BIN)/chart-src && cp -R charts/aws-secret-controller $(BIN)/chart-src/
	sed -i 's|^      image: ghcr.io/mumoshu/aws-secret-controller:.*|      image: $(IMAGE):$(VERSION)|' $(BIN)/chart-src/aws-secret-controller/Chart.yaml
	$(BIN)/helm package $(BIN)/chart-src/aws-secret-controller --version $(VERSION:v%=%) --app-version $(VERSION) --destination $(BIN)/charts
	$(BIN)/helm push $(HELM_PUSH_FLAGS) $(BIN)/charts/aws-secret-controller-$(VERSION:v%=%).tgz $(CHART_REPO) 2>&1 | tee $(BIN)/chart-push.log
	awk '$$1 == "Digest:" { print $$2 }' $(BIN)/chart-push.log > $(BIN)/chart-digest
	grep -q '^sha256:[0-9a-f]\{64\}$$' $(BIN)/chart-digest

# Helm, for the chart's tests (lint, template, install on the test node) and the release.
# As Helm's own Makefile does, the Kubernetes version `helm template` and `helm lint` assume is
# that of the Kubernetes modules Helm is built with (1.37): unset, it is 1.20, which the chart's
# kubeVersion refuses.
HELM_LDFLAGS := $(foreach p,chartutil lint/rules,-X helm.sh/helm/v3/pkg/$(p).k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/$(p).k8sVersionMinor=37)
$(BIN)/helm: hack/tools/helm/go.mod hack/tools/helm/go.sum Makefile
	cd hack/tools/helm && $(STATIC_BUILD) -ldflags "$(HELM_LDFLAGS)" -o $@ helm.sh/helm/v3/cmd/helm

# actionlint checks .github/workflows (about 20 s to build cold); test/workflows checks the
# supply-chain rules it does not (actions pinned by commit, no expression inside a script).
$(BIN)/actionlint: hack/tools/actionlint/go.mod hack/tools/actionlint/go.sum
	cd hack/tools/actionlint && $(GO) build -o $@ github.com/rhysd/actionlint/cmd/actionlint

.PHONY: lint-workflows
lint-workflows: $(BIN)/actionlint
	$(BIN)/actionlint .github/workflows/*.yml

# kube-score over what users apply: the kustomize variants and the chart (cluster-wide and
# namespaced), each with its optional NetworkPolicy (kube-score wants one per Pod), scored for the
# oldest Kubernetes the chart supports. Warnings fail it too. Two checks are ignored:
# - container-image-pull-policy wants Always: the image is an immutable release tag, so
#   IfNotPresent gives the same image without a registry pull at every restart (and lets a node
#   run an image loaded by hand, as getting started does).
# - deployment-has-host-podantiaffinity: the replicas are spread over nodes and zones by
#   topologySpreadConstraints (ScheduleAnyway), which kube-score does not read; a hard
#   anti-affinity would leave the standby Pending on a single-node cluster.
KUBE_SCORE_FLAGS := --kubernetes-version v1.29 --exit-one-on-warning --output-format ci \
	--ignore-test container-image-pull-policy --ignore-test deployment-has-host-podantiaffinity
$(BIN)/kube-score: hack/tools/kube-score/go.mod hack/tools/kube-score/go.sum
	cd hack/tools/kube-score && $(GO) build -o $@ github.com/zegl/kube-score/cmd/kube-score

.PHONY: kube-score
kube-score: $(BIN)/kube-score $(BIN)/kubectl $(BIN)/helm
	@set -e; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	for v in manifests manifests/namespaced; do \
		{ $(BIN)/kubectl kustomize $$v; echo ---; $(BIN)/kubectl kustomize manifests/networkpolicy; } > $$tmp/render.yaml; \
		echo "kube-score: kustomize $$v + manifests/networkpolicy"; $(BIN)/kube-score score $(KUBE_SCORE_FLAGS) $$tmp/render.yaml | { grep -v -E "^\[(OK|SKIPPED)\]" || true; }; \
	done; \
	for v in false true; do \
		$(BIN)/helm template asc charts/aws-secret-controller --namespace asc --set networkPolicy.enabled=true \
			--set namespaceScoped=$$v > $$tmp/render.yaml; \
		echo "kube-score: chart, namespaceScoped=$$v, networkPolicy.enabled=true"; $(BIN)/kube-score score $(KUBE_SCORE_FLAGS) $$tmp/render.yaml | { grep -v -E "^\[(OK|SKIPPED)\]" || true; }; \
	done

# The table of values in the chart's README, from values.yaml's comments (hack/chartdoc; its
# test fails when the table is stale).
.PHONY: chart-readme
chart-readme:
	$(GO) run ./hack/chartdoc

# The field table in docs/api.md, from the CRD (hack/apidoc; its test fails when it is stale).
.PHONY: api-docs
api-docs:
	$(GO) run ./hack/apidoc

# The CycloneDX SBOM of the controller's binary (the modules linked into it, from its build
# information), which the release attests to the image; and of the bump tool.
$(BIN)/cyclonedx-gomod: hack/tools/sbom/go.mod hack/tools/sbom/go.sum
	cd hack/tools/sbom && $(GO) build -o $@ github.com/CycloneDX/cyclonedx-gomod/cmd/cyclonedx-gomod

.PHONY: sbom
sbom: $(BIN)/cyclonedx-gomod build
	mkdir -p $(BIN)/sbom
	$(BIN)/cyclonedx-gomod bin -json -version $(VERSION) -output $(BIN)/sbom/aws-secret-controller.cdx.json $(BIN)/aws-secret-controller
	$(BIN)/cyclonedx-gomod bin -json -version $(VERSION) -output $(BIN)/sbom/update-aws-secret-ids.cdx.json $(BIN)/update-aws-secret-ids

# promtool evaluates the alerts (test/e2e TestAlerts), without Prometheus's service discovery
# plugins, which rule tests do not use. It shares Kubernetes' client modules with Helm (see
# STATIC_BUILD).
$(BIN)/promtool: hack/tools/prometheus/go.mod hack/tools/prometheus/go.sum
	cd hack/tools/prometheus && $(STATIC_BUILD) -tags remove_all_sd -o $@ github.com/prometheus/prometheus/cmd/promtool

# Only the alerts, evaluated by promtool against the real controller's series.
alerts-test: tools build $(BIN)/promtool
	AWS_SECRET_CONTROLLER_BIN_DIR=$(BIN) $(GO) test -race -count=1 -v -run 'TestAlerts|TestMonitoringFilesAgree' ./test/e2e/

# kumo's server with only the services the tests use (hack/tools/kumo/main.go).
$(BIN)/kumo: hack/tools/kumo/go.mod hack/tools/kumo/go.sum hack/tools/kumo/main.go
	cd hack/tools/kumo && $(GO) build -o $@ .

clean:
	rm -rf $(BIN)

# The controller end to end on a local stack, until Ctrl-C.
demo: tools build
	$(GO) build -o $(BIN)/demo ./hack/demo
	$(BIN)/demo --repo $(CURDIR)

# The same story with the controller installed as users install it: the image (`make image`),
# applied with the shipped manifests, as two Pods on a local node. Linux and root only.
demo-cluster: node-tools build pause-image
	$(MAKE) image IMAGE_PLATFORMS=linux/$$($(GO) env GOARCH)
	$(GO) build -o $(BIN)/demo ./hack/demo
	$(BIN)/demo --repo $(CURDIR) --cluster

# Scale benchmark on the local stack (not part of `make test`): writes docs/benchmarks.md and
# docs/benchmarks.json. Shorter runs: make bench BENCHFLAGS='--objects 1000 --versions 200 --steady 30s'.
BENCHFLAGS ?=
bench: tools build
	$(GO) build -o $(BIN)/bench ./hack/bench
	$(BIN)/bench --repo $(CURDIR) $(BENCHFLAGS)

# Mutation testing (not part of `make test`): the project's own mutants (hack/mutate/mutants.go),
# each expected to turn a named test red, then gremlins over each package, on a copy of the tree;
# writes docs/mutation.md. Tens of minutes on 2 cores (pkg/controller dominates). Only the
# project mutants: make mutate MUTATEFLAGS='--gremlins='.
MUTATEFLAGS ?=
mutate: $(BIN)/gremlins
	$(GO) run ./hack/mutate --repo $(CURDIR) --gremlins $(BIN)/gremlins $(MUTATEFLAGS)

$(BIN)/gremlins: hack/tools/gremlins/go.mod hack/tools/gremlins/go.sum
	cd hack/tools/gremlins && $(GO) build -o $@ github.com/go-gremlins/gremlins/cmd/gremlins

# Fault suite on the local stack (not part of `make test`, which runs its smoke: TestFaultsSmoke):
# each scenario kills, cuts or slows a dependency under 1,000 AWSSecrets and checks nothing is
# lost; writes docs/reliability.md and docs/reliability.json. About 10 minutes. Shorter runs:
# make faults FAULTSFLAGS='--objects 200 --outage 20s --scenarios 0,2'.
FAULTSFLAGS ?=
faults: tools build
	$(GO) build -o $(BIN)/faults ./hack/faults
	$(BIN)/faults --repo $(CURDIR) $(FAULTSFLAGS)
