# shellcheck shell=bash
# shellcheck disable=SC2034 # globals are for the scripts that source this
# The harness of the end-to-end tests (tests/e2e/*.sh): reporting, the
# temporary directory and a clean environment, runners, assertions and
# background processes. Source it, then call harness_init:
#
#   # shellcheck source=lib/harness.sh
#   . "$(dirname "${BASH_SOURCE[0]}")/lib/harness.sh"
#   harness_init NAME [--operator 'Name <email>'] [--repo-per-check]
#                     [--home-per-check]
#
# Env: RUNBOOK (required) the built binary; SRCDIR the repository root
# (default: two levels above tests/e2e); RUNBOOK_SANITIZED=1 sets SLOW=5.
#
# Output (TAP): one line per check,
#   ok N - NAME
#   not ok N - NAME: WHY        followed by "#" lines of diagnostics
#   ok N - NAME # SKIP WHY      a check that could not run: counted as
#                               skipped, never as passed
# then the plan "1..N" and the summary "P passed, F failed" (", S skipped"
# when some were skipped). finish exits 0 only if no check failed and at
# least one passed or failed; a script that stops before finish (an error,
# a signal, falling off its end) reports that as a failure and exits non-zero.
#
# Two ways to write a check:
#   one-shot   test a condition, then `ok NAME` or `not_ok NAME WHY`;
#   a block    begin NAME ... end. Assertions inside (check, refute,
#              expect_rc, expect_lines, has, hasnt, has_fixed, expect_dead)
#              count what they asserted and record failures with `bad WHY`.
#              end passes the check only if it asserted something and
#              nothing failed, and fails it for a sanitizer report in the
#              stderr of its runs.
# Assertions run in the harness's shell: one inside $(...) or a pipeline is
# lost.
#
# Globals for the scripts: tmp (private directory, removed at exit), D (the
# check's directory), CASE (the check's name), RC and MS (exit code and wall
# time of the last run), ERRS (stderr files of the check's runs: end scans
# them and shows them on failure), BGPID, out and err (run_clean's output
# files), PY, RUNBOOK (absolute), SRCDIR, E2E_DIR (tests/e2e, absolute), SLOW,
# RUN_LIMIT (seconds; a run longer than that fails), OPERATOR (the git
# identity of HOME), RB_SIGKILL_OK (set: a run that exits 137 was killed on
# purpose, not taken for a hang).

set -u
export LC_ALL=C

passed=0
failed=0
skipped=0
H_N=0			# checks reported
CASE=			# the open check ("" outside begin ... end)
H_WHY=			# its failures
H_ASSERTS=0		# its assertions
H_CWD=			# where to return at its end
H_FINISHED=
H_REPO_PER_CHECK=
H_HOME_PER_CHECK=
H_CLEANUPS=()
ERRS=()
BG=()
D=
RC=
MS=
BGPID=
tmp=
PY=/usr/bin/python3
OPERATOR='Runbook Tester <tester@example.com>'
RB_SIGKILL_OK=
E2E_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# ------------------------------------------------------------------ reporting

# ok NAME: a check that passed.
ok() {
	H_N=$((H_N + 1))
	passed=$((passed + 1))
	printf 'ok %d - %s\n' "$H_N" "$1"
}

# not_ok NAME WHY: a check that failed.
not_ok() {
	H_N=$((H_N + 1))
	failed=$((failed + 1))
	printf 'not ok %d - %s: %s\n' "$H_N" "$1" "$2"
}

# skip NAME WHY: a check that could not run; counted apart, never as passed.
skip() {
	H_N=$((H_N + 1))
	skipped=$((skipped + 1))
	printf 'ok %d - %s # SKIP %s\n' "$H_N" "$1" "$2"
}

# diag TEXT...: a diagnostic line "# TEXT".
diag() { printf '# %s\n' "$*"; }

# show FILE [N]: the first N (5) lines of FILE, indented, as diagnostics.
show() { head -n "${2:-5}" -- "$1" 2>/dev/null | cut -c1-300 | sed 's/^/#   /'; }

