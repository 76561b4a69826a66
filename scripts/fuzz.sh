#!/bin/sh
# make fuzz and make fuzz-smoke: runs each libFuzzer target of the clang
# build, one after the other, and prints one line per target: executions,
# executions a second, crashes and seconds (docs/security-tests.md, "Fuzzing").
#
#   fuzz.sh long  BUILD SECONDS RUNS TARGET...
#       Each target until RUNS executions (libFuzzer's -runs; empty: no
#       count) or SECONDS (-max_total_time; with RUNS, a cap), from what
#       earlier runs learnt (BUILD/corpus/TARGET, kept) and the corpus in
#       the repository (tests/fuzz/corpus/TARGET, read only). The log is
#       BUILD/fuzz-logs/TARGET.log.
#   fuzz.sh smoke BUILD SECONDS - TARGET...
#       make check's run: the repository's corpus, then SECONDS of mutation
#       into a scratch directory emptied first.
#
# A crash, leak, out-of-memory or hang (an input over 30 s) stops that
# target's run and leaves the input in BUILD/crashes/TARGET-crash-*; the
# other targets still run, and the script exits 1 at the end. To run one
# target: make fuzz FUZZ_TARGETS=fuzz-spec. Run it under nice on a shared
# host: each target takes one core for its whole run.
set -u

mode=$1
build=$2
seconds=$3
runs=$4
shift 4

# The inputs libFuzzer left for target $1 (crash-, leak-, oom-, timeout-).
count_crashes() {
	n=0
	for f in "$build/crashes/$1"-*; do
		[ -e "$f" ] && n=$((n + 1))
	done
	echo "$n"
}

failed=0
mkdir -p "$build/crashes" "$build/fuzz-logs"
for t in "$@"; do
	bin="$build/tests/fuzz/$t"
	log="$build/fuzz-logs/$t.log"
	if [ ! -x "$bin" ]; then
		echo "fuzz: $bin is not built (make fuzz-build)" >&2
		exit 1
	fi
	if [ "$mode" = smoke ]; then
		corpus="$build/smoke/$t"
		rm -rf "$corpus"
	else
		corpus="$build/corpus/$t"
	fi
	mkdir -p "$corpus"
	count=-runs=-1
	if [ "$mode" = long ] && [ -n "$runs" ] && [ "$runs" != - ]; then
		count=-runs=$runs
	fi
	before=$(count_crashes "$t")
	start=$(date +%s.%N)
	"$bin" -max_total_time="$seconds" "$count" -timeout=30 -print_final_stats=1 \
		-artifact_prefix="$build/crashes/$t-" "$corpus" "tests/fuzz/corpus/$t" >"$log" 2>&1
	rc=$?
	end=$(date +%s.%N)
	after=$(count_crashes "$t")
	n=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
	crashes=$((after - before))
	if grep -q 'libFuzzer: run interrupted' "$log"; then
		failed=1 # stopped by a signal: counted, not finished
	elif [ "$rc" -ne 0 ] || [ -z "$n" ]; then
		[ "$crashes" -gt 0 ] || crashes="?"
		failed=1
		tail -40 "$log"
	fi
	awk -v t="$t" -v n="${n:-0}" -v s="$start" -v e="$end" -v c="$crashes" -v rc="$rc" 'BEGIN {
		d = e - s
		rate = 0
		if (d > 0)
			rate = n / d
		tail = ""
		if (rc == 72)
			tail = " (interrupted)"
		else if (rc != 0)
			tail = " (exit " rc ")"
		printf "%s: %d executions, %d exec/s, %s crashes, %.0f s%s\n", t, n, rate, c, d, tail
	}'
done
if [ "$failed" -ne 0 ]; then
	echo "fuzz: a target failed; its input is in $build/crashes/" >&2
	exit 1
fi
