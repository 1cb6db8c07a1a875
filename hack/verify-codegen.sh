#!/usr/bin/env bash
# Fails when generated code or the CRD is stale: regenerates into a scratch copy of the repository
# and compares it with the checked-in files.
set -o errexit -o nounset -o pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TMP=$(mktemp -d)
trap 'rm -rf "${TMP}"' EXIT

# Only what generation reads and writes; bin/ and other large folders stay behind.
tar -C "${ROOT}" -cf - go.mod go.sum hack/update-codegen.sh hack/boilerplate.go.txt pkg manifests charts | tar -C "${TMP}" -xf -
"${TMP}/hack/update-codegen.sh" >/dev/null

status=0
for dir in pkg/apis pkg/generated manifests/crd charts/aws-secret-controller/crds; do
  if ! diff -Naupr "${ROOT}/${dir}" "${TMP}/${dir}"; then
    status=1
  fi
done
if [[ ${status} -ne 0 ]]; then
  echo "Generated files are out of date: run hack/update-codegen.sh" >&2
  exit 1
fi
echo "Generated files are up to date."
