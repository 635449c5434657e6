# Shared by the tools suite's shell tests: a scratch folder removed at
# exit, and bad() to note a failure and go on (the test ends with
# `[ $fails -eq 0 ]`, so every failure of a run is listed, not the first).
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0

bad() {
	echo "not ok: $*"
	fails=$((fails + 1))
}
