#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# The README's quick start, on a fresh Debian 12 machine:
#
#   ./quickstart.sh demo   set up, build, run uffdwp-check and the live
#                          demos: pre-copy migration, incremental
#                          checkpoints (the main job)
#   ./quickstart.sh test   set up, build, run every test suite, here and
#                          under Debian's 6.1 and 6.12 kernels in qemu
#
# Missing Debian packages are installed with apt-get when run as root;
# otherwise the exact apt-get line is printed and the script stops.
set -eu

cd "$(dirname "$0")"

BUILD_PKGS="gcc g++ meson ninja-build pkgconf liburcu-dev libbsd-dev"
TEST_PKGS="check python3 clang-format binutils valgrind"
# The kernel matrix: Debian's 6.1 and 6.12 kernels under qemu (tests/vm).
VM_PKGS="qemu-system-x86 busybox-static xz-utils zstd"

usage() {
	echo "usage: $0 demo|test" >&2
	exit 2
}

missing_pkgs() {
	for p in "$@"; do
		dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null |
			grep -q '^install ok installed$' || printf '%s ' "$p"
	done
}

ensure_pkgs() {
	missing=$(missing_pkgs "$@")
	[ -z "$missing" ] && return 0
	line="apt-get install -y --no-install-recommends $missing"
	if [ "$(id -u)" -ne 0 ]; then
		echo "missing Debian packages; as root run:" >&2
		echo "  apt-get update && $line" >&2
		exit 1
	fi
	echo "== installing: $missing"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q >/dev/null
	# shellcheck disable=SC2086
	apt-get install -y -q --no-install-recommends $missing >/dev/null
}

setup_build() {
	dir=$1
	shift
	if [ ! -f "$dir/build.ninja" ]; then
		meson setup "$dir" "$@" >/dev/null
	fi
	meson compile -C "$dir" >/dev/null
}

# Count the results of a meson test run from its JSON log.
tally() {
	python3 - "$1" <<'EOF'
import json, sys
counts = {"passed": 0, "failed": 0, "skipped": 0}
for line in open(sys.argv[1]):
    r = json.loads(line)["result"]
    key = {"OK": "passed", "SKIP": "skipped",
           "EXPECTEDFAIL": "passed"}.get(r, "failed")
    counts[key] += 1
print(" ".join(f"{k}={v}" for k, v in counts.items()))
EOF
}

run_tests() {
	dir=$1 log=$2
	shift 2
	status=0
	start=$(date +%s)
	meson test -C "$dir" --print-errorlogs "$@" || status=$?
	echo "== $log: $(($(date +%s) - start)) s"
	eval "$(tally "$dir/meson-logs/$log")"
	total_passed=$((total_passed + passed))
	total_failed=$((total_failed + failed))
	total_skipped=$((total_skipped + skipped))
	return $status
}

cmd=${1:-}
case $cmd in
demo)
	ensure_pkgs $BUILD_PKGS
	setup_build build
	echo "== uffdwp-check"
	./build/tools/uffdwp-check
	echo
	echo "== live demo: pre-copy migration of 4 writer threads' memory over TCP"
	./build/examples/precopy
	echo
	echo "== live demo: incremental checkpoints of 4 running writers, then restore"
	ckdir=$(mktemp -d)
	trap 'rm -rf "$ckdir"' EXIT
	./build/examples/ckpt --dir "$ckdir/ckpt" --checkpoints 5 --interval-ms 500
	./build/examples/ckpt --restore --dir "$ckdir/ckpt"
	;;
test)
	ensure_pkgs $BUILD_PKGS $TEST_PKGS $VM_PKGS
	total_passed=0 total_failed=0 total_skipped=0
	rc=0
	echo "== build: plain"
	setup_build build
	echo "== tests: every suite on this kernel ($(uname -r))"
	run_tests build testlog.json || rc=1
	echo "== tests: unit suite under valgrind"
	run_tests build testlog-valgrind.json --setup valgrind --suite unit || rc=1
	echo "== build: ASan + UBSan"
	setup_build build-asan -Db_sanitize=address,undefined -Db_lundef=false
	echo "== tests: every suite under ASan + UBSan (the vm suite ran above)"
	run_tests build-asan testlog-asan.json --setup asan --no-suite vm || rc=1
	for setup in vm6_1 vm6_12 vm6_1_user vm6_12_user; do
		echo "== kernel matrix: kernel suite, setup $setup"
		# One guest at a time: two emulated guests on two cores starve
		# each other's threads for seconds.
		run_tests build "testlog-$setup.json" --setup "$setup" \
			--suite kernel --num-processes 1 || rc=1
	done
	echo
	echo "tests: $total_passed passed, $total_failed failed, $total_skipped skipped"
	exit $rc
	;;
*)
	usage
	;;
esac
