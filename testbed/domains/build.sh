#!/usr/bin/env bash
# Install the custom-domains test servers from their Go modules into
#   ${ODOOSAAS_CACHE:-$HOME/.cache/odoosaas}/bin/coredns   (DNS: serves the test zones)
#   ${ODOOSAAS_CACHE:-$HOME/.cache/odoosaas}/bin/pebble    (ACME: Let's Encrypt's test CA)
# and copy Pebble's test certificates out of the Go module cache into
#   ${ODOOSAAS_CACHE:-$HOME/.cache/odoosaas}/pebble/  (pebble.minica.pem, the root that signs
#   localhost/cert.pem + localhost/key.pem, which Pebble's own ACME listener presents)
# so the tests need not know the module cache. Idempotent: a stamp per part (the version);
# concurrent callers wait for each other. Stdout: the coredns path, the pebble path, then the
# certificates folder (the last line). `build.sh --force` installs again anyway.
set -euo pipefail

COREDNS_MODULE=github.com/coredns/coredns
COREDNS_VERSION=v1.15.0      # about 95 s to build on 2 cores from a warm module cache
PEBBLE_MODULE=github.com/letsencrypt/pebble/v2
PEBBLE_VERSION=v2.10.3       # seconds
CACHE="${ODOOSAAS_CACHE:-$HOME/.cache/odoosaas}"
CERTS="$CACHE/pebble"

FORCE=0
[[ "${1:-}" == "--force" ]] && FORCE=1

current() {  # current FILE STAMP VERSION: the part is installed at this version
    [[ $FORCE == 0 && -e "$1" && "$(cat "$2" 2>/dev/null)" == "$3" ]]
}
all_current() {
    current "$CACHE/bin/coredns" "$CACHE/bin/coredns.version" "$COREDNS_VERSION" \
        && current "$CACHE/bin/pebble" "$CACHE/bin/pebble.version" "$PEBBLE_VERSION" \
        && current "$CERTS/pebble.minica.pem" "$CERTS/version" "$PEBBLE_VERSION"
}
done_paths() {
    printf '%s\n' "$CACHE/bin/coredns" "$CACHE/bin/pebble" "$CERTS"
    exit 0
}
all_current && done_paths

mkdir -p "$CACHE/bin"
exec 9>"$CACHE/bin/.domains.lock"
flock 9
all_current && done_paths

if ! command -v go >/dev/null 2>&1; then
    if [[ -x /usr/local/go/bin/go ]]; then
        export PATH="/usr/local/go/bin:$PATH"
    else
        echo "build.sh: go not found (Go >= 1.26 is needed: $COREDNS_MODULE@$COREDNS_VERSION asks for it)" >&2
        exit 1
    fi
fi
tmp="$(mktemp -d "$CACHE/bin/.domains.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

install_module() {  # install_module NAME PACKAGE VERSION
    local name="$1" package="$2" version="$3" start=$SECONDS
    current "$CACHE/bin/$name" "$CACHE/bin/$name.version" "$version" && return 0
    echo "build.sh: installing $name $version from the Go module proxy" >&2
    # GOTOOLCHAIN=local: never download another Go toolchain; the module's go.mod pins its dependencies
    if ! CGO_ENABLED=0 GOTOOLCHAIN=local GOBIN="$tmp" GOFLAGS="${GOFLAGS:-} -buildvcs=false" \
            go install -trimpath -ldflags "-s -w" "$package@$version" >&2; then
        echo "build.sh: go install $package@$version failed (is the Go module proxy reachable?)" >&2
        exit 1
    fi
    mv -f "$tmp/$name" "$CACHE/bin/$name"
    printf '%s\n' "$version" > "$CACHE/bin/$name.version"
    echo "build.sh: $name $version in $((SECONDS - start))s" >&2
}
install_module coredns "$COREDNS_MODULE" "$COREDNS_VERSION"
install_module pebble "$PEBBLE_MODULE/cmd/pebble" "$PEBBLE_VERSION"

if ! current "$CERTS/pebble.minica.pem" "$CERTS/version" "$PEBBLE_VERSION"; then
    dir="$(go mod download -json "$PEBBLE_MODULE@$PEBBLE_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
    if [[ -z "$dir" || ! -f "$dir/test/certs/pebble.minica.pem" ]]; then
        echo "build.sh: no test/certs/pebble.minica.pem in the module $PEBBLE_MODULE@$PEBBLE_VERSION" >&2
        exit 1
    fi
    mkdir -p "$tmp/certs/localhost"
    cp "$dir/test/certs/pebble.minica.pem" "$tmp/certs/"
    cp "$dir/test/certs/localhost/cert.pem" "$dir/test/certs/localhost/key.pem" "$tmp/certs/localhost/"
    chmod -R u+w "$tmp/certs"  # the module cache's files are read-only
    chmod 0600 "$tmp/certs/localhost/key.pem"
    printf '%s\n' "$PEBBLE_VERSION" > "$tmp/certs/version"
    rm -rf "$CERTS"
    mv "$tmp/certs" "$CERTS"
fi
done_paths
