#!/usr/bin/env bash
# Build Supabase Auth (GoTrue) from its source into
#   ${ODOOSAAS_CACHE:-$HOME/.cache/odoosaas}/bin/supabase-auth
# The Go module proxy refuses github.com/supabase/auth, so the source comes from
# $SUPABASE_AUTH_SRC: a tarball (default ../shared/vendor/supabase-auth-2.196.0.tar.gz,
# relative to the repository root) or a checkout of the v2.196.0 tag. Idempotent:
# when the binary exists and its stamp matches the source, nothing is done. The
# last stdout line is the binary path. `build.sh --force` rebuilds anyway.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
VERSION=2.196.0
SRC="${SUPABASE_AUTH_SRC:-$ROOT/../shared/vendor/supabase-auth-$VERSION.tar.gz}"
CACHE="${ODOOSAAS_CACHE:-$HOME/.cache/odoosaas}"
BIN="$CACHE/bin/supabase-auth"
STAMP="$CACHE/bin/supabase-auth.version"

FORCE=0
[[ "${1:-}" == "--force" ]] && FORCE=1

if [[ ! -e "$SRC" ]]; then
    echo "build.sh: no Supabase Auth source at $SRC; get it with: git clone --depth 1 --branch v$VERSION https://github.com/supabase/auth and set SUPABASE_AUTH_SRC to that folder" >&2
    exit 1
fi

# The stamp ties the binary to the version and the exact source.
if [[ -d "$SRC" ]]; then
    want="v$VERSION $(cat "$SRC/go.mod" "$SRC/go.sum" | sha256sum | cut -c1-16)"
else
    want="v$VERSION $(sha256sum "$SRC" | cut -c1-16)"
fi
up_to_date() {
    [[ $FORCE == 0 && -x "$BIN" && -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]]
}
if up_to_date; then
    echo "$BIN"
    exit 0
fi

mkdir -p "$CACHE/bin"
# Serialize concurrent callers: the second waits, then finds the first one's stamp.
exec 9>"$CACHE/bin/.supabase-auth.lock"
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

tmp="$(mktemp -d "$CACHE/bin/.supabase-auth.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
start=$SECONDS
echo "build.sh: building supabase-auth v$VERSION (about 2 minutes from scratch)" >&2
if [[ -d "$SRC" ]]; then
    cd "$SRC"
else
    tar -xzf "$SRC" -C "$tmp"
    cd "$(dirname "$(find "$tmp" -maxdepth 2 -name go.mod | head -n1)")"
fi
# The tarball's go.mod asks for Go 1.26.5; GOTOOLCHAIN=local never downloads another toolchain.
CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS="${GOFLAGS:-} -mod=readonly -buildvcs=false" \
    go build -trimpath -ldflags "-s -w -X github.com/supabase/auth/internal/utilities.Version=$VERSION" \
    -o "$tmp/supabase-auth" . >&2
mv -f "$tmp/supabase-auth" "$BIN"
printf '%s\n' "$want" > "$STAMP"
echo "build.sh: done in $((SECONDS - start))s" >&2
echo "$BIN"
