// Module image builds and pushes the controller's OCI image (and the local test node's pause
// image) with no container engine: `make image`, `make pause-image`, `make image-push`. It is its
// own module so that go-containerregistry and its Docker client graph stay out of the
// controller's go.mod.
module github.com/mumoshu/aws-secret-controller/hack/tools/image

go 1.25.0

require (
	github.com/google/go-cmp v0.7.0
	github.com/google/go-containerregistry v0.22.1
)

require (
	github.com/docker/cli v29.7.2+incompatible // indirect
	github.com/docker/docker-credential-helpers v0.9.3 // indirect
	github.com/klauspost/compress v1.19.2 // indirect
	github.com/opencontainers/go-digest v1.0.0 // indirect
	github.com/opencontainers/image-spec v1.1.1 // indirect
	github.com/sirupsen/logrus v1.9.4 // indirect
	golang.org/x/sync v0.22.0 // indirect
	golang.org/x/sys v0.47.0 // indirect
	gotest.tools/v3 v3.5.2 // indirect
)
