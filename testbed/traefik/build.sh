#!/usr/bin/env bash
# Build the pinned Traefik binary into $CACHE/bin/traefik.
#
# The version is pinned by go.mod/go.sum beside this script (a module of our
# own that requires github.com/traefik/traefik/v3). Idempotent: when
# $CACHE/bin/traefik exists and $CACHE/bin/traefik.version holds the pinned
# version, nothing is done. The last stdout line is the binary path.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="${ODOOSAAS_CACHE:-$HOME/.cache/odoosaas}"
BIN="$CACHE/bin/traefik"
STAMP="$CACHE/bin/traefik.version"
MODULE="github.com/traefik/traefik/v3"

# Pinned version, read from our go.mod (single source of truth).
VERSION="$(awk -v m="$MODULE" '$1 == "require" && $2 == m {print $3} $1 == m {print $2}' "$HERE/go.mod" | head -n1)"
if [[ -z "$VERSION" ]]; then
    echo "build.sh: cannot read the $MODULE version from $HERE/go.mod" >&2
    exit 1
fi

if [[ -x "$BIN" && -f "$STAMP" && "$(cat "$STAMP")" == "$VERSION" ]]; then
    echo "$BIN"
    exit 0
fi

if ! command -v go >/dev/null 2>&1; then
    if [[ -x /usr/local/go/bin/go ]]; then
        export PATH="/usr/local/go/bin:$PATH"
    else
        echo "build.sh: go not found (Go >= 1.26 is needed)" >&2
        exit 1
    fi
fi

mkdir -p "$CACHE/bin"
echo "build.sh: building traefik $VERSION (this takes a few minutes from scratch)" >&2

tmp="$BIN.tmp.$$"
trap 'rm -f "$tmp"' EXIT

cd "$HERE"
# go.mod and go.sum are complete: -mod=readonly makes a stale checkout fail
# loudly instead of silently editing them. Modules not yet in the module cache
# are downloaded from the Go module proxy and checked against go.sum.
CGO_ENABLED=0 GOFLAGS="${GOFLAGS:-} -mod=readonly -buildvcs=false" \
    go build -trimpath -o "$tmp" \
    -ldflags "-s -w -X $MODULE/pkg/version.Version=$VERSION -X $MODULE/pkg/version.Codename=odoosaas-testbed" \
    "$MODULE/cmd/traefik" >&2

mv -f "$tmp" "$BIN"
printf '%s\n' "$VERSION" > "$STAMP"
echo "$BIN"
