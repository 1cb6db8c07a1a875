#!/usr/bin/env bash
# Regenerates everything generated in this repository from the API types:
# deepcopy, clientset (with fake), listers, informers and applyconfigurations with the pinned
# k8s.io/code-generator's kube_codegen.sh, and the CRD in manifests/crd with the pinned controller-gen,
# copied into the Helm chart's crds/ so that both installs carry the same CRD.
set -o errexit -o nounset -o pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "${ROOT}"
MODULE=$(go list -m)
# `go list -m` does not download: fetch the pinned code-generator first, for fresh machines.
go mod download k8s.io/code-generator
CODEGEN_PKG=$(go list -m -f '{{.Dir}}' k8s.io/code-generator)
if [[ ! -f "${CODEGEN_PKG}/kube_codegen.sh" ]]; then
  echo "kube_codegen.sh not found in k8s.io/code-generator (${CODEGEN_PKG})" >&2
  exit 1
fi

source "${CODEGEN_PKG}/kube_codegen.sh"

kube::codegen::gen_helpers \
    --boilerplate "${ROOT}/hack/boilerplate.go.txt" \
    "${ROOT}/pkg/apis"

kube::codegen::gen_client \
    --with-watch \
    --with-applyconfig \
    --output-dir "${ROOT}/pkg/generated" \
    --output-pkg "${MODULE}/pkg/generated" \
    --boilerplate "${ROOT}/hack/boilerplate.go.txt" \
    "${ROOT}/pkg/apis"

go tool controller-gen crd:crdVersions=v1 \
    paths=./pkg/apis/... \
    output:crd:artifacts:config="${ROOT}/manifests/crd"

mkdir -p "${ROOT}/charts/aws-secret-controller/crds"
cp "${ROOT}/manifests/crd/mumoshu.github.io_awssecrets.yaml" "${ROOT}/charts/aws-secret-controller/crds/"
