#!/usr/bin/env bash
# Installs the released update-aws-secret-ids for this runner (RUNNER_OS, RUNNER_ARCH), checks its
# SHA-256 against the release's SHA256SUMS, and runs it with UPDATE_AWS_SECRET_IDS_ARGS. Tested by
# cmd/update-aws-secret-ids TestTheActionInstallsAndRuns against a local server
# (UPDATE_AWS_SECRET_IDS_BASE_URL).
set -o errexit -o nounset -o pipefail

version=${UPDATE_AWS_SECRET_IDS_VERSION:?the action needs a version}
base=${UPDATE_AWS_SECRET_IDS_BASE_URL:-https://github.com/mumoshu/aws-secret-controller/releases/download}

case "${RUNNER_OS:-Linux}" in
  Linux) os=linux ;;
  macOS) os=darwin ;;
  Windows) os=windows ;;
  *) echo "update-aws-secret-ids: no release for RUNNER_OS=$RUNNER_OS" >&2; exit 2 ;;
esac
case "${RUNNER_ARCH:-X64}" in
  X64) arch=amd64 ;;
  ARM64) arch=arm64 ;;
  *) echo "update-aws-secret-ids: no release for RUNNER_ARCH=$RUNNER_ARCH" >&2; exit 2 ;;
esac
name=update-aws-secret-ids_${os}_${arch}
[[ $os == windows ]] && name+=.exe

dir=$(mktemp -d)
curl --fail --silent --show-error --location --output "$dir/$name" "$base/$version/$name"
curl --fail --silent --show-error --location --output "$dir/SHA256SUMS" "$base/$version/SHA256SUMS"
want=$(awk -v n="$name" '$2 == n {print $1}' "$dir/SHA256SUMS")
if command -v sha256sum >/dev/null; then
  got=$(sha256sum "$dir/$name" | awk '{print $1}')
else
  got=$(shasum -a 256 "$dir/$name" | awk '{print $1}') # macOS
fi
if [[ -z $want || $want != "$got" ]]; then
  echo "update-aws-secret-ids: $name does not match the release's SHA256SUMS (want ${want:-none}, got $got)" >&2
  exit 2
fi
chmod +x "$dir/$name"

read -r -a args <<< "${UPDATE_AWS_SECRET_IDS_ARGS:-.}"
exec "$dir/$name" "${args[@]}"
