#!/usr/bin/env bash
# Fetch Kill Bill 0.22.26 (the war) and its servlet container (jetty-runner 9.4.54) from Maven
# Central with `mvn dependency:get` (Maven caches them in ~/.m2), and lay out in
#   ${ODOOSAAS_CACHE:-$HOME/.cache/odoosaas}/killbill/
# killbill.war, jetty-runner.jar, catalog.xsd (the catalog schema of this version) and
# the PostgreSQL DDL in two files: ddl-superuser.sql (killbill-util's ddl-postgresql.sql: an
# event trigger, so a superuser runs it) and ddl-killbill.sql (each module's ddl.sql, run as the
# `killbill` role so the tables are its own). Idempotent through a stamp; `--force` redoes it.
# The last stdout line is the folder. Without mvn or Maven Central it fails with one line.
set -euo pipefail

VERSION=0.22.26
JETTY=9.4.54.v20240208
MODULES="account beatrix catalog entitlement invoice payment subscription tenant usage util"
CACHE="${ODOOSAAS_CACHE:-$HOME/.cache/odoosaas}"
OUT="$CACHE/killbill"
STAMP="$OUT/.fetched"
WANT="killbill $VERSION jetty-runner $JETTY"
M2="$HOME/.m2/repository"
WAR="$M2/org/kill-bill/billing/killbill-profiles-killbill/$VERSION/killbill-profiles-killbill-$VERSION.war"
RUNNER="$M2/org/eclipse/jetty/jetty-runner/$JETTY/jetty-runner-$JETTY.jar"

FORCE=0
[[ "${1:-}" == "--force" ]] && FORCE=1

up_to_date() {
    [[ $FORCE == 0 && -f "$STAMP" && "$(cat "$STAMP")" == "$WANT" ]]
}
if up_to_date; then
    echo "$OUT"
    exit 0
fi

mkdir -p "$OUT"
# Serialize concurrent callers: the second waits, then finds the first one's stamp.
exec 9>"$OUT/.lock"
flock 9
if up_to_date; then
    echo "$OUT"
    exit 0
fi

for tool in mvn unzip java; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "fetch.sh: $tool not found (apt-get install maven unzip openjdk-17-jre-headless)" >&2
        exit 1
    fi
done

start=$SECONDS
fetch() {  # ARTIFACT FILE: mvn's own output only when it fails, reduced to one line
    [[ -f "$2" ]] && return 0
    local log
    if ! log="$(mvn -q -B dependency:get -Dartifact="$1" -Dtransitive=false 2>&1)" || [[ ! -f "$2" ]]; then
        local cause
        # mvn's first error line, past its boilerplate ("Failed to execute goal ... :")
        cause="$(sed 's/\x1b\[[0-9;]*m//g' <<<"$log" | grep -m1 '^\[ERROR\] .' \
            | sed -E 's/^\[ERROR\] (Failed to execute goal [^:]*:[^:]*:[^:]*:[^ ]* [^:]*: )?//' | cut -c1-300 || true)"
        echo "fetch.sh: mvn could not fetch $1 from Maven Central${cause:+: $cause}" >&2
        exit 1
    fi
}
fetch "org.kill-bill.billing:killbill-profiles-killbill:$VERSION:war" "$WAR"
fetch "org.eclipse.jetty:jetty-runner:$JETTY" "$RUNNER"

tmp="$(mktemp -d "$OUT/.fetch.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
cp "$WAR" "$tmp/killbill.war"
cp "$RUNNER" "$tmp/jetty-runner.jar"
# The module jars ride inside the war; their DDL inside the jars.
unzip -q -o "$WAR" "WEB-INF/lib/*.jar" -d "$tmp/war"
jar_of() { echo "$tmp/war/WEB-INF/lib/killbill-$1-$VERSION.jar"; }
unzip -p "$(jar_of util)" org/killbill/billing/util/ddl-postgresql.sql > "$tmp/ddl-superuser.sql"
for module in $MODULES; do
    printf -- '-- killbill-%s-%s.jar org/killbill/billing/%s/ddl.sql\n' "$module" "$VERSION" "$module"
    unzip -p "$(jar_of "$module")" "org/killbill/billing/$module/ddl.sql"
    printf '\n'
done > "$tmp/ddl-killbill.sql"
# No jar holds the catalog schema: Kill Bill derives it from its JAXB classes (and checks uploads
# against it); its own generator writes it out.
java -cp "$tmp/war/WEB-INF/lib/*" org.killbill.xmlloader.XMLSchemaGenerator "$tmp" \
    org.killbill.billing.catalog.StandaloneCatalog >&2
mv -f "$tmp/Schema.xsd" "$tmp/catalog.xsd"
for file in killbill.war jetty-runner.jar ddl-superuser.sql ddl-killbill.sql catalog.xsd; do
    [[ -s "$tmp/$file" ]] || { echo "fetch.sh: $file came out empty" >&2; exit 1; }
    mv -f "$tmp/$file" "$OUT/$file"
done
printf '%s\n' "$WANT" > "$STAMP"
echo "fetch.sh: Kill Bill $VERSION and jetty-runner $JETTY ready in $((SECONDS - start))s" >&2
echo "$OUT"
