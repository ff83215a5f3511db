#!/usr/bin/env bash
# Build Supabase Auth (GoTrue) from its vendored source into
#   ${ODOOSAAS_CACHE:-$HOME/.cache/odoosaas}/bin/supabase-auth
# The Go module proxy refuses github.com/supabase/auth, so the source comes from
# a tarball: $SUPABASE_AUTH_SRC, default ../shared/vendor/supabase-auth-2.196.0.tar.gz
# (relative to the repository root). Idempotent: when the binary exists and its
# stamp matches the tarball's checksum, nothing is done. The last stdout line is
# the binary path. `build.sh --force` rebuilds anyway.
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

if [[ ! -f "$SRC" ]]; then
    echo "build.sh: Supabase Auth source missing at $SRC: git clone --branch v$VERSION https://github.com/supabase/auth and tar -czf it there (or set SUPABASE_AUTH_SRC)" >&2
    exit 1
fi

# The stamp ties the binary to the version and the exact tarball.
want="v$VERSION $(sha256sum "$SRC" | cut -c1-16)"
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
tar -xzf "$SRC" -C "$tmp"
srcdir="$(dirname "$(find "$tmp" -maxdepth 2 -name go.mod | head -n1)")"
cd "$srcdir"
# The tarball's go.mod asks for Go 1.26.5; GOTOOLCHAIN=local never downloads another toolchain.
CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS="${GOFLAGS:-} -mod=readonly -buildvcs=false" \
    go build -trimpath -ldflags "-s -w -X github.com/supabase/auth/internal/utilities.Version=$VERSION" \
    -o "$tmp/supabase-auth" . >&2
mv -f "$tmp/supabase-auth" "$BIN"
printf '%s\n' "$want" > "$STAMP"
echo "build.sh: done in $((SECONDS - start))s" >&2
echo "$BIN"