# finish: the plan and the summary line; exits 1 if a check failed or none
# passed or failed, else 0.
finish() {
	if [ -n "$CASE" ]; then
		not_ok "$CASE" "harness: the check has no end"
		CASE=
	fi
	if [ $((passed + failed)) -eq 0 ]; then
		not_ok harness "no check ran"
	fi
	_h_summary
	[ "$failed" -eq 0 ] && exit 0
	exit 1
}

_h_summary() {
	H_FINISHED=1
	printf '1..%d\n' "$H_N"
	if [ "$skipped" -gt 0 ]; then
		printf '%d passed, %d failed, %d skipped\n' "$passed" "$failed" "$skipped"
	else
		printf '%d passed, %d failed\n' "$passed" "$failed"
	fi
}

# setup_failed WHY: the script cannot run its checks.
setup_failed() {
	not_ok setup "$1"
	finish
}

# ------------------------------------------------------------------ setup

# on_cleanup FUNCTION: run FUNCTION at exit, before the temporary directory
# is removed (after the background runbooks are killed).
on_cleanup() { H_CLEANUPS+=("$1"); }

_h_on_exit() {
	local rc=$? p f
	trap - EXIT
	if [ -z "$H_FINISHED" ]; then
		if [ -n "$CASE" ]; then
			not_ok "$CASE" "the script stopped inside this check (exit $rc)"
			CASE=
		fi
		not_ok harness "the script stopped before finish (exit $rc)"
		_h_summary
		[ "$rc" != 0 ] || rc=1
	fi
	for p in "${BG[@]}"; do
		kill -KILL "$p" 2>/dev/null
	done
	for f in "${H_CLEANUPS[@]}"; do
		"$f"
	done
	cd / && [ -n "$tmp" ] && rm -rf -- "$tmp"
	exit "$rc"
}

