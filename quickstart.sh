#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# The README's quick start, on a fresh Debian 12 machine:
#
#   ./quickstart.sh demo   set up, build, run uffdwp-check and the live
#                          demos: pre-copy migration, incremental
#                          checkpoints (the main job)
#   ./quickstart.sh test   set up, build, run every test suite, here and
#                          under Debian's 6.1 and 6.12 kernels in qemu;
#                          prove the demo and the Debian packages in a
#                          bare Debian 12 root (tests/fresh-root); run
#                          bdwgc's gctest on the libuffdwp VDB
#                          (contrib/bdwgc)
#
# Missing Debian packages are installed with apt-get when run as root;
# otherwise the exact apt-get line is printed and the script stops.
set -eu

cd "$(dirname "$0")"

BUILD_PKGS="gcc g++ meson ninja-build pkgconf liburcu-dev libbsd-dev"
TEST_PKGS="check python3 clang-format binutils valgrind groff-base mandoc doxygen"
# The kernel matrix: Debian's 6.1 and 6.12 kernels under qemu (tests/vm).
VM_PKGS="qemu-system-x86 busybox-static xz-utils zstd"
# The fresh-root stage: a bare Debian 12 root, the Debian packages built in
# it and checked here (tests/fresh-root).
FRESH_PKGS="mmdebstrap lintian git"
# The garbage-collector stage: Debian's bdwgc source with the libuffdwp VDB
# of contrib/bdwgc, built and run under each backend (run-gctest).
GC_PKGS="dpkg-dev make patch"

# Each set-up step's output goes to a log of its own, shown when the step
# fails: a quiet success, never a silent failure.
logdir=.cache/quickstart

usage() {
	echo "usage: $0 demo|test" >&2
	exit 2
}

# step NAME COMMAND...: run a set-up step with its output in
# $logdir/NAME.log; on failure say which step failed, show the log's last
# lines and where the whole log is, and stop with the step's status.
step() {
	name=$1
	shift
	mkdir -p "$logdir"
	log=$logdir/$name.log
	st=0
	"$@" >"$log" 2>&1 || st=$?
	[ $st -eq 0 ] && return 0
	echo "quickstart: step '$name' failed (exit $st): $*" >&2
	echo "--- last 25 lines of $log:" >&2
	tail -n 25 "$log" >&2
	echo "--- the whole output: $PWD/$log" >&2
	exit $st
}

missing_pkgs() {
	for p in "$@"; do
		dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null |
			grep -q '^install ok installed$' || printf '%s ' "$p"
	done
}

ensure_pkgs() {
	missing=$(missing_pkgs "$@")
	missing=${missing% }
	[ -z "$missing" ] && return 0
	line="apt-get install -y --no-install-recommends $missing"
	if [ "$(id -u)" -ne 0 ]; then
		echo "missing Debian packages; as root run:" >&2
		echo "  apt-get update && $line" >&2
		exit 1
	fi
	echo "== installing: $missing"
	export DEBIAN_FRONTEND=noninteractive
	step apt-get-update apt-get update -q
	# shellcheck disable=SC2086
	step apt-get-install apt-get install -y -q --no-install-recommends $missing
}

