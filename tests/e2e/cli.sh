#!/usr/bin/env bash
# The command line: help, version, and usage errors (exit 2) before anything
# is read; input errors (exit 5) name what is wrong.
#
#   RUNBOOK=build/runbook SRCDIR=. tests/e2e/cli.sh
# shellcheck disable=SC2086 # "run_clean $args" splits the arguments on purpose
# shellcheck source=lib/harness.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/harness.sh"
harness_init cli

# exits NAME CODE ARGS...: runbook ARGS exits CODE.
exits() {
	local name=$1 code=$2
	shift 2
	begin --here "$name"
	run_clean "$@"
	expect_rc "$code" "runbook $*"
	end
}

# usage_error NAME ARGS...: exit 2, one "runbook: " message on stderr,
# nothing on stdout.
usage_error() {
	local name=$1
	shift
	run_clean "$@"
	if [ "$RC" -eq 2 ] && [ ! -s "$out" ] && [ "$(wc -l <"$err")" -eq 1 ] &&
	   grep -q '^runbook: .*expected' "$err"; then
		ok "$name"
	else
		not_ok "$name" "runbook $* exited $RC with $(wc -l <"$err") stderr line(s); expected 2 and one 'runbook: ... expected ...' line"
		show "$err"
	fi
}

cat >"$tmp/ok.yml" <<'EOF'
version: 1
name: cli
owner: Ops <ops@example.com>
reason: A valid runbook for the command line tests
expected: it validates
vars:
  x: "0"
steps:
  - name: one
    run: echo one
    rollback: none
EOF

# ------------------------------------------------------------ help, version

for args in "--help" "-h" "help"; do
	run_clean $args
	if [ "$RC" -eq 0 ] && [ ! -s "$err" ] && grep -q '^usage: runbook' "$out" &&
	   [ "$(grep -cE '^  (validate|plan|apply|rehearse|rollback|status|log|show) ' "$out")" -eq 8 ]; then
		ok "runbook $args: usage with every command"
	else
		not_ok "runbook $args" "exit $RC"
		show "$out"
	fi
done

run_clean --help
if grep -q 'exit codes' "$out" && grep -q '5 invalid' "$out"; then
	ok "--help lists the exit codes"
else
	not_ok "--help exit codes" "no exit code list"
fi

for args in "--version" "-V"; do
	run_clean $args
	v=$(cat "$out")
	if [ "$RC" -eq 0 ] && [ ! -s "$err" ] && grep -qE '^runbook [0-9]+\.[0-9]+' "$out" &&
	   grep -q 'libyaml [0-9]' "$out" && grep -q 'libgit2 [0-9]' "$out" &&
	   grep -q 'libssh2 [0-9]' "$out" && grep -q 'PCRE2 [0-9]' "$out"; then
		ok "runbook $args names runbook, libyaml, libgit2, libssh2, PCRE2"
	else
		not_ok "runbook $args" "exit $RC, got: $v"
	fi
done

run_clean validate --help
if [ "$RC" -eq 0 ] && [ ! -s "$err" ] && grep -q '^usage: runbook validate .*FILE' "$out" &&
   grep -q -- '--json' "$out" && grep -q -- '--var' "$out" &&
   ! grep -q -- '--dry-run' "$out" && ! grep -q -- '--target' "$out"; then
	ok "validate --help: its usage and only its options"
else
	not_ok "validate --help" "exit $RC"
	show "$out" 12
fi

run_clean plan --help
if [ "$RC" -eq 0 ] && grep -q '^usage: runbook plan' "$out" && grep -q -- '--target' "$out"; then
	ok "plan --help"
else
	not_ok "plan --help" "exit $RC"
fi

for args in "help validate" "--help validate" "validate ok.yml --help" "validate -h"; do
	run_clean $args
	if [ "$RC" -eq 0 ] && grep -q '^usage: runbook validate' "$out"; then
		ok "runbook $args: validate's help"
	else
		not_ok "runbook $args" "exit $RC"
	fi
done

# --help runs nothing: a missing file is not read
exits "validate missing.yml --help: exit 0 (help, no reading)" 0 validate "$tmp/missing.yml" --help

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

run_clean validate --frob ok.yml
if grep -qF -- '--frob' "$err"; then
	ok "an unknown option is named in the message"
else
	not_ok "unknown option message" "does not name --frob"
fi
run_clean validate --dry-run ok.yml
if grep -qF -- '--dry-run' "$err" && grep -q 'validate --help' "$err"; then
	ok "a misplaced option is named, with where to look"
else
	not_ok "misplaced option message" "$(cat "$err")"
fi
run_clean frobnicate
if grep -q '"frobnicate"' "$err"; then
	ok "an unknown command is named in the message"
else
	not_ok "unknown command message" "$(cat "$err")"
fi

# a usage error is found before any file is read
exits "usage error wins over a missing file" 2 validate --bogus "$tmp/missing.yml"

# ------------------------------------------------------------ input errors

run_clean validate "$tmp/missing.yml"
if [ "$RC" -eq 5 ] && grep -qF "$tmp/missing.yml" "$err" && [ ! -s "$out" ]; then
	ok "missing file: exit 5, message names the file"
else
	not_ok "missing file" "exit $RC"
	show "$err"
fi

mkdir "$tmp/dir.yml"
run_clean validate "$tmp/dir.yml"
if [ "$RC" -eq 5 ] && grep -qF "$tmp/dir.yml" "$err"; then
	ok "a directory: exit 5, message names it"
else
	not_ok "directory" "exit $RC"
	show "$err"
fi

run_clean validate /dev/null
if [ "$RC" -eq 5 ] && grep -qF "/dev/null" "$err"; then
	ok "a device: exit 5"
else
	not_ok "/dev/null" "exit $RC"
fi

if [ "$(id -u)" -ne 0 ]; then
	cp ok.yml unreadable.yml && chmod 000 unreadable.yml
	run_clean validate unreadable.yml
	if [ "$RC" -eq 5 ] && grep -qF "unreadable.yml" "$err"; then
		ok "an unreadable file: exit 5, message names it"
	else
		not_ok "unreadable file" "exit $RC"
	fi
	chmod 600 unreadable.yml
else
	skip "an unreadable file: exit 5, message names it" "running as root, every file is readable"
fi

run_clean validate ok.yml "$tmp/missing.yml"
if [ "$RC" -eq 5 ] && grep -q '^ok.yml: ok' "$out" && grep -qF "$tmp/missing.yml" "$err"; then
	ok "a missing file among good ones: the good ones are still checked, exit 5"
else
	not_ok "missing among good" "exit $RC"
fi

cp ok.yml ./-dash.yml
exits "'--' ends options: a file named -dash.yml" 0 validate -- -dash.yml
exits "options after the file" 0 validate ok.yml --quiet
exits "--long=value form" 0 validate --var=x=1 ok.yml
exits "-eKEY=VALUE form" 0 validate -ex=1 ok.yml
exits "--no-color is accepted" 0 validate --no-color ok.yml

finish
