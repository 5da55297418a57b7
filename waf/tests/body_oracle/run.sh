#!/bin/sh
# How the body parsers' expectations were checked: feeds one request to libmodsecurity 3.0.9
# (Debian's libmodsecurity-dev) and prints the values it gives the body-parser variables.
#   waf/tests/body_oracle/run.sh URI CONTENT-TYPE BODY-FILE [COOKIE-HEADER]
# e.g. run.sh / application/json body.json   |   run.sh '/?a=1&b' '' /dev/null 'x=1; y'
# A developer tool, not a test: nothing runs it automatically.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
work=${TMPDIR:-/tmp}/portcullis-body-oracle
mkdir -p "$work"
[ "$work/oracle" -nt "$here/oracle.c" ] || cc "$here/oracle.c" -o "$work/oracle" -lmodsecurity
sed "s|DEBUG_LOG_PATH|$work/debug.log|" "$here/rules.conf" > "$work/rules.conf"
rm -f "$work/debug.log"
"$work/oracle" "$work/rules.conf" "$@" > "$work/out.txt" 2>&1 || true
grep -ao 'Adding request argument.*' "$work/debug.log" || true
grep -ao 'Target value: .*' "$work/debug.log" | grep -v 'Variable: TX\|Variable: REQUEST_HEADERS' || true