# git_identity: the git identity of $HOME is OPERATOR.
git_identity() {
	local name=${OPERATOR% <*} email=${OPERATOR##*<}
	mkdir -p "$HOME" "$XDG_CONFIG_HOME" &&
		git config --global user.name "$name" &&
		git config --global user.email "${email%>}" &&
		git config --global init.defaultBranch main
}

# harness_init NAME [--operator 'Name <email>'] [--repo-per-check]
#     [--home-per-check]: checks RUNBOOK and SRCDIR, makes $tmp (removed at
# exit, with the background runbooks killed), and a clean environment: no
# variable of runbook, git, ssh-agent or colour from outside; HOME is
# $tmp/home with OPERATOR as its git identity. --repo-per-check: each check's
# directory is a new git repository; --home-per-check: each check has its
# own HOME ($D/.home, same identity).
harness_init() {
	local name=$1
	shift
	while [ $# -gt 0 ]; do
		case $1 in
		--operator) OPERATOR=$2; shift ;;
		--repo-per-check) H_REPO_PER_CHECK=1 ;;
		--home-per-check) H_HOME_PER_CHECK=1 ;;
		*) setup_failed "harness_init: unknown option $1" ;;
		esac
		shift
	done
	trap _h_on_exit EXIT
	trap 'exit 130' INT TERM HUP
	trap 'exit 141' PIPE

	if [ "${RUNBOOK_SANITIZED:-0}" = 1 ]; then
		SLOW=5
	else
		SLOW=1
	fi
	# A hard bound on any single run, so a hang fails a check, not the suite.
	RUN_LIMIT=$((60 * SLOW))

	local src=${SRCDIR:-$E2E_DIR/../..}
	SRCDIR=$(cd "$src" 2>/dev/null && pwd) ||
		setup_failed "SRCDIR='$src' is not a directory"
	[ -n "${RUNBOOK:-}" ] ||
		setup_failed 'RUNBOOK is not set (path to the built runbook binary)'
	case $RUNBOOK in /*) ;; *) RUNBOOK=$PWD/$RUNBOOK ;; esac
	if [ ! -f "$RUNBOOK" ] || [ ! -x "$RUNBOOK" ]; then
		setup_failed "RUNBOOK=$RUNBOOK is not an executable file"
	fi

	tmp=$(mktemp -d "${TMPDIR:-/tmp}/runbook-$name.XXXXXX") ||
		setup_failed 'mktemp -d failed'
	tmp=$(cd "$tmp" && pwd -P) || setup_failed "cannot enter $tmp"
	out=$tmp/stdout
	err=$tmp/stderr

	unset NO_COLOR RUNBOOK_NOTES RUNBOOK_FAILPOINT \
		GIT_DIR GIT_WORK_TREE GIT_INDEX_FILE GIT_OBJECT_DIRECTORY \
		GIT_CEILING_DIRECTORIES GIT_CONFIG_GLOBAL GIT_CONFIG_SYSTEM \
		GIT_AUTHOR_NAME GIT_AUTHOR_EMAIL GIT_COMMITTER_NAME GIT_COMMITTER_EMAIL \
		SSH_AUTH_SOCK SSH_AGENT_PID SSH_CONNECTION SSH_CLIENT SSH_TTY
	export GIT_CONFIG_NOSYSTEM=1 HOME=$tmp/home XDG_CONFIG_HOME=$tmp/home/.config
	git_identity || setup_failed "cannot write the git identity in $HOME (is git installed?)"
	cd "$tmp" || setup_failed "cannot enter $tmp"
}

# need_tools TOOL...: each is a command; a missing one fails the setup.
need_tools() {
	local t
	for t in "$@"; do
		command -v "$t" >/dev/null 2>&1 || setup_failed "$t is missing"
	done
}

# ------------------------------------------------------------------ checks

# begin [--here] NAME: opens a check. Without --here, in a new directory
# D=$tmp/NAME (see harness_init's options), made the working directory;
# with --here, D is the working directory.
begin() {
	local here=
	if [ "$1" = --here ]; then
		here=1
		shift
	fi
	[ -z "$CASE" ] || not_ok "$CASE" "harness: no end before 'begin $1'"
	CASE=$1 H_WHY='' H_ASSERTS=0 ERRS=() H_CWD=$PWD
	if [ -n "$here" ]; then
		D=$PWD
		return 0
	fi
	D=$tmp/$1
	if ! mkdir -- "$D" 2>/dev/null; then
		not_ok "$CASE" "harness: cannot make a fresh directory $D (a check of the same name?)"
		CASE=
		finish
	fi
	if [ -n "$H_HOME_PER_CHECK" ]; then
		export HOME=$D/.home XDG_CONFIG_HOME=$D/.home/.config
		git_identity || bad "cannot write the git identity in $HOME"
	fi
	if [ -n "$H_REPO_PER_CHECK" ]; then
		git init -q "$D" || bad "git init $D failed"
	fi
	if ! cd "$D"; then
		not_ok "$CASE" "harness: cannot enter $D"
		CASE=
		finish
	fi
}

# again NAME: opens a further check in the directory of the previous one.
again() {
	[ -z "$CASE" ] || not_ok "$CASE" "harness: no end before 'again $1'"
	CASE=$1 H_WHY='' H_ASSERTS=0 ERRS=() H_CWD=$PWD
	cd "$D" || bad "cannot enter $D"
}

# bad WHY...: a failed assertion of the open check (all reasons are kept).
bad() {
	if [ -z "$CASE" ]; then
		not_ok '(outside a check)' "harness: 'bad' outside a check: $*"
		return 0
	fi
	H_ASSERTS=$((H_ASSERTS + 1))
	H_WHY="${H_WHY:+$H_WHY; }$*"
}

# check COMMAND...: runs COMMAND as an assertion; its status is returned, so
# the caller says why it failed:  check [ "$n" = 3 ] || bad "expected 3, found $n"
check() {
	H_ASSERTS=$((H_ASSERTS + 1))
	"$@"
}

# refute COMMAND...: an assertion that COMMAND fails; returns 0 if it did.
#   refute grep -q secret out || bad "the secret is in out"
refute() {
	H_ASSERTS=$((H_ASSERTS + 1))
	! "$@"
}

# matches STRING ERE: STRING matches ERE, as an assertion:
#   check matches "$id" '^[0-9]+$' || bad "not a number: $id"
matches() { [[ $1 =~ $2 ]]; }

# end: closes the check: ok if it asserted something and nothing failed,
# else not ok with its reasons and the last lines of its runs' stderr.
end() {
	local e
	if [ -z "$CASE" ]; then
		not_ok harness "'end' without 'begin'"
		return 0
	fi
	for e in "${ERRS[@]}"; do
		if grep -Eq 'ThreadSanitizer|AddressSanitizer|LeakSanitizer|runtime error:' "$e" 2>/dev/null; then
			bad "sanitizer report in ${e#"$tmp"/}"
		fi
	done
	if [ -z "$H_WHY" ] && [ "$H_ASSERTS" -eq 0 ]; then
		H_WHY="the check asserted nothing"
	fi
	if [ -z "$H_WHY" ]; then
		ok "$CASE"
	else
		not_ok "$CASE" "$H_WHY"
		for e in "${ERRS[@]}"; do
			[ -s "$e" ] || continue
			printf '#   %s (last lines):\n' "${e#"$tmp"/}"
			tail -n 12 -- "$e" | cut -c1-300 | sed 's/^/#     /'
		done
	fi
	CASE=
	cd "$H_CWD" || cd "$tmp" || exit 1
}

# _h_file FILE: FILE, or $D/FILE when FILE is a relative name of a run's
# output (TAG.out, TAG.err: rb writes them in $D wherever the check is).
_h_file() {
	case $1 in
	/*) printf '%s' "$1" ;;
	*.out|*.err) printf '%s/%s' "$D" "$1" ;;
	*) printf '%s' "$1" ;;
	esac
}

# _h_errs FILE: FILE is the stderr of a run of the open check.
_h_errs() {
	local e
	[ -n "$CASE" ] || return 0
	for e in "${ERRS[@]}"; do
		[ "$e" = "$1" ] && return 0
	done
	ERRS+=("$1")
}

# ------------------------------------------------------------------ assertions

# expect_rc WANT [WHAT]: the last run exited WANT.
expect_rc() {
	check [ "$RC" = "$1" ] || bad "${2:+$2: }expected exit $1, found $RC"
}

# expect_lines FILE 'a|b|c' [WHAT]: FILE's lines, joined with |.
expect_lines() {
	local got
	got=$(paste -sd'|' "$(_h_file "$1")" 2>/dev/null)
	check [ "$got" = "$2" ] ||
		bad "${3:+$3: }expected $(basename "$1") to be '$2', found '$got'"
}

# has [-i] FILE ERE WHAT: FILE has a line matching ERE (-i: ignoring case).
has() {
	local opt=-Eq
	if [ "$1" = -i ]; then
		opt=-Eiq
		shift
	fi
	check grep "$opt" -- "$2" "$(_h_file "$1")" 2>/dev/null ||
		bad "expected $(basename "$1") to mention $3"
}

# hasnt [-i] FILE ERE WHAT: no line of FILE matches ERE.
hasnt() {
	local opt=-Eq
	if [ "$1" = -i ]; then
		opt=-Eiq
		shift
	fi
	refute grep "$opt" -- "$2" "$(_h_file "$1")" 2>/dev/null ||
		bad "expected $(basename "$1") not to mention $3"
}

# has_fixed FILE STRING WHAT: FILE contains STRING.
has_fixed() {
	check grep -Fq -- "$2" "$(_h_file "$1")" 2>/dev/null ||
		bad "expected $(basename "$1") to contain '$2' ($3)"
}

# expect_dead SECONDS WHAT PID...: within SECONDS none of PID is alive.
expect_dead() {
	local n=$(($1 * 20)) what=$2 p i left
	shift 2
	for ((i = 0; i < n; i++)); do
		left=
		for p in "$@"; do
			alive "$p" && left="$left $p"
		done
		if [ -z "$left" ]; then
			check true
			return 0
		fi
		sleep 0.05
	done
	bad "expected $what to be stopped, found still running:$left ($(ps -o pid=,args= -p "${left# }" 2>/dev/null | cut -c1-120 | paste -sd, -))"
}

# ------------------------------------------------------------------ runs

now_ms() { date +%s%3N; }

# rb TAG ARGS...: runs runbook ARGS, stdout to $D/TAG.out, stderr to
# $D/TAG.err. Sets RC (exit code) and MS (wall time in ms); a run that does
# not end within RUN_LIMIT fails the check (124; also 137, the kill after
# the grace time, unless RB_SIGKILL_OK is set because a SIGKILL is expected).
rb() { rb_cmd "$1" "$RUNBOOK" "${@:2}"; }

# rb_cmd TAG COMMAND...: the same for any command (runbook under time(1),
# env -u ...).
rb_cmd() {
	local tag=$1 t0
	shift
	_h_errs "$D/$tag.err"
	t0=$(now_ms)
	# (the braces keep bash's "Killed" job report off the test output)
	{ timeout -k 5 "$RUN_LIMIT" "$@" >"$D/$tag.out" 2>"$D/$tag.err"; RC=$?; } 2>/dev/null
	MS=$(($(now_ms) - t0))
	if [ "$RC" = 124 ] || { [ "$RC" = 137 ] && [ -z "$RB_SIGKILL_OK" ]; }; then
		bad "'$tag' did not finish within ${RUN_LIMIT}s"
	fi
}

# last_note: prints the note of the newest change in the current
# directory's notes (`runbook log -n 1` for its id, then plain git, so a
# bug in runbook's own reading of notes cannot hide one in the note).
last_note() {
	local id
	id=$("$RUNBOOK" log -n 1 --json | "$PY" -c 'import json,sys; print(json.loads(sys.stdin.readline())["change"])') || return 1
	git show "runbook-notes:changes/${id:0:4}/${id:4:2}/$id.md"
}

# CLEAN_ENV: NAME=VALUE words run_clean adds to its environment.
CLEAN_ENV=()

# run_clean ARGS...: runs runbook ARGS in an empty environment (PATH, HOME,
# LC_ALL=C and CLEAN_ENV), stdin /dev/null, within 10 s; stdout to $out,
# stderr to $err. Sets RC.
run_clean() {
	_h_errs "$err"
	env -i PATH=/usr/bin:/bin HOME="$HOME" LC_ALL=C "${CLEAN_ENV[@]}" \
		timeout 10 "$RUNBOOK" "$@" >"$out" 2>"$err" </dev/null
	RC=$?
}

# ------------------------------------------------------------------ background

# alive PID: the process exists and is not a zombie.
alive() {
	local st
	kill -0 "$1" 2>/dev/null || return 1
	st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 1
	[ -n "$st" ] && [ "$st" != Z ]
}

# start_bg TAG ARGS...: runs runbook ARGS in the background (output as rb);
# sets BGPID. It is killed at exit if still running.
start_bg() {
	local tag=$1
	shift
	_h_errs "$D/$tag.err"
	"$RUNBOOK" "$@" >"$D/$tag.out" 2>"$D/$tag.err" &
	BGPID=$!
	BG+=("$BGPID")
}

# wait_bg PID SECONDS: waits for it to end; sets RC and MS (from this call).
# Returns 1, with RC=999, if it had to be killed.
wait_bg() {
	local i n=$(($2 * 20)) t0
	t0=$(now_ms)
	for ((i = 0; i < n; i++)); do
		alive "$1" || break
		sleep 0.05
	done
	MS=$(($(now_ms) - t0))
	if alive "$1"; then
		kill -KILL "$1" 2>/dev/null
		wait "$1" 2>/dev/null
		RC=999
		return 1
	fi
	wait "$1"
	RC=$?
	return 0
}

# kill_bg: kill -9 of BGPID; waits for it and sets RC (137 when SIGKILL
# ended it). (stderr is off meanwhile: it keeps bash's "Killed" job report
# off the output)
kill_bg() {
	local i
	exec 3>&2 2>/dev/null
	kill -KILL "$BGPID"
	for ((i = 0; i < 100; i++)); do
		alive "$BGPID" || break
		sleep 0.05
	done
	wait "$BGPID"
	RC=$?
	exec 2>&3 3>&-
}

# wait_files SECONDS FILE...: returns 0 once every FILE exists, 1 if they
# do not within SECONDS.
wait_files() {
	local i n=$(($1 * 20)) f all
	shift
	for ((i = 0; i < n; i++)); do
		all=1
		for f in "$@"; do
			[ -e "$f" ] || all=
		done
		[ -n "$all" ] && return 0
		sleep 0.05
	done
	return 1
}
