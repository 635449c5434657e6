#!/bin/sh
# ABI suite: the shipped library carries no test code. The test hooks
# (libuffdwp/testhooks.h) and race probe A's software model exist only in
# the uffdwp-testing archive that test binaries link; in libuffdwp.so the
# hooks are constant zero and every branch they guard is compiled out.
# The same names must be found in the testing archive, so a pattern that
# matches nothing cannot make this test pass.
# usage: test-no-test-code.sh LIBRARY TESTING_ARCHIVE
set -eu
lib=$1 testing=$2

command -v nm >/dev/null || { echo "SKIP: nm (binutils) is missing"; exit 77; }
command -v strings >/dev/null && command -v ar >/dev/null ||
	{ echo "SKIP: strings or ar (binutils) is missing"; exit 77; }

# Symbols (the full table, hidden and static ones included) and strings
# that only test code has.
symbols='uffdwp_test_hooks|^a_model$|^m_copier_main$|^m_writer_main$'
# (the model's label; the memfd only race probe B's alias variant makes)
texts='the software model
uffdwp-race-b'

syms() { nm --defined-only "$1" 2>/dev/null | awk 'NF == 3 { print $3 }'; }

# A stripped library would pass for the wrong reason.
if ! syms "$lib" | grep -q '^sz_copy_in$'; then
	echo "SKIP: $lib has no symbol table (stripped?)"
	exit 77
fi

fail=0
found=$(syms "$lib" | grep -E "$symbols" || true)
if [ -n "$found" ]; then
	echo "test-only symbols in $lib:" $found
	fail=1
fi
found=$(strings -a "$lib" | grep -F -e "$texts" || true)
if [ -n "$found" ]; then
	echo "test-only strings in $lib: $found"
	fail=1
fi

for s in uffdwp_test_hooks a_model m_copier_main m_writer_main; do
	if ! syms "$testing" | grep -q "^$s\$"; then
		echo "the testing archive lacks $s: the pattern is stale"
		fail=1
	fi
done
# ar p: meson's archives are thin (members stay in their own files).
echo "$texts" | while read -r t; do
	if ! ar p "$testing" | strings -a | grep -qF "$t"; then
		echo "the testing archive lacks \"$t\": the pattern is stale"
		exit 1
	fi
done || fail=1
[ $fail -eq 0 ] && echo "no test code in $(basename "$lib")"
exit $fail
