// Module kumo builds the Secrets Manager emulator (github.com/sivchari/kumo, pinned below) that
// e2e tests, benchmarks and `make demo` run, with only the services they use (main.go). It is its
// own module so that its AWS SDK graph never moves the versions kube-apiserver is built with.
// Its path lies under kumo's own so that Go lets main.go import kumo's internal packages (the
// server and the two services): kumo offers no other way to choose its services.
module github.com/sivchari/kumo/cmd/kumo-secretsmanager

go 1.26.0

require github.com/sivchari/kumo v0.33.1

require (
	github.com/fxamacker/cbor/v2 v2.9.0 // indirect
	github.com/google/uuid v1.6.0 // indirect
	github.com/x448/float16 v0.8.4 // indirect
)
