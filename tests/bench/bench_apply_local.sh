#!/usr/bin/env bash
# Benchmark (prints figures; not a test): `runbook apply` with N local
# steps of `/bin/true` against a shell loop running `sh -c /bin/true` N times
# (a program, not the builtin: the wrapper shell execs it, issue 17).
# Target (issue 17): ratio at most 1.15.
#   RUNBOOK=build/runbook bash tests/bench/bench_apply_local.sh [N] [RUNS]
set -euo pipefail
RUNBOOK=${RUNBOOK:-build/runbook}
N=${1:-100}
RUNS=${2:-5}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

{
	printf 'version: 1\nname: bench\nowner: bench <b@example.com>\n'
	printf 'reason: benchmark\nexpected: all true\nsteps:\n'
	for ((i = 0; i < N; i++)); do
		printf '  - name: s%d\n    run: /bin/true\n    rollback: none\n' "$i"
	done
} >"$work/bench.yml"
"$RUNBOOK" validate -q "$work/bench.yml"

now() { date +%s%N; }
best() { sort -n | head -1; }

for ((r = 0; r < RUNS; r++)); do
	t0=$(now)
	"$RUNBOOK" apply -q "$work/bench.yml"
	t1=$(now)
	echo $(((t1 - t0) / 1000))
done >"$work/runbook.us"

for ((r = 0; r < RUNS; r++)); do
	t0=$(now)
	for ((i = 0; i < N; i++)); do sh -c /bin/true; done
	t1=$(now)
	echo $(((t1 - t0) / 1000))
done >"$work/shell.us"

rb=$(best <"$work/runbook.us")
sh=$(best <"$work/shell.us")
awk -v n="$N" -v rb="$rb" -v sh="$sh" 'BEGIN {
	printf "apply %d local steps of /bin/true: best %.1f ms (%.2f ms/step)\n", n, rb / 1000, rb / 1000 / n
	printf "shell loop of %d x sh -c /bin/true: best %.1f ms (%.2f ms/command)\n", n, sh / 1000, sh / 1000 / n
	printf "ratio runbook/shell: %.2f (target <= 1.15)\n", rb / sh
}'
