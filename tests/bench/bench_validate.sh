#!/usr/bin/env bash
# Times `runbook validate` on a generated valid runbook of 5,000 steps.
# Not a test: it prints figures, and fails only if validate rejects the file.
#
#   RUNBOOK=build/runbook tests/bench/bench_validate.sh
#
# Env: RUNBOOK (required) the built binary; SRCDIR (optional, unused but
# accepted for symmetry with the e2e tests); STEPS (default 5000); RUNS
# (default 5).
set -u
export LC_ALL=C

STEPS=${STEPS:-5000}
RUNS=${RUNS:-5}
TARGET_MS=100

if [ -z "${RUNBOOK:-}" ] || [ ! -x "$RUNBOOK" ]; then
	printf 'bench_validate: RUNBOOK must be the path of the built runbook binary\n' >&2
	exit 2
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/runbook-bench.XXXXXX") || exit 2
trap 'rm -rf -- "$tmp"' EXIT
trap 'exit 130' INT TERM HUP
trap 'exit 141' PIPE
file="$tmp/bench-$STEPS.yml"

generate() {
	local i
	printf 'version: 1\n'
	printf 'name: bench-validate\n'
	printf 'owner: Bench <bench@example.com>\n'
	printf 'reason: Measure how long validation of a large runbook takes\n'
	printf 'expected: validate exits 0 quickly\n'
	printf 'targets:\n'
	printf '  production:\n'
	printf '    hosts: [deploy@app1.example.com, "deploy@app2.example.com:2222", app3]\n'
	printf '    serial: "25%%"\n'
	printf 'vars:\n'
	printf '  version: "2.4.1"\n'
	printf '  prefix: /srv/api\n'
	printf '  service: api\n'
	printf 'redact: ['"'"'token=[A-Za-z0-9]+'"'"']\n'
	printf 'preflight:\n'
	printf '  - name: current version\n'
	printf '    run: cat {{ prefix }}/VERSION\n'
	printf '    capture: { previous: '"'"'^(\\S+)'"'"' }\n'
	printf 'steps:\n'
	for ((i = 1; i <= STEPS; i++)); do
		printf '  - name: step-%05d\n' "$i"
		printf '    run: deploy-%s --version {{ version }} --part %d\n' "{{ service }}" "$i"
		printf '    rollback: deploy-%s --version {{ previous }} --part %d\n' "{{ service }}" "$i"
		printf '    expect: { exit: 0, stdout: '"'"'part %d installed \\d+\\.\\d+'"'"' }\n' "$i"
		printf '    timeout: %dm\n' $((i % 10 + 1))
	done
	printf 'verify:\n'
	printf '  - name: health\n'
	printf '    run: curl -fsS http://localhost:8080/health\n'
	printf '    expect: { stdout: '"'"'"version":\\s*"2\\.4\\.1"'"'"' }\n'
}

if ! generate >"$file"; then
	printf 'bench_validate: could not write %s\n' "$file" >&2
	exit 2
fi

now_ns() { date +%s%N; }

times=()
for ((r = 1; r <= RUNS; r++)); do
	t0=$(now_ns)
	"$RUNBOOK" validate "$file" >/dev/null 2>"$tmp/stderr"
	rc=$?
	t1=$(now_ns)
	if [ "$rc" -ne 0 ]; then
		printf 'bench_validate: validate exited %d on the generated %d-step runbook:\n' "$rc" "$STEPS" >&2
		head -n 20 -- "$tmp/stderr" >&2
		exit 1
	fi
	times+=($((t1 - t0)))
done

sorted=$(printf '%s\n' "${times[@]}" | sort -n)
best=$(printf '%s\n' "$sorted" | head -n 1)
median=$(printf '%s\n' "$sorted" | sed -n "$(((RUNS + 1) / 2))p")
if [ $((RUNS % 2)) -eq 0 ]; then
	# Even count: mean of the two middle runs.
	upper=$(printf '%s\n' "$sorted" | sed -n "$((RUNS / 2 + 1))p")
	median=$(((median + upper) / 2))
fi

ms() { # nanoseconds -> "12.3"
	local tenths=$((($1 + 50000) / 100000))
	printf '%d.%d' $((tenths / 10)) $((tenths % 10))
}

printf 'validate %d steps: best %s ms, median %s ms (target < %d ms)\n' \
	"$STEPS" "$(ms "$best")" "$(ms "$median")" "$TARGET_MS"
exit 0
