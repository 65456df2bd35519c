#!/usr/bin/env bash
# End-to-end checks of starting a daemon from a step (docs/apply.md, "Starting
# a daemon from a step"), locally and over SSH (tests/e2e/lib/sshd.sh):
#
# - the documented way, `setsid -f -w sh -c 'exec CMD >>LOG 2>&1 </dev/null &'`,
#   leaves CMD running after apply ends, in every one of many steps (a form
#   with a race, such as `setsid -f CMD` without -w, loses some of them);
# - the naive ways are stopped with the step's process group when the step's
#   shell exits: `CMD &`, `nohup CMD &`, and a `setsid` that only runs after
#   the shell has exited (what `setsid CMD &` is when it loses its race).
#
#   RUNBOOK=build/runbook SRCDIR=. bash tests/e2e/daemon.sh
#
# Env: RUNBOOK (required) the built binary; SRCDIR the repository root;
# RUNBOOK_SANITIZED=1 allows 5x longer waits.
#
# The daemons are `sleep NNN.TAG` (TAG: this script's pid), found with pgrep
# and killed by pid at the end of each check and at exit.
# Output (tests/e2e/lib/harness.sh): `ok N - NAME` or `not ok N - NAME: why`
# per check, then `N passed, M failed`.
# shellcheck source=lib/harness.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/harness.sh"
harness_init daemon --repo-per-check
need_tools git pgrep setsid nohup ssh-keygen /usr/sbin/sshd
TAG=$$
# how many steps start a daemon the documented way: a racy form loses some
STEPS=20

# shellcheck source=lib/sshd.sh
. "$E2E_DIR/lib/sshd.sh"

# pids NUM: the daemons "sleep NUM.TAG" alive, space separated
pids() {
	pgrep -f "^sleep $1\\.${TAG}\$" 2>/dev/null | paste -sd' ' -
}
# kill_daemons NUM...: kills those daemons by pid
kill_daemons() {
	local n p
	for n in "$@"; do
		for p in $(pids "$n"); do
			kill -KILL "$p" 2>/dev/null
		done
	done
}
# shellcheck disable=SC2317 # called at exit (on_cleanup)
cleanup() {
	kill_daemons 401 402 403 404
	[ -n "${SSHD_PID:-}" ] && sshd_stop
}
on_cleanup cleanup

mkdir -p "$HOME/.ssh" && chmod 700 "$HOME/.ssh" ||
	setup_failed "cannot make $HOME/.ssh"
if ! sshd_start "$tmp/sshd" >"$tmp/sshd-start.log" 2>&1; then
	setup_failed "sshd did not start: $(tail -n 5 "$tmp/sshd-start.log" | paste -sd' ' -)"
fi
KH=(--known-hosts "$SSH_KNOWN")

# hdr NAME [HOST]: the top-level keys; with HOST, a target prod on HOST
hdr() {
	printf 'version: 1\nname: %s\nowner: Test Team <test@example.com>\n' "$1"
	printf 'reason: e2e check of daemons\nexpected: the check passes\n'
	if [ -n "${2:-}" ]; then
		printf 'targets:\n  prod:\n    hosts: ["%s"]\n    identity: %s\n' \
			"$2" "$SSH_KEY"
	fi
}

# documented: STEPS steps, each starting one daemon the documented way
documented() {
	local i
	echo 'steps:'
	for i in $(seq 1 "$STEPS"); do
		cat <<EOF
  - name: start$i
    run: setsid -f -w sh -c 'exec sleep 401.$TAG >>$D/daemon.log 2>&1 </dev/null &'
    rollback: none
EOF
	done
}

# naive: the ways that do not survive the step
naive() {
	cat <<EOF
steps:
  - name: background
    run: sleep 402.$TAG >/dev/null 2>&1 &
    rollback: none
  - name: nohup
    run: nohup sleep 403.$TAG >/dev/null 2>&1 &
    rollback: none
  - name: late-setsid
    run: (sleep 0.5; exec setsid sleep 404.$TAG) >/dev/null 2>&1 </dev/null &
    rollback: none
EOF
}

# expect_alive NUM N WHAT: N daemons "sleep NUM.TAG" are alive, now and a
# second later (nothing stops them late)
expect_alive() {
	local got
	got=$(pids "$1" | wc -w)
	check [ "$got" = "$2" ] ||
		bad "expected $2 $3 running after apply, found $got"
	sleep 1
	got=$(pids "$1" | wc -w)
	check [ "$got" = "$2" ] ||
		bad "expected $2 $3 still running a second after apply, found $got"
}

# expect_none NUM WHAT: no daemon "sleep NUM.TAG" is alive, after the time a
# late setsid needs to run (it would have run by then)
expect_none() {
	local got
	got=$(pids "$1")
	check [ -z "$got" ] || bad "expected $2 to be stopped with the step, found pids $got"
}

# run_case WHERE HOST: the documented way and the naive ways on HOST ("" for
# the local target)
run_case() {
	local where=$1 host=$2 p s
	local args=()
	[ -n "$host" ] && args=("${KH[@]}")

	begin "$where-documented-way-survives"
	{ hdr "daemon-$where" "$host"; documented; } >f.yml
	rb run apply f.yml "${args[@]}"
	expect_rc 0
	expect_alive 401 "$STEPS" "daemons started with setsid -f -w"
	# in a session other than the test's (locally: than the step's)
	for p in $(pids 401); do
		s=$(ps -o sid= -p "$p" 2>/dev/null | tr -d ' ')
		check [ "$s" != "$(ps -o sid= -p $$ | tr -d ' ')" ] ||
			bad "expected daemon $p in a session other than the test's"
	done
	kill_daemons 401
	end

	begin "$where-naive-ways-are-stopped"
	{ hdr "daemon-naive-$where" "$host"; naive; } >f.yml
	rb run apply f.yml "${args[@]}"
	expect_rc 0
	sleep $((1 * SLOW))
	expect_none 402 "'sleep &'"
	expect_none 403 "'nohup sleep &'"
	expect_none 404 "a setsid run after the step's shell exited"
	kill_daemons 402 403 404
	end
}

run_case local ""
run_case ssh "127.0.0.1:$SSHD_PORT"

finish
