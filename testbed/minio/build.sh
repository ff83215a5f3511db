#!/usr/bin/env bash
# Install MinIO, the S3 server the backup tests run against, into
#   ${ODOOSAAS_CACHE:-$HOME/.cache/odoosaas}/bin/minio
# from its Go module through the Go module proxy. MinIO's release tags are not semver,
# so the module is pinned at a pseudo-version.
# LICENCE: MinIO is AGPL-3.0. It is a TEST dependency only: it is never shipped, linked,
# vendored or started by the product; only the tests (tests/s3_env.py) run it.
# Idempotent: when the binary exists and its stamp matches the version, nothing is done.
# The last stdout line is the binary path. `build.sh --force` reinstalls anyway.
set -euo pipefail

MODULE=github.com/minio/minio
VERSION=v0.0.0-20260212201848-7aac2a2c5b7c
CACHE="${ODOOSAAS_CACHE:-$HOME/.cache/odoosaas}"
BIN="$CACHE/bin/minio"
STAMP="$CACHE/bin/minio.version"
want="$MODULE@$VERSION"

FORCE=0
[[ "${1:-}" == "--force" ]] && FORCE=1

up_to_date() {
    [[ $FORCE == 0 && -x "$BIN" && -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]]
}
if up_to_date; then
    echo "$BIN"
    exit 0
fi

mkdir -p "$CACHE/bin"
# Serialize concurrent callers: the second waits, then finds the first one's stamp.
exec 9>"$CACHE/bin/.minio.lock"
flock 9
if up_to_date; then
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

tmp="$(mktemp -d "$CACHE/bin/.minio.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
start=$SECONDS
echo "build.sh: installing $want (2-4 minutes on 2 cores; more when the Go module cache is cold)" >&2
# Outside any module, so `go install MODULE@VERSION` uses MinIO's own go.mod and go.sum.
# GOTOOLCHAIN=local never downloads another toolchain.
cd "$tmp"
if ! GOBIN="$tmp" CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS="${GOFLAGS:-} -buildvcs=false" \
        go install -trimpath -ldflags "-s -w" "$want" >"$tmp/install.log" 2>&1; then
    echo "build.sh: cannot install $want from $(go env GOPROXY) (log: $(grep -m1 -iE 'error|go: ' "$tmp/install.log" || tail -n1 "$tmp/install.log"))" >&2
    exit 1
fi
mv -f "$tmp/minio" "$BIN"
printf '%s\n' "$want" > "$STAMP"
echo "build.sh: done in $((SECONDS - start))s" >&2
echo "$BIN"
