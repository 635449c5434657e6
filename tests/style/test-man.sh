#!/bin/bash
# Style suite: the manual pages in man/ are complete and lint-clean.
#
# - every global symbol of libuffdwp/libuffdwp.sym has man/<symbol>.3;
# - an alias page is the single line ".so manN/<page>.N", its page exists,
#   is not an alias itself, and names the alias in its NAME section;
# - man/meson.build lists exactly the pages of man/ (*.1, *.3, *.7);
# - the source of every page is ASCII, without trailing whitespace, and a
#   full page starts with the SPDX line;
# - every page is clean under "mandoc -Tlint -W warning" (when mandoc is
#   installed) and "groff -man -ww -z" (always), with .so resolved.
#
# usage: test-man.sh SOURCE_ROOT
set -euo pipefail

if [ $# -ne 1 ]; then
	echo "usage: $0 SOURCE_ROOT" >&2
	exit 2
fi
root=$(cd "$1" && pwd)
man="$root/man"
sym="$root/libuffdwp/libuffdwp.sym"
build="$man/meson.build"
spdx='.\" SPDX-License-Identifier: LGPL-2.1-or-later'

errors=0
fail() {
	echo "FAIL: $*"
	errors=$((errors + 1))
}

for f in "$sym" "$build"; do
	if [ ! -f "$f" ]; then
		echo "FAIL: ${f#"$root"/} is missing"
		exit 1
	fi
done

# The pages, as man/NAME.N, and which of them are .so aliases.
mapfile -t pages < <(find "$man" -maxdepth 1 -type f -name '*.[137]' -printf '%f\n' 2>/dev/null | sort)
if [ ${#pages[@]} -eq 0 ]; then
	echo "FAIL: man/ holds no page"
	exit 1
fi
is_alias() {
	grep -q '^\.so' "$man/$1"
}

# 1. Every exported function has a page of its name.
mapfile -t symbols < <(awk '
	/global:/ { g = 1; next }
	/local:/ || /}/ { g = 0 }
	g && /^[ \t]*[A-Za-z_][A-Za-z0-9_]*;/ {
		sub(/^[ \t]*/, ""); sub(/;.*/, ""); print
	}' "$sym")
if [ ${#symbols[@]} -eq 0 ]; then
	fail "no global symbol found in libuffdwp/libuffdwp.sym"
fi
for s in "${symbols[@]}"; do
	[ -f "$man/$s.3" ] || fail "exported $s has no page man/$s.3"
done

# 2. Aliases are one .so line to a full page that names them.
for p in "${pages[@]}"; do
	is_alias "$p" || continue
	if [ "$(wc -l <"$man/$p")" -ne 1 ] ||
		! grep -qx '\.so man[137]/[A-Za-z0-9_.-]*\.[137]' "$man/$p"; then
		fail "man/$p: an alias must be the single line .so manN/PAGE.N"
		continue
	fi
	line=$(cat "$man/$p")
	sec=${line:7:1}
	target=${line:9}
	if [ "${target##*.}" != "$sec" ]; then
		fail "man/$p: $target is not in section $sec (${line})"
	elif [ ! -f "$man/$target" ]; then
		fail "man/$p: .so target man/$target does not exist"
	elif is_alias "$target"; then
		fail "man/$p: .so target man/$target is itself an alias"
	elif ! sed -n '/^\.SH NAME/,/^\.SH /p' "$man/$target" |
		grep -qw -- "${p%.*}"; then
		fail "man/$target: its NAME section does not name ${p%.*}"
	fi
done

# 3. man/meson.build lists exactly the pages of man/.
mapfile -t listed < <(grep -o "'[^']*'" "$build" | tr -d "'" | sort)
for l in "${listed[@]}"; do
	[ -f "$man/$l" ] || fail "man/meson.build lists $l, which does not exist"
done
for p in "${pages[@]}"; do
	printf '%s\n' "${listed[@]}" | grep -qxF -- "$p" ||
		fail "man/$p is not listed in man/meson.build"
done
dups=$(printf '%s\n' "${listed[@]}" | uniq -d)
[ -z "$dups" ] || fail "man/meson.build lists more than once: $dups"

# 4. Source hygiene.
for p in "${pages[@]}"; do
	if [ "$(LC_ALL=C tr -d '\000-\177' <"$man/$p" | wc -c)" -ne 0 ]; then
		fail "man/$p: non-ASCII bytes (use roff escapes such as \\(em)"
	fi
	if grep -qn '[[:space:]]$' "$man/$p"; then
		fail "man/$p: trailing whitespace on line(s)" \
			"$(grep -n '[[:space:]]$' "$man/$p" | cut -d: -f1 | paste -sd, -)"
	fi
	if ! is_alias "$p" && [ "$(head -n 1 "$man/$p")" != "$spdx" ]; then
		fail "man/$p: the first line must be $spdx"
	fi
done

# 5. Lint. The pages are laid out as an installed tree (man1/, man3/,
# man7/) so that ".so man3/PAGE.3" resolves as it does for man(1).
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for p in "${pages[@]}"; do
	mkdir -p "$tmp/man${p##*.}"
	cp "$man/$p" "$tmp/man${p##*.}/$p"
done

if command -v mandoc >/dev/null; then
	# -W warning reports warnings, errors and unsupported requests, and
	# leaves out style notes (the only ones these pages raise: "lower case
	# character in document title", since titles are C identifiers, as in
	# liburing). One warning is allowed, on alias pages only: ".so is
	# fragile, better use ln(1)". .so aliases are what `man 3 ALIAS` needs
	# from a plain install_man() with no symlinks, and the check above
	# makes sure each one resolves.
	for p in "${pages[@]}"; do
		rel="man${p##*.}/$p"
		rc=0
		out=$(cd "$tmp" && mandoc -Tlint -W warning "$rel" 2>&1) || rc=$?
		if is_alias "$p"; then
			out=$(printf '%s\n' "$out" |
				grep -v ': WARNING: \.so is fragile, better use ln(1): so man[137]/' || true)
		fi
		if [ -n "$out" ]; then
			fail "mandoc -Tlint -W warning man/$p:"
			printf '%s\n' "$out" | sed 's/^/    /'
		elif [ "$rc" -gt 3 ]; then
			fail "mandoc -Tlint man/$p exited with status $rc"
		fi
	done
else
	echo "note: mandoc is not installed; only groff checks the pages (apt-get install mandoc)"
fi

if ! command -v groff >/dev/null; then
	fail "groff is missing (apt-get install groff-base): the pages cannot be checked"
else
	for p in "${pages[@]}"; do
		rel="man${p##*.}/$p"
		rc=0
		out=$(cd "$tmp" && LC_ALL=C.UTF-8 groff -man -ww -z "$rel" 2>&1 >/dev/null) || rc=$?
		if [ -n "$out" ] || [ "$rc" -ne 0 ]; then
			fail "LC_ALL=C.UTF-8 groff -man -ww -z man/$p (status $rc):"
			printf '%s\n' "$out" | sed 's/^/    /'
		fi
	done
fi

if [ "$errors" -ne 0 ]; then
	echo "$errors problem(s) in the manual pages"
	exit 1
fi
echo "${#pages[@]} pages: ${#symbols[@]} exported functions documented, lint clean"
