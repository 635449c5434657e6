#!/bin/sh
# ABI suite: the shared library exports exactly the global names of the
# version script, each starting with uffdwp_ and bound to a UFFDWP_ node, and
# its soname is libuffdwp.so.0.
# usage: test-symbols.sh LIBRARY VERSION_SCRIPT
set -eu
lib=$1 map=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

command -v nm >/dev/null || { echo "SKIP: nm (binutils) is missing"; exit 77; }

nm -D --defined-only "$lib" | awk '$2 ~ /^[TDBRVW]$/ { print $3 }' |
	grep -v '^UFFDWP_' | sed 's/@.*//' | sort -u >"$tmp/exported"
sed -n '/global:/,/local:/p' "$map" | grep -E '^\s+uffdwp_' |
	tr -d ' \t;' | sort -u >"$tmp/listed"

if ! cmp -s "$tmp/exported" "$tmp/listed"; then
	echo "exported symbols differ from $map (< exported, > listed):"
	diff "$tmp/exported" "$tmp/listed" || true
	exit 1
fi
if grep -v '^uffdwp_' "$tmp/exported"; then
	echo "symbols above lack the uffdwp_ prefix"
	exit 1
fi
unversioned=$(nm -D --defined-only --with-symbol-versions "$lib" 2>/dev/null |
	awk '$2 ~ /^[TDBRVW]$/ && $3 !~ /@@?UFFDWP_/ && $3 !~ /^UFFDWP_/ { print $3 }')
if [ -n "$unversioned" ]; then
	echo "exports without a UFFDWP_ version node: $unversioned"
	exit 1
fi
soname=$(readelf -d "$lib" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
if [ "$soname" != libuffdwp.so.0 ]; then
	echo "soname is '$soname', expected libuffdwp.so.0"
	exit 1
fi
echo "$(wc -l <"$tmp/exported") exports match $map; soname $soname"
