#!/usr/bin/env bash
# Build the test bed's Kubernetes binaries into the cache:
#   ${ODOOSAAS_CACHE:-$HOME/.cache/odoosaas}/bin/{kube,kwok}
# kube = etcd (embedded) + kube-apiserver + kube-controller-manager + kube-scheduler
# kwok = sigs.k8s.io/kwok/cmd/kwok, built from the same module (shared deps).
#
# Idempotent: does nothing when both binaries exist and the stamp file matches
# the pinned versions and sources. `build.sh --force` rebuilds anyway.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="${ODOOSAAS_CACHE:-$HOME/.cache/odoosaas}"
BIN="$CACHE/bin"
STAMP="$BIN/.k8s-testbed.stamp"

# Pinned versions (must agree with go.mod; checked below).
K8S_VERSION=v1.36.3
ETCD_VERSION=v3.6.8
KWOK_VERSION=v0.8.0

FORCE=0
[[ "${1:-}" == "--force" ]] && FORCE=1

cd "$HERE"
for pin in "k8s.io/kubernetes $K8S_VERSION" "go.etcd.io/etcd/server/v3 $ETCD_VERSION" "sigs.k8s.io/kwok $KWOK_VERSION"; do
  if ! grep -qE "^[[:space:]]*${pin}\$" go.mod; then
    echo "build.sh: go.mod does not pin '$pin'" >&2
    exit 1
  fi
done

srcsum="$(cat go.mod go.sum cmd/kube/*.go build.sh | sha256sum | cut -c1-16)"
want="k8s=$K8S_VERSION etcd=$ETCD_VERSION kwok=$KWOK_VERSION src=$srcsum"

up_to_date() {
  [[ $FORCE == 0 && -x "$BIN/kube" && -x "$BIN/kwok" && -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]]
}
if up_to_date; then
  echo "build.sh: up to date ($want) in $BIN"
  exit 0
fi

mkdir -p "$BIN"
# Serialize concurrent callers (e.g. parallel test workers): the second one
# waits, then finds the stamp written by the first.
exec 9>"$BIN/.k8s-testbed.lock"
flock 9
if up_to_date; then
  echo "build.sh: up to date ($want) in $BIN (built by a concurrent run)"
  exit 0
fi

command -v go >/dev/null || { echo "build.sh: go not found in PATH" >&2; exit 1; }
gov="$(go env GOVERSION)"
case "$gov" in
  go1.2[6-9]*|go1.[3-9]*) ;;
  *) echo "build.sh: need Go >= 1.26 (go.mod 'go 1.26.0'), have $gov" >&2; exit 1 ;;
esac

tmp="$(mktemp -d "$BIN/.build.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

# Stamp the Kubernetes version into the binaries like the upstream release
# build does; otherwise /version reports v0.0.0-master.
version_ldflags() {
  local minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"
  local pkg
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    printf -- '-X %s.gitVersion=%s -X %s.gitMajor=1 -X %s.gitMinor=%s -X %s.gitTreeState=clean ' \
      "$pkg" "$K8S_VERSION" "$pkg" "$pkg" "$minor" "$pkg"
  done
}

start=$SECONDS
echo "build.sh: building kube + kwok ($want) with $gov ..."
# -mod=readonly: go.mod/go.sum are committed complete; never tidy at build time.
# GOTOOLCHAIN=local: never fetch another toolchain.
GOTOOLCHAIN=local GOFLAGS="${GOFLAGS:-} -mod=readonly -buildvcs=false" \
  go build -trimpath -ldflags="-s -w $(version_ldflags)" -o "$tmp/" ./cmd/kube sigs.k8s.io/kwok/cmd/kwok
mv -f "$tmp/kube" "$BIN/kube"
mv -f "$tmp/kwok" "$BIN/kwok"
echo "$want" > "$STAMP"
echo "build.sh: done in $((SECONDS - start))s -> $BIN/kube, $BIN/kwok"
