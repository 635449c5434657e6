#!/bin/sh
# Tools suite: quickstart.sh's own contract, on a copy of it in a scratch
# folder so that nothing of the tree is touched.
# - no or an unknown argument: usage on stderr, exit 2;
# - a set-up step that fails stops the script with that step's status,
#   names the step, and shows the end of its output (here: a meson that
#   prints 40 lines and fails, put first on PATH).
# The missing-package path (the exact apt-get line, exit 1) needs a machine
# without the packages: tests/fresh-root proves it in a bare Debian 12.
# usage: test-quickstart.sh PATH_TO_QUICKSTART
set -u
qs=$1
. "$(dirname "$0")/lib.sh"

cp "$qs" "$tmp/quickstart.sh"

for arg in "" nonsense; do
	st=0
	# shellcheck disable=SC2086
	"$tmp/quickstart.sh" $arg >"$tmp/out" 2>"$tmp/err" || st=$?
	[ $st -eq 2 ] || bad "'$arg': exit $st, not 2"
	grep -q '^usage: .*demo|test' "$tmp/err" || bad "'$arg': no usage on stderr"
	[ ! -s "$tmp/out" ] || bad "'$arg': wrote to stdout"
done

# Only with every build package present can the demo reach its first
# meson step without apt-get.
pkgs=$(sed -n 's/^BUILD_PKGS="\(.*\)"$/\1/p' "$qs")
for p in $pkgs; do
	dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q 'install ok installed' ||
		{ echo "SKIP: build package $p is missing"; exit 77; }
done
mkdir "$tmp/bin"
cat >"$tmp/bin/meson" <<'FAKE'
#!/bin/sh
i=1
while [ $i -le 40 ]; do echo "meson output line $i"; i=$((i + 1)); done
echo "ERROR: the reason meson failed" >&2
exit 3
FAKE
chmod +x "$tmp/bin/meson"
st=0
PATH="$tmp/bin:$PATH" "$tmp/quickstart.sh" demo >"$tmp/out" 2>"$tmp/err" || st=$?
[ $st -eq 3 ] || bad "a failing meson setup: exit $st, not 3"
grep -q "step 'meson-setup-build' failed (exit 3)" "$tmp/err" || bad "the failed step is not named"
grep -q 'ERROR: the reason meson failed' "$tmp/err" || bad "the step's last lines are not shown"
grep -q 'meson output line 16' "$tmp/err" && bad "more than the last lines were shown"
[ -s "$tmp/.cache/quickstart/meson-setup-build.log" ] || bad "the step's whole output was not kept"
grep -q 'meson output line 1$' "$tmp/.cache/quickstart/meson-setup-build.log" ||
	bad "the kept log is not the whole output"

[ $fails -eq 0 ] && echo "ok: usage, and a failed step named with its output"
[ $fails -eq 0 ]
