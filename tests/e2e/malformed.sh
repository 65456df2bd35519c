#!/usr/bin/env bash
# Every file in tests/data/malformed/, plus big cases generated here, must make
# `runbook validate FILE` exit 5 with at least one located message, quickly and
# without sanitizer reports.
#
#   RUNBOOK=build/runbook SRCDIR=. tests/e2e/malformed.sh
#
# Env: RUNBOOK (required) the built binary; SRCDIR the repository root (default:
# two levels above this script); RUNBOOK_SANITIZED=1 allows 3 s per case instead
# of 1 s.
#
# Checks per case:
#   - exit code exactly 5 (within `timeout 5`)
#   - a stderr line starting with "<FILE as passed>:LINE:COL: "
#   - the last stderr line is "nothing was run; fix the file and run again"
#   - no AddressSanitizer / LeakSanitizer / "runtime error" in stderr
#   - no stderr line longer than 4 KiB (a found value must be cut short)
#   - wall time under the budget
#   - if the file has a line "# min-problems: N", at least N located lines
# Two valid files (plain, and with a UTF-8 BOM) must exit 0: if they do not,
# the failures above prove nothing.
# shellcheck disable=SC2317 # the gen_* functions are called through generate
# shellcheck source=lib/harness.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/harness.sh"
harness_init malformed

FINAL_LINE='nothing was run; fix the file and run again'
MAX_LINE=4096
BIG=$((20 * 1024 * 1024))
# Just under the loader's 16 MiB file cap, so the scalar reaches the parser.
BELOW_CAP=$((15 * 1024 * 1024))
DEPTH=10000

DATADIR="$SRCDIR/tests/data/malformed"
if [ ! -d "$DATADIR" ]; then
	setup_failed "$DATADIR is not a directory"
fi

if [ "${RUNBOOK_SANITIZED:-0}" = 1 ]; then
	budget_ms=3000
else
	budget_ms=1000
fi

mkdir "$tmp/gen" "$tmp/out" "$tmp/valid" || setup_failed "cannot make directories in $tmp"

# ------------------------------------------------------------------ helpers

# Prints the number of stderr lines that start with "$1:LINE:COL: ".
located_lines() {
	P="$1" awk '
		BEGIN { p = ENVIRON["P"] ":"; n = 0 }
		index($0, p) == 1 && substr($0, length(p) + 1) ~ /^[0-9]+:[0-9]+: / { n++ }
		END { print n }' "$2"
}

now_ms() {
	local ns
	ns=$(date +%s%N)
	printf '%s\n' "$((ns / 1000000))"
}

# run_case NAME FILE: runs validate on FILE and checks the result.
run_case() {
	local name=$1 file=$2
	local err="$tmp/out/stderr" out="$tmp/out/stdout"
	local t0 t1 ms rc n want last longest reasons=""

	t0=$(now_ms)
	timeout 5 "$RUNBOOK" validate "$file" >"$out" 2>"$err" </dev/null
	rc=$?
	t1=$(now_ms)
	ms=$((t1 - t0))

	if [ "$rc" -eq 124 ]; then
		reasons="timed out after 5 s"
	elif [ "$rc" -ne 5 ]; then
		if [ "$rc" -gt 128 ]; then
			reasons="exit code $rc (killed by signal $((rc - 128))), expected 5"
		else
			reasons="exit code $rc, expected 5"
		fi
	fi

	if grep -q -e 'AddressSanitizer' -e 'LeakSanitizer' -e 'runtime error' -- "$err"; then
		reasons="${reasons:+$reasons; }sanitizer report: $(grep -m1 -e 'AddressSanitizer' -e 'LeakSanitizer' -e 'runtime error' -- "$err" | cut -c1-200)"
	fi

	n=$(located_lines "$file" "$err")
	if [ "$n" -eq 0 ]; then
		reasons="${reasons:+$reasons; }no stderr line starts with '$file:LINE:COL: '"
	fi

	want=$(grep -m1 -E '^# min-problems: [0-9]+$' -- "$file" 2>/dev/null | tr -cd '0-9')
	if [ -n "$want" ] && [ "$n" -lt "$want" ]; then
		reasons="${reasons:+$reasons; }$n located problem(s) reported, expected at least $want"
	fi

	last=$(tail -n 1 -- "$err" | cut -c1-200)
	if [ "$last" != "$FINAL_LINE" ]; then
		reasons="${reasons:+$reasons; }last stderr line is '$last', expected '$FINAL_LINE'"
	fi

	longest=$(awk '{ if (length($0) > m) m = length($0) } END { print m + 0 }' "$err")
	if [ "$longest" -gt "$MAX_LINE" ]; then
		reasons="${reasons:+$reasons; }a stderr line is $longest bytes long (a found value is not cut short)"
	fi

	if [ "$rc" -ne 124 ] && [ "$ms" -ge "$budget_ms" ]; then
		reasons="${reasons:+$reasons; }took $ms ms, budget $budget_ms ms"
	fi

	if [ -z "$reasons" ]; then
		ok "$name"
	else
		not_ok "$name" "$reasons"
		# Show what the binary said, indented, so a failure can be read here.
		if [ -s "$err" ]; then
			show "$err"
		else
			diag '  stderr: (empty)'
		fi
	fi
}

# ------------------------------------------------------------------ generated cases

# The parts of a valid runbook the generated cases are built from.
head_lines() {
	printf 'version: 1\n'
	printf 'name: %s\n' "$1"
	printf 'owner: Ops Team <ops@example.com>\n'
	printf 'reason: Exercise the validator\n'
	printf 'expected: The validator rejects this file\n'
}
step_lines() {
	printf 'steps:\n'
	printf '  - name: install\n'
	printf '    run: echo install\n'
	printf '    rollback: echo uninstall\n'
}
repeat_char() { # CHAR COUNT
	head -c "$2" /dev/zero | tr '\0' "$1"
}

