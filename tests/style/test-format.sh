#!/bin/sh
# Style suite: every C source is formatted as .clang-format says (kernel
# style). Fix with: clang-format -i FILE
# usage: test-format.sh SOURCE_ROOT
set -eu
cd "$1"
cf=${CLANG_FORMAT:-clang-format}
command -v "$cf" >/dev/null || { echo "SKIP: clang-format is missing (apt-get install clang-format)"; exit 77; }
files=$(find include libuffdwp tools tests examples bench -name '*.[ch]' | sort)
if ! "$cf" --dry-run --Werror $files; then
	echo "clang-format wants changes in the files above; run: $cf -i <file>"
	exit 1
fi
echo "$(echo "$files" | wc -l) files formatted as .clang-format says"
