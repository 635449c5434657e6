#!/bin/bash
# vm suite: run-vm exits with the guest test's own status, and gives each
# failure of its own a distinct status and a one-line reason: an unknown
# series, missing package lists, a missing binary, a timeout, a panic.
# usage: test-run-vm.sh PATH_TO_RUN_VM
set -uo pipefail
run_vm=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0 passed=0

# expect NAME STATUS PATTERN -- run-vm args...: the exit status must be
# STATUS and the combined output must match PATTERN (grep -E; '-' for a
# test that prints nothing).
expect() {
	local name=$1 want=$2 pattern=$3 got
	shift 4
	"$run_vm" "$@" >"$tmp/raw" 2>&1
	got=$?
	# A guest kernel that crashed while booting (TCG) was booted again:
	# run-vm's notice of it is no output of the program's.
	grep -v '^run-vm: the guest kernel .* while booting, before /init ran (.*): booting again$' \
		"$tmp/raw" >"$tmp/out"
	if [ "$pattern" = - ]; then
		pattern=.
		[ -s "$tmp/out" ] && pattern='^$nothing-expected'
		[ -s "$tmp/out" ] || echo "(no output)" >"$tmp/out"
	fi
	if [ "$got" -ne "$want" ] || ! grep -qE -- "$pattern" "$tmp/out"; then
		echo "FAIL $name: status $got (want $want), output:"
		sed 's/^/    /' "$tmp/out" | tail -n 15
		failures=$((failures + 1))
	else
		echo "ok   $name: status $got, $(grep -E -m 1 -- "$pattern" "$tmp/out")"
		passed=$((passed + 1))
	fi
}

cc=${CC:-cc}
for s in 0 1 77; do
	printf 'int main(void) { return %d; }\n' "$s" >"$tmp/s$s.c"
	"$cc" -o "$tmp/exit$s" "$tmp/s$s.c" || { echo "cannot compile"; exit 1; }
done
mkdir -p "$tmp/mixed" "$tmp/skips"
cp "$tmp/exit0" "$tmp/mixed/test-pass"
cp "$tmp/exit1" "$tmp/mixed/test-fail"
cp "$tmp/exit77" "$tmp/mixed/test-skip"
cp "$tmp/exit77" "$tmp/skips/test-skip1"
cp "$tmp/exit77" "$tmp/skips/test-skip2"

# Bad input fails fast, before any boot.
expect unknown-series 96 'no Debian kernel package for series 5\.99' -- -k 5.99 -- /bin/true
expect bad-series 96 'must look like' -- -k latest -- /bin/true
expect missing-binary 96 'missing test binary' -- -k 6.12 -- "$tmp/no-such-test"
expect not-elf 96 'only ELF binaries' -- -k 6.12 -- "$0"
expect bad-user 96 'takes root or nobody' -- -u daemon -- /bin/true
mkdir -p "$tmp/empty-cache" "$tmp/apt/lists/partial" "$tmp/apt/cache/archives/partial"
cat >"$tmp/apt.conf" <<CONF
Dir::State::Lists "$tmp/apt/lists/";
Dir::Cache "$tmp/apt/cache/";
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
CONF
APT_CONFIG=$tmp/apt.conf UFFDWP_VM_CACHE=$tmp/empty-cache \
	expect no-package-lists 96 'no Debian package lists' -- -k 6.12 -- /bin/true
APT_CONFIG=$tmp/apt.conf \
	expect offline-uses-cache 0 'using cached linux-image-6\.12' -- -k 6.12 -- "$tmp/exit0"

# The guest's status comes back as it is.
expect status-0 0 - -- -k 6.12 -- "$tmp/exit0"
expect status-1 1 - -- -k 6.1 -- "$tmp/exit1"
expect status-77 77 - -- -k 6.12 -- "$tmp/exit77"
expect args-and-env 0 '^hello world 7$' -- -k 6.1 -e GREETING=hello -- /bin/sh -c 'echo "$GREETING world $UFFDWP_TEST_SCALE" | sed "s/0\.1/7/"'
expect as-nobody 0 '^65534$' -- -k 6.12 -u nobody -- /usr/bin/id -u
expect folder-mixed 1 '@@VM-TEST test-fail 1@@' -- -k 6.12 -d "$tmp/mixed"
expect folder-all-skipped 77 '@@VM-TEST test-skip2 77@@' -- -k 6.12 -d "$tmp/skips"

# Failures of the guest itself.
expect panic 98 'guest kernel panicked' -- -k 6.12 -- /bin/sh -c 'echo c > /proc/sysrq-trigger'
expect timeout 97 'timeout: no result after 15s' -- -k 6.12 -t 15 -- /bin/sleep 100

echo "$passed passed, $failures failed"
[ "$failures" -eq 0 ]
