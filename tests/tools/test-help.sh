#!/bin/sh
# Tools suite: every program we ship or show (uffdwp-check, the examples)
# answers --help with its usage on stdout and exit 0, and an unknown
# option with its usage on stderr and exit 2, doing nothing else.
# usage: test-help.sh PROGRAM...
set -u
. "$(dirname "$0")/lib.sh"

for prog in "$@"; do
	name=${prog##*/}
	st=0
	"$prog" --help >"$tmp/out" 2>"$tmp/err" </dev/null || st=$?
	[ $st -eq 0 ] || bad "$name --help exits $st"
	grep -qi '^usage:' "$tmp/out" || bad "$name --help prints no usage on stdout"
	[ ! -s "$tmp/err" ] || bad "$name --help writes to stderr: $(head -n 1 "$tmp/err")"

	st=0
	"$prog" --no-such-option >"$tmp/out" 2>"$tmp/err" </dev/null || st=$?
	[ $st -eq 2 ] || bad "$name --no-such-option exits $st, not 2"
	grep -qi 'usage:' "$tmp/err" || bad "$name --no-such-option prints no usage on stderr"
	[ ! -s "$tmp/out" ] || bad "$name --no-such-option writes to stdout"
	[ $fails -eq 0 ] && echo "ok: $name"
done
[ $fails -eq 0 ]
