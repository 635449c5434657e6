#!/bin/sh
# ABI suite: after `meson install --destdir`, a program built with
# `cc prog.c $(pkg-config --cflags --libs libuffdwp)` links and runs against
# the installed copy; so does one built from the uninstalled .pc of the
# build tree.
# usage: test-install.sh BUILD_ROOT SOURCE_ROOT PREFIX LIBDIR
set -eu
build=$1 src=$2 prefix=$3 libdir=$4
cc=${CC:-cc}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

command -v pkg-config >/dev/null || { echo "SKIP: pkg-config is missing"; exit 77; }
command -v "$cc" >/dev/null || { echo "SKIP: no C compiler ($cc)"; exit 77; }

meson install -C "$build" --no-rebuild --quiet --destdir "$tmp/root" >"$tmp/install.log" 2>&1 ||
	{ cat "$tmp/install.log"; exit 1; }

case $libdir in /*) ;; *) libdir=$prefix/$libdir ;; esac
root=$tmp/root
for f in "$root$libdir/libuffdwp.so.0" "$root$libdir/pkgconfig/libuffdwp.pc" \
	"$root$prefix/include/uffdwp/uffdwp.h" "$root$prefix/include/uffdwp/version.h"; do
	[ -e "$f" ] || { echo "not installed: ${f#"$root"}"; exit 1; }
done
[ -x "$root$prefix/bin/uffdwp-check" ] || { echo "uffdwp-check not installed"; exit 1; }

# The installed .pc, relocated into the destdir (its paths are relative to
# ${prefix}); the system's .pc files still resolve its private requirements.
flags=$(PKG_CONFIG_PATH="$root$libdir/pkgconfig" \
	pkg-config --define-variable=prefix="$root$prefix" --cflags --libs libuffdwp)
case $flags in *"$root"*) ;; *) echo "pkg-config did not use the installed .pc: $flags"; exit 1 ;; esac
echo "installed: cc prog.c $flags"
# shellcheck disable=SC2086
"$cc" -o "$tmp/prog" "$src/tests/abi/test-link.c" $flags
LD_LIBRARY_PATH="$root$libdir" "$tmp/prog"
LD_LIBRARY_PATH="$root$libdir" ldd "$tmp/prog" | grep -q "$root$libdir/libuffdwp.so.0" ||
	{ echo "the program did not load the installed library"; exit 1; }
LD_LIBRARY_PATH="$root$libdir" "$root$prefix/bin/uffdwp-check" --feature mprotect

# The uninstalled .pc of the build tree.
flags=$(PKG_CONFIG_PATH="$build/pkgconfig" pkg-config --cflags --libs libuffdwp-uninstalled)
echo "uninstalled: cc prog.c $flags"
# shellcheck disable=SC2086
"$cc" -o "$tmp/prog2" "$src/tests/abi/test-link.c" $flags
LD_LIBRARY_PATH="$build/libuffdwp" "$tmp/prog2"
