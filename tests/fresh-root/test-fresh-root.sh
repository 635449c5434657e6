#!/bin/bash
# The fresh-root stage's own bad input: with no way to fetch packages it
# fails with one line saying so, both when it must make the root and when
# the root comes from the cache; it never skips. A closed loopback port
# stands in for a mirror that cannot be reached.
# usage: test-fresh-root.sh PATH_TO_RUN_FRESH_ROOT
set -euo pipefail
run=$1
dead=http://127.0.0.1:9/debian
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

[ "$(id -u)" -eq 0 ] || { echo "SKIP: needs root"; exit 77; }
command -v mmdebstrap >/dev/null || { echo "SKIP: mmdebstrap is missing"; exit 77; }
fails=0

# expect_no_fetch WHAT ARGS...: exit 1, exactly one line on "could not
# fetch packages", and no PASS or FAIL line (no check ran).
expect_no_fetch() {
	local what=$1 st=0
	shift
	"$run" "$@" >"$tmp/out" 2>&1 || st=$?
	sed 's/^/    /' "$tmp/out"
	if [ $st -ne 1 ]; then
		echo "not ok: $what: exit $st, not 1"
		fails=$((fails + 1))
	elif [ "$(grep -c 'could not fetch packages' "$tmp/out")" -ne 1 ]; then
		echo "not ok: $what: no single 'could not fetch packages' line"
		fails=$((fails + 1))
	elif grep -q '^fresh-root: \(PASS\|FAIL\)' "$tmp/out"; then
		echo "not ok: $what: checks ran without packages"
		fails=$((fails + 1))
	else
		echo "ok: $what"
	fi
}

expect_no_fetch "no mirror to make the root" -c "$tmp/cache" -m "$dead"
[ ! -e "$tmp/cache/debian12-$(dpkg --print-architecture)-minbase.tar" ] ||
	{ echo "not ok: a failed make left a root tarball in the cache"; fails=$((fails + 1)); }

# A cached root (the real one when there is one) with no mirror inside.
cached=${UFFDWP_FRESH_CACHE:-$(cd "$(dirname "$run")/../.." && pwd)/.cache/fresh-root}
tarball=debian12-$(dpkg --print-architecture)-minbase.tar
if [ -s "$cached/$tarball" ]; then
	mkdir -p "$tmp/cache2"
	ln -s "$cached/$tarball" "$tmp/cache2/$tarball"
	expect_no_fetch "no mirror inside a cached root" -c "$tmp/cache2" -m "$dead"
else
	echo "ok: no cached root yet, the second case needs one (skipped)"
fi

st=0
"$run" -x >/dev/null 2>&1 || st=$?
[ $st -eq 2 ] || { echo "not ok: an unknown option exits $st, not 2"; fails=$((fails + 1)); }

[ $fails -eq 0 ]