gen_cases=()
generate() { # NAME, then a command (and its arguments) writing the file to stdout
	local name=$1
	shift
	if "$@" >"$tmp/gen/$name"; then
		gen_cases+=("$name")
	else
		not_ok "gen/$name" "could not generate the file"
	fi
}

gen_big_name() { # SIZE
	printf '# malformed: a runbook name of %s bytes (at most 64 characters)\n' "$1"
	head_lines x | sed '/^name:/d'
	printf 'name: '
	repeat_char a "$1"
	printf '\n'
	step_lines
}
gen_big_top_scalar() {
	repeat_char a "$BIG"
	printf '\n'
}
gen_big_quoted_unclosed() { # SIZE
	head_lines big-quoted
	printf 'reason: "'
	repeat_char b "$1"
	printf '\n'
	step_lines
}
gen_deep_seq_top() {
	repeat_char '[' "$DEPTH"
	repeat_char ']' "$DEPTH"
	printf '\n'
}
gen_deep_seq_var() {
	printf '# malformed: a variable whose value is nested %s sequences deep\n' "$DEPTH"
	head_lines deep-seq
	printf 'vars:\n  x: '
	repeat_char '[' "$DEPTH"
	repeat_char ']' "$DEPTH"
	printf '\n'
	step_lines
}
gen_deep_map_env() {
	local i
	printf '# malformed: a step env nested %s mappings deep\n' "$DEPTH"
	head_lines deep-map
	step_lines
	printf '    env: '
	for ((i = 0; i < DEPTH; i++)); do printf '{a: '; done
	printf 'x'
	repeat_char '}' "$DEPTH"
	printf '\n'
}
gen_deep_unclosed() {
	head_lines deep-unclosed
	step_lines
	printf 'redact: '
	repeat_char '[' "$DEPTH"
	printf '\n'
}
gen_many_problems() { # COUNT MIN: COUNT steps with a bad timeout
	local i
	printf '# malformed: %s steps, each with a bad timeout\n' "$1"
	printf '# min-problems: %s\n' "$2"
	head_lines many-problems
	printf 'steps:\n'
	for ((i = 0; i < $1; i++)); do
		printf '  - name: step-%s\n    run: echo %s\n    rollback: none\n    timeout: soon\n' "$i" "$i"
	done
}
gen_wide_alias_bomb() {
	# One anchor of 1000 items, aliased 1000 times: 10^6 nodes when expanded.
	local i
	head_lines wide-alias
	printf 'vars:\n  a: &a ['
	for ((i = 0; i < 999; i++)); do printf 'x,'; done
	printf 'x]\n  b: ['
	for ((i = 0; i < 999; i++)); do printf '*a,'; done
	printf '*a]\n'
	step_lines
}

generate big-scalar-name.yml gen_big_name "$BIG"
generate big-scalar-name-15m.yml gen_big_name "$BELOW_CAP"
generate big-scalar-top.yml gen_big_top_scalar
generate big-quoted-unclosed.yml gen_big_quoted_unclosed "$BIG"
generate big-quoted-unclosed-15m.yml gen_big_quoted_unclosed "$BELOW_CAP"
generate deep-seq-top.yml gen_deep_seq_top
generate deep-seq-var.yml gen_deep_seq_var
generate deep-map-env.yml gen_deep_map_env
generate deep-unclosed.yml gen_deep_unclosed
generate many-problems-900.yml gen_many_problems 900 900
# The loader stops after 1000 problems ("FILE: stopped after 1000 problems").
generate many-problems-5000.yml gen_many_problems 5000 1000
generate wide-alias-bomb.yml gen_wide_alias_bomb

# ------------------------------------------------------------------ controls

# Valid files: if these do not exit 0, every "ok" below is meaningless.
{ head_lines control; step_lines; } >"$tmp/valid/control.yml"
{ printf '\357\273\277'; head_lines control-bom; step_lines; } >"$tmp/valid/control-bom.yml"
for f in "$tmp/valid/control.yml" "$tmp/valid/control-bom.yml"; do
	name="valid/$(basename -- "$f")"
	timeout 5 "$RUNBOOK" validate "$f" >"$tmp/out/stdout" 2>"$tmp/out/stderr" </dev/null
	rc=$?
	if [ "$rc" -eq 0 ]; then
		ok "$name"
	elif [ "$rc" -eq 126 ] || [ "$rc" -eq 127 ]; then
		# The binary cannot be executed at all: 100 identical failures say less.
		not_ok "$name" "$RUNBOOK could not be executed (exit $rc)"
		show "$tmp/out/stderr"
		finish
	else
		not_ok "$name" "a valid runbook exited $rc, expected 0"
		show "$tmp/out/stderr"
	fi
done

# ------------------------------------------------------------------ run

count=0
for f in "$DATADIR"/* "$DATADIR"/.[!.]*; do
	[ -e "$f" ] || continue
	if [ ! -f "$f" ]; then
		not_ok "$(basename -- "$f")" "not a regular file"
		continue
	fi
	count=$((count + 1))
	run_case "$(basename -- "$f")" "$f"
done
if [ "$count" -lt 40 ]; then
	not_ok "data" "only $count files in $DATADIR, expected at least 40"
fi

for name in "${gen_cases[@]}"; do
	run_case "gen/$name" "$tmp/gen/$name"
done

finish
