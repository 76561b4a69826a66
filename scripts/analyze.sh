#!/bin/sh
# make analyze: clang's static analyzer (Debian's clang-tools-14) over every
# C file of the build, host, guest and test helpers, from the build's
# compile_commands.json; generated code (protobuf-c) is left out. Prints
# each finding with its source line and fails when there is one.
#
# unix.Malloc is off: clang 14 does not model __attribute__((cleanup)), so
# every _cleanup_free_ variable reads as a leak on each early return (a
# 10-line case shows it). Leaks, double frees and use-after-free are caught
# at run time instead, by LeakSanitizer and ASan in `make asan`.
set -eu

build=${1:-build}
analyzer=${ANALYZE_BUILD:-analyze-build-14}
out="$build/analyze"
log="$build/analyze.log"

rm -rf "$out"
mkdir -p "$out"
"$analyzer" --cdb "$build/compile_commands.json" --exclude "$build" -o "$out" \
	--disable-checker unix.Malloc -v >"$log" 2>&1 || true
# An analyzer finding ends with its checker's name: [core.NullDereference].
findings=$(sed -n 's/^.*INFO: //p' "$log" | grep -A2 -E 'warning: .*\[[a-z]+\.[A-Za-z.]+\]$' || true)
n=$(printf '%s\n' "$findings" | grep -c -E 'warning: .*\[[a-z]+\.[A-Za-z.]+\]$' || true)
if ! grep -q "compile_commands\|INFO:" "$log"; then
	cat "$log"
	echo "analyze: the analyzer did not run (see above)" >&2
	exit 1
fi
if [ "$n" -ne 0 ]; then
	printf '%s\n' "$findings"
	echo "analyze: $n finding(s); reports in $out" >&2
	exit 1
fi
echo "analyze: no findings ($(grep '"file"' "$build/compile_commands.json" | grep -vc 'pb-c') files)"
