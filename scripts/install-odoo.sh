#!/usr/bin/env bash
# Installs Odoo 18.0 for the local driver: the source tree in $CACHE/odoo-18.0/ and its own
# virtual environment in $CACHE/odoo-18.0/.venv/ (Odoo's pins conflict with the platform's).
#
# The source is ODOOSAAS_ODOO_SOURCE: a tarball (the vendored odoo-18.0.tar.xz) or a folder
# holding an upstream checkout (git clone -b 18.0 --depth 1 https://github.com/odoo/odoo).
# Default: ../shared/vendor/odoo-18.0.tar.xz beside the repository, when it exists.
# Done once: a stamp file names the source and requirements installed; later runs return at once.
# Without any source: one line saying so, and exit 1, unless ODOOSAAS_LOCAL_FALLBACK_APP is set
# (the platform then runs that app, e.g. `sample`, when asked for Odoo).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${ODOOSAAS_CACHE:-$HOME/.cache/odoosaas}"
DEST="$CACHE/odoo-18.0"
VENDOR="$ROOT/../shared/vendor"
SOURCE="${ODOOSAAS_ODOO_SOURCE:-}"
[[ -z "$SOURCE" && -e "$VENDOR/odoo-18.0.tar.xz" ]] && SOURCE="$VENDOR/odoo-18.0.tar.xz"

if [[ -z "$SOURCE" || ! -e "$SOURCE" ]]; then
    if [[ -f "$DEST/.installed" ]]; then exit 0; fi   # installed earlier from a source now gone
    msg="install-odoo: no Odoo source${SOURCE:+ at $SOURCE}: set ODOOSAAS_ODOO_SOURCE to an Odoo 18.0 checkout or tarball (see README, 'Odoo')"
    if [[ -n "${ODOOSAAS_LOCAL_FALLBACK_APP:-}" ]]; then
        echo "$msg; running the '$ODOOSAAS_LOCAL_FALLBACK_APP' app instead (ODOOSAAS_LOCAL_FALLBACK_APP)." >&2
        exit 0
    fi
    echo "$msg, or ODOOSAAS_LOCAL_FALLBACK_APP=sample to run the sample app instead." >&2
    exit 1
fi
SOURCE="$(cd "$(dirname "$SOURCE")" && pwd)/$(basename "$SOURCE")"

# Requirements: the vendored ones for Python 3.11 when present beside the source, else the tree's
# own (psycopg2 swapped for its binary wheel, python-ldap dropped: both need compilers).
REQS="$(dirname "$SOURCE")/odoo-18.0-requirements-py311.txt"
CONSTRAINTS="$(dirname "$SOURCE")/odoo-18.0-build-constraints.txt"
PYTHON="${ODOOSAAS_ODOO_PYTHON:-$(command -v python3.11 || command -v python3)}"

identity() {   # what the stamp records: the source (size and time), the requirements, the Python
    stat -c '%n %s %Y' "$SOURCE"
    [[ -f "$REQS" ]] && sha1sum "$REQS" | cut -c1-40
    "$PYTHON" -c 'import sys; print(sys.version.split()[0])'
}
WANT="$(identity)"
installed() { [[ -f "$DEST/.installed" && "$(cat "$DEST/.installed")" == "$WANT" ]]; }
installed && exit 0
# One install at a time: `make` starts one in the background early and waits for it here later.
mkdir -p "$CACHE"
exec 9>"$CACHE/.odoo-install.lock"
flock 9
installed && exit 0

echo "install-odoo: installing Odoo from $SOURCE into $DEST (about a minute, once)" >&2
STAGE="$DEST.tmp.$$"
trap 'rm -rf "$STAGE"' EXIT
mkdir -p "$STAGE"
if [[ -d "$SOURCE" ]]; then
    tar -C "$SOURCE" --exclude=.git --exclude=.venv --exclude=.installed -cf - . | tar -C "$STAGE" -xf -
else
    tar -C "$STAGE" --strip-components=1 -xf "$SOURCE"
fi
[[ -f "$STAGE/odoo-bin" ]] && chmod 0755 "$STAGE/odoo-bin" || { echo "install-odoo: $SOURCE holds no odoo-bin" >&2; exit 1; }
if [[ ! -f "$REQS" ]]; then
    REQS="$STAGE/requirements-local.txt"
    sed -e 's/^psycopg2==/psycopg2-binary==/' -e '/^python-ldap/d' "$STAGE/requirements.txt" > "$REQS"
fi
if [[ ! -f "$CONSTRAINTS" ]]; then
    CONSTRAINTS="$STAGE/build-constraints.txt"
    echo 'setuptools<70' > "$CONSTRAINTS"
fi

# The venv's scripts name their interpreter by path: move the tree first, build the venv in place
# (the stamp comes last, so an interrupted install is redone).
rm -rf "$DEST"
mv "$STAGE" "$DEST"
trap - EXIT
"$PYTHON" -m venv "$DEST/.venv"
# The constraints reach the isolated sdist builds (cbor2 needs setuptools<70): PIP_CONSTRAINT for
# pip < 25.3, PIP_BUILD_CONSTRAINT after.
PIP_CONSTRAINT="${CONSTRAINTS/$STAGE/$DEST}" PIP_BUILD_CONSTRAINT="${CONSTRAINTS/$STAGE/$DEST}" \
    "$DEST/.venv/bin/pip" --disable-pip-version-check install -q --prefer-binary -r "${REQS/$STAGE/$DEST}"
"$DEST/.venv/bin/python" -c 'import lxml, psycopg2, werkzeug, passlib' \
    || { echo "install-odoo: the Odoo virtual environment is broken" >&2; exit 1; }
printf '%s\n' "$WANT" > "$DEST/.installed"
echo "install-odoo: Odoo installed: $DEST/odoo-bin" >&2
