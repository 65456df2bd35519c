#!/usr/bin/env bash
# The command line: help, version, and usage errors (exit 2) before anything
# is read; input errors (exit 5) name what is wrong.
#
#   RUNBOOK=build/runbook SRCDIR=. tests/e2e/cli.sh
# shellcheck disable=SC2086 # "rb $args" splits the arguments on purpose
set -u
export LC_ALL=C

passed=0
failed=0
ok() { printf 'ok %s\n' "$1"; passed=$((passed + 1)); }
not_ok() { printf 'not ok %s: %s\n' "$1" "$2"; failed=$((failed + 1)); }
finish() {
	printf '%s passed, %s failed\n' "$passed" "$failed"
	[ "$failed" -eq 0 ]
	exit
}

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRCDIR=${SRCDIR:-$(cd "$script_dir/../.." && pwd)}
SRCDIR=$(cd "$SRCDIR" && pwd) || exit 1

if [ -z "${RUNBOOK:-}" ] || [ ! -x "$RUNBOOK" ]; then
	not_ok setup "RUNBOOK='${RUNBOOK:-}' is not an executable file"
	finish
fi
case $RUNBOOK in /*) ;; *) RUNBOOK=$(pwd)/$RUNBOOK ;; esac

tmp=$(mktemp -d "${TMPDIR:-/tmp}/runbook-cli.XXXXXX") || {
	not_ok setup "mktemp -d failed"
	finish
}
trap 'rm -rf -- "$tmp"' EXIT
trap 'exit 130' INT TERM
out=$tmp/stdout
err=$tmp/stderr
cd "$tmp" || exit 1

rb() {
	env -i PATH=/usr/bin:/bin HOME="$tmp" LC_ALL=C \
		timeout 10 "$RUNBOOK" "$@" >"$out" 2>"$err" </dev/null
	rc=$?
}

show() { head -n "${2:-5}" -- "$1" | cut -c1-300 | sed 's/^/#   /'; }

# expect_rc NAME CODE ARGS...: runbook ARGS exits CODE.
expect_rc() {
	local name=$1 code=$2
	shift 2
	rb "$@"
	if [ "$rc" -eq "$code" ]; then
		ok "$name"
	else
		not_ok "$name" "runbook $* exited $rc, expected $code"
		show "$err"
	fi
}

# usage_error NAME ARGS...: exit 2, one "runbook: " message on stderr,
# nothing on stdout.
usage_error() {
	local name=$1
	shift
	rb "$@"
	if [ "$rc" -eq 2 ] && [ ! -s "$out" ] && [ "$(wc -l <"$err")" -eq 1 ] &&
	   grep -q '^runbook: .*expected' "$err"; then
		ok "$name"
	else
		not_ok "$name" "runbook $* exited $rc with $(wc -l <"$err") stderr line(s); expected 2 and one 'runbook: ... expected ...' line"
		show "$err"
	fi
}

cat >"$tmp/ok.yml" <<'EOF'
version: 1
name: cli
owner: Ops <ops@example.com>
reason: A valid runbook for the command line tests
expected: it validates
steps:
  - name: one
    run: echo one
    rollback: none
EOF

# ------------------------------------------------------------ help, version

for args in "--help" "-h" "help"; do
	rb $args
	if [ "$rc" -eq 0 ] && [ ! -s "$err" ] && grep -q '^usage: runbook' "$out" &&
	   [ "$(grep -cE '^  (validate|plan|apply|rehearse|rollback|status|log|show) ' "$out")" -eq 8 ]; then
		ok "runbook $args: usage with every command"
	else
		not_ok "runbook $args" "exit $rc"
		show "$out"
	fi
done

rb --help
if grep -q 'exit codes' "$out" && grep -q '5 invalid' "$out"; then
	ok "--help lists the exit codes"
else
	not_ok "--help exit codes" "no exit code list"
fi

for args in "--version" "-V"; do
	rb $args
	v=$(cat "$out")
	if [ "$rc" -eq 0 ] && [ ! -s "$err" ] && grep -qE '^runbook [0-9]+\.[0-9]+' "$out" &&
	   grep -q 'libyaml [0-9]' "$out" && grep -q 'libgit2 [0-9]' "$out" &&
	   grep -q 'libssh2 [0-9]' "$out" && grep -q 'PCRE2 [0-9]' "$out"; then
		ok "runbook $args names runbook, libyaml, libgit2, libssh2, PCRE2"
	else
		not_ok "runbook $args" "exit $rc, got: $v"
	fi
done

rb validate --help
if [ "$rc" -eq 0 ] && [ ! -s "$err" ] && grep -q '^usage: runbook validate .*FILE' "$out" &&
   grep -q -- '--json' "$out" && grep -q -- '--var' "$out" &&
   ! grep -q -- '--dry-run' "$out" && ! grep -q -- '--target' "$out"; then
	ok "validate --help: its usage and only its options"
else
	not_ok "validate --help" "exit $rc"
	show "$out" 12
fi

rb plan --help
if [ "$rc" -eq 0 ] && grep -q '^usage: runbook plan' "$out" && grep -q -- '--target' "$out"; then
	ok "plan --help"
else
	not_ok "plan --help" "exit $rc"
fi

for args in "help validate" "--help validate" "validate ok.yml --help" "validate -h"; do
	rb $args
	if [ "$rc" -eq 0 ] && grep -q '^usage: runbook validate' "$out"; then
		ok "runbook $args: validate's help"
	else
		not_ok "runbook $args" "exit $rc"
	fi
done

# --help runs nothing: a missing file is not read
expect_rc "validate missing.yml --help: exit 0 (help, no reading)" 0 validate "$tmp/missing.yml" --help

# ------------------------------------------------------------ usage errors

usage_error "no arguments: exit 2" 
usage_error "unknown command: exit 2" frobnicate
usage_error "unknown option first: exit 2" --bogus
usage_error "unknown long option: exit 2" validate --frob ok.yml
usage_error "unknown short option: exit 2" validate -x ok.yml
usage_error "option of another command (validate --dry-run): exit 2" validate --dry-run ok.yml
usage_error "option of another command (validate -t): exit 2" validate -t prod ok.yml
usage_error "option of another command (plan --forks): exit 2" plan --forks 3 ok.yml
usage_error "validate without a file: exit 2" validate
usage_error "plan without a file: exit 2" plan
usage_error "plan with two files: exit 2" plan ok.yml ok.yml
usage_error "-e without '=': exit 2" validate -e version ok.yml
usage_error "--var without '=': exit 2" plan --var version ok.yml
usage_error "-e with a bad name: exit 2" plan -e 1x=2 ok.yml
usage_error "-e with an empty name: exit 2" plan -e =2 ok.yml
usage_error "-t without its value: exit 2" plan ok.yml -t
usage_error "a flag given a value: exit 2" validate --json=yes ok.yml
usage_error "plan --dry-run (rollback's option): exit 2" plan --dry-run ok.yml

rb validate --frob ok.yml
if grep -qF -- '--frob' "$err"; then
	ok "an unknown option is named in the message"
else
	not_ok "unknown option message" "does not name --frob"
fi
rb validate --dry-run ok.yml
if grep -qF -- '--dry-run' "$err" && grep -q 'validate --help' "$err"; then
	ok "a misplaced option is named, with where to look"
else
	not_ok "misplaced option message" "$(cat "$err")"
fi
rb frobnicate
if grep -q '"frobnicate"' "$err"; then
	ok "an unknown command is named in the message"
else
	not_ok "unknown command message" "$(cat "$err")"
fi

# a usage error is found before any file is read
expect_rc "usage error wins over a missing file" 2 validate --bogus "$tmp/missing.yml"

# ------------------------------------------------------------ input errors

rb validate "$tmp/missing.yml"
if [ "$rc" -eq 5 ] && grep -qF "$tmp/missing.yml" "$err" && [ ! -s "$out" ]; then
	ok "missing file: exit 5, message names the file"
else
	not_ok "missing file" "exit $rc"
	show "$err"
fi

mkdir "$tmp/dir.yml"
rb validate "$tmp/dir.yml"
if [ "$rc" -eq 5 ] && grep -qF "$tmp/dir.yml" "$err"; then
	ok "a directory: exit 5, message names it"
else
	not_ok "directory" "exit $rc"
	show "$err"
fi

rb validate /dev/null
if [ "$rc" -eq 5 ] && grep -qF "/dev/null" "$err"; then
	ok "a device: exit 5"
else
	not_ok "/dev/null" "exit $rc"
fi

if [ "$(id -u)" -ne 0 ]; then
	cp ok.yml unreadable.yml && chmod 000 unreadable.yml
	rb validate unreadable.yml
	if [ "$rc" -eq 5 ] && grep -qF "unreadable.yml" "$err"; then
		ok "an unreadable file: exit 5, message names it"
	else
		not_ok "unreadable file" "exit $rc"
	fi
	chmod 600 unreadable.yml
fi

rb validate ok.yml "$tmp/missing.yml"
if [ "$rc" -eq 5 ] && grep -q '^ok.yml: ok' "$out" && grep -qF "$tmp/missing.yml" "$err"; then
	ok "a missing file among good ones: the good ones are still checked, exit 5"
else
	not_ok "missing among good" "exit $rc"
fi

cp ok.yml ./-dash.yml
expect_rc "'--' ends options: a file named -dash.yml" 0 validate -- -dash.yml
expect_rc "options after the file" 0 validate ok.yml --quiet
expect_rc "--long=value form" 0 validate --var=x=1 ok.yml
expect_rc "-eKEY=VALUE form" 0 validate -ex=1 ok.yml
expect_rc "--no-color is accepted" 0 validate --no-color ok.yml

finish