# configure DIR [OPTION...]: set up a meson build folder, or apply the
# options to one that exists.
configure() {
	dir=$1
	shift
	if [ ! -f "$dir/build.ninja" ]; then
		step "meson-setup-$dir" meson setup "$dir" "$@"
	elif [ $# -gt 0 ]; then
		step "meson-configure-$dir" meson configure "$dir" "$@"
	fi
}

compile() {
	step "meson-compile-$1" meson compile -C "$1"
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

# run_stage NAME PREFIX COMMAND...: a stage run by a script of its own that
# prints "PREFIX: PASS ..." and "PREFIX: FAIL ..." lines, its output kept in
# $logdir/NAME.log. Its checks count as tests;
# exit 77 (the machine lacks the mechanism) counts as one skip; a stage that
# failed without a FAIL line (it could not run at all) counts as one
# failure, never a skip.
run_stage() {
	name=$1 prefix=$2
	shift 2
	start=$(date +%s)
	mkdir -p "$logdir"
	log=$logdir/$name.log
	{
		"$@" 2>&1
		echo $? >"$logdir/$name.status"
	} | tee "$log"
	status=$(cat "$logdir/$name.status")
	echo "== $name: $(($(date +%s) - start)) s"
	passed=$(grep -c "^$prefix: PASS " "$log" || true)
	failed=$(grep -c "^$prefix: FAIL " "$log" || true)
	skipped=0
	if [ "$status" -eq 77 ]; then
		skipped=1
		status=0
	elif [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then
		failed=1
	fi
	total_passed=$((total_passed + passed))
	total_failed=$((total_failed + failed))
	total_skipped=$((total_skipped + skipped))
	return "$status"
}

cmd=${1:-}
case $cmd in
demo)
	ensure_pkgs $BUILD_PKGS
	# Only the build packages: no test suites unless a build folder with
	# them is already there (./quickstart.sh test made one).
	if [ -f build/build.ninja ]; then
		configure build
	else
		configure build -Dtests=disabled -Ddocs=disabled
	fi
	compile build
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
	ensure_pkgs $BUILD_PKGS $TEST_PKGS $VM_PKGS $FRESH_PKGS $GC_PKGS
	total_passed=0 total_failed=0 total_skipped=0
	rc=0
	echo "== build: plain"
	start=$(date +%s)
	configure build -Dtests=enabled -Ddocs=enabled
	compile build
	echo "== build: $(($(date +%s) - start)) s"
	echo "== tests: every suite on this kernel ($(uname -r))"
	run_tests build testlog.json || rc=1
	echo "== tests: unit suite under valgrind"
	run_tests build testlog-valgrind.json --setup valgrind --suite unit || rc=1
	echo "== fresh Debian 12 root: the README's demo as root and as a user, the Debian packages, meson dist"
	run_stage fresh-root fresh-root tests/fresh-root/run-fresh-root || rc=1
	echo "== garbage collector: bdwgc's gctest on the libuffdwp VDB, every backend (contrib/bdwgc)"
	run_stage gctest run-gctest contrib/bdwgc/run-gctest --lib-build build ||
		rc=1
	echo "== build: ASan + UBSan"
	start=$(date +%s)
	configure build-asan -Dtests=enabled -Ddocs=disabled \
		-Db_sanitize=address,undefined -Db_lundef=false
	compile build-asan
	echo "== build-asan: $(($(date +%s) - start)) s"
	echo "== tests: every suite under ASan + UBSan (the vm suite ran above)"
	run_tests build-asan testlog-asan.json --setup asan --no-suite vm || rc=1
	for setup in vm6_1 vm6_12 vm6_1_user vm6_12_user; do
		echo "== kernel matrix: kernel suite, setup $setup"
		# One guest at a time: two emulated guests on two cores starve
		# each other's threads for seconds.
		run_tests build "testlog-$setup.json" --setup "$setup" \
			--suite kernel --num-processes 1 || rc=1
	done
	# soft_dirty, which this machine's kernel lacks; and under 6.1, with
	# no WP_ASYNC, the self-service mode, the best 6.1 has.
	for series in 6.1 6.12; do
		gc_backends=soft_dirty
		[ "$series" != 6.1 ] || gc_backends="soft_dirty self_service"
		echo "== kernel matrix: bdwgc's gctest on $gc_backends under $series"
		run_stage "gctest-vm$series" run-gctest contrib/bdwgc/run-gctest \
			--lib-build build --vm "$series" --backends "$gc_backends" \
			--reuse --timeout 600 || rc=1
	done
	echo
	echo "tests: $total_passed passed, $total_failed failed, $total_skipped skipped"
	exit $rc
	;;
*)
	usage
	;;
esac
