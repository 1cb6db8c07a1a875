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

# How long `make test` fuzzes the payload mapping; run `make fuzz FUZZTIME=10m` for longer.
FUZZTIME ?= 10s
# Extra flags for go test, e.g. TESTFLAGS='-run TestSeed -v'.
TESTFLAGS ?=

.PHONY: all build generate verify fmt-check vet test unit e2e fuzz tools demo bench clean

all: build

build: $(BIN)/aws-secret-controller

# Always handed to go build, which knows best whether anything changed.
.PHONY: $(BIN)/aws-secret-controller
$(BIN)/aws-secret-controller:
	$(GO) build -o $@ ./cmd/aws-secret-controller

generate:
	hack/update-codegen.sh

verify: fmt-check
	hack/verify-codegen.sh

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './bin/*')); \
	if [[ -n "$$out" ]]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

# All tests: generated code current, vet clean, unit tests and the e2e suite on a real
# kube-apiserver, etcd and Secrets Manager emulator, all with the race detector, then a short fuzz.
test: verify vet tools build
	AWS_SECRET_CONTROLLER_BIN_DIR=$(BIN) $(GO) test -race -count=1 $(TESTFLAGS) ./...
	$(MAKE) fuzz

unit:
	$(GO) test -race $(TESTFLAGS) $$($(GO) list ./... | grep -v /test/e2e)

e2e: tools build
	AWS_SECRET_CONTROLLER_BIN_DIR=$(BIN) $(GO) test -race -count=1 -v $(TESTFLAGS) ./test/e2e/...

fuzz:
	$(GO) test -run '^$$' -fuzz FuzzPayload -fuzztime $(FUZZTIME) ./pkg/controller

# The real components the e2e tests, the demo and the benchmark run.
tools: $(BIN)/kube-apiserver $(BIN)/etcd $(BIN)/kubectl $(BIN)/kumo

$(BIN)/kube-apiserver: hack/tools/kube/go.mod hack/tools/kube/go.sum
	cd hack/tools/kube && $(GO) build -o $@ -ldflags "$(KUBE_LDFLAGS)" k8s.io/kubernetes/cmd/kube-apiserver

$(BIN)/kubectl: hack/tools/kube/go.mod hack/tools/kube/go.sum
	cd hack/tools/kube && $(GO) build -o $@ -ldflags "$(KUBE_LDFLAGS)" k8s.io/kubernetes/cmd/kubectl

$(BIN)/etcd: hack/tools/kube/go.mod hack/tools/kube/go.sum hack/tools/kube/etcd/main.go
	cd hack/tools/kube && $(GO) build -o $@ ./etcd

$(BIN)/kumo: hack/tools/kumo/go.mod hack/tools/kumo/go.sum
	cd hack/tools/kumo && $(GO) build -o $@ github.com/sivchari/kumo/cmd/kumo

clean:
	rm -rf $(BIN)

# The controller end to end on a local stack, until Ctrl-C.
demo: tools build
	$(GO) build -o $(BIN)/demo ./hack/demo
	$(BIN)/demo --repo $(CURDIR)

# Scale benchmark on the local stack (not part of `make test`): writes docs/benchmarks.md and
# docs/benchmarks.json. Shorter runs: make bench BENCHFLAGS='--objects 1000 --versions 200 --steady 30s'.
BENCHFLAGS ?=
bench: tools build
	$(GO) build -o $(BIN)/bench ./hack/bench
	$(BIN)/bench --repo $(CURDIR) $(BENCHFLAGS)
