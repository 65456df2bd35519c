#!/usr/bin/env bash
# End-to-end checks of many SSH hosts at once (--forks 8), written to catch
# data races between the worker threads (run it under ThreadSanitizer: the
# build-tsan build of .ci/run, where any race report ends runbook with exit 66).
# One OpenSSH sshd (tests/e2e/lib/sshd.sh) also listens on 127.0.0.11-18, the
# eight hosts.
#
#   RUNBOOK=build/runbook bash tests/e2e/parallel.sh
#
# Env: RUNBOOK (required) the built binary; RUNBOOK_SANITIZED=1 allows 5x
# longer waits.
#
# Checks:
#   rehearse-mismatch-8  rehearse on 8 hosts whose rollback leaves a marker, so
#                        the preflight run again after the rollback fails on
#                        every host at the same moment: each worker thread adds
#                        its host to the list of mismatches. Exit 3, every host
#                        named, note failed, every step rolled back once.
#                        Three rounds, each in its own repository.
#   apply-one-fails-8    apply on 8 hosts, one host's step fails: exit 1, every
#                        host's applied steps rolled back exactly once, newest
#                        first, note rolled-back.
# A sanitizer report in the stderr of any runbook run of a check, or an exit
# 66 of any of them, fails the check.
# Output (tests/e2e/lib/harness.sh): one `ok N - NAME` or `not ok N - NAME: why`
# per check (with the ThreadSanitizer reports and the last lines of runbook's
# stderr on failure), then `N passed, M failed`. Exits non-zero on any failure,
# or if no check ran.
# shellcheck source=lib/harness.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/harness.sh"
harness_init parallel --operator 'Pat Parallel <pat@example.com>' --repo-per-check
need_tools git "$PY" ssh-keygen ssh-keyscan /usr/sbin/sshd timeout flock

# shellcheck source=lib/sshd.sh
. "$E2E_DIR/lib/sshd.sh"

GATE_PID=	# the holder of the open gate (gate_close)
# shellcheck disable=SC2317 # called at exit (on_cleanup)
stop_daemons() {
	[ -n "$GATE_PID" ] && kill -KILL "$GATE_PID" 2>/dev/null
	sshd_stop
}
on_cleanup stop_daemons

mkdir -p "$HOME/.ssh" && chmod 700 "$HOME/.ssh" ||
	setup_failed "cannot make $HOME/.ssh"

# the eight hosts: extra listen addresses of the one sshd, same host key
ADDRS=(127.0.0.11 127.0.0.12 127.0.0.13 127.0.0.14 127.0.0.15 127.0.0.16
	127.0.0.17 127.0.0.18)
if ! sshd_start_on "$tmp/sshd" "${ADDRS[@]}" >"$tmp/sshd-start.log" 2>&1; then
	setup_failed "sshd did not start: $(tail -n 5 "$tmp/sshd-start.log" | paste -sd' ' -)"
fi
HOSTS=("${ADDRS[@]/%/:$SSHD_PORT}")
KH=(--known-hosts "$SSH_KNOWN")
for a in "${ADDRS[@]}"; do
	ssh-keyscan -p "$SSHD_PORT" "$a" >/dev/null 2>&1 ||
		setup_failed "sshd does not answer on $a:$SSHD_PORT"
done

# ------------------------------------------------------------------ helpers

# finished TAG: false (the caller skips the rest of the check) if the last
# run did not finish by itself: exit 66 is a ThreadSanitizer report
# (TSAN_OPTIONS exitcode=66) and fails the check; 124 and 137 are a timeout,
# which rb has reported.
finished() {
	case $RC in
	66) bad "'$1' exited 66: a ThreadSanitizer report"; return 1 ;;
	124 | 137) return 1 ;;
	esac
}

# tsan_reports: the ThreadSanitizer reports in the stderr of the check's runs
# (ERRS) as diagnostics; end shows only their last lines. Call it before end.
tsan_reports() {
	local e
	for e in "${ERRS[@]}"; do
		grep -q 'WARNING: ThreadSanitizer' "$e" 2>/dev/null || continue
		diag "  ${e#"$tmp"/} (ThreadSanitizer report):"
		sed -n '/WARNING: ThreadSanitizer/,/^SUMMARY/p' "$e" |
			head -n 60 | cut -c1-200 | sed 's/^/#     /'
	done
}

# header and the target `prod` of the eight hosts
header() {
	printf 'version: 1\nname: %s\nowner: Test Team <test@example.com>\n' "$1"
	printf 'reason: e2e check of parallel hosts\nexpected: the check passes\n'
	printf 'targets:\n  prod:\n    hosts: ['
	local h sep=
	for h in "${HOSTS[@]}"; do
		printf '%s"%s"' "$sep" "$h"
		sep=', '
	done
	printf ']\n    identity: %s\n' "$SSH_KEY"
}

# barrier NAME: shell lines that wait (bounded, polling) until all eight
# hosts reached barrier NAME: none goes past it before all are there.
barrier() {
	cat <<EOF
      mkdir -p $D/bar-$1 && touch $D/bar-$1/{{ host }}
      i=0
      while [ \$(ls $D/bar-$1 | wc -l) -lt ${#HOSTS[@]} ]; do
        i=\$((i + 1)); [ \$i -gt $((200 * SLOW)) ] && break
        sleep 0.02
      done
EOF
}

# gate_close NAME: closes gate NAME ($D/gate-NAME) until all eight hosts wait
# at it (bounded). It opens for all of them in one instant: the lines that
# follow `gate NAME` run at the same moment on every host, far closer than
# any polling barrier gets them.
gate_close() {
	local g=$D/gate-$1
	mkdir -p "$g.in"
	(
		exec 9>"$g"
		flock -x 9 || exit 1
		: >"$g.closed"
		i=0
		while [ "$(ls "$g.in" | wc -l)" -lt ${#HOSTS[@]} ] && [ $i -lt $((500 * SLOW)) ]; do
			i=$((i + 1))
			sleep 0.02
		done
	) &
	GATE_PID=$!
	for _ in $(seq 1 100); do
		[ -e "$g.closed" ] && return 0
		sleep 0.02
	done
	bad "gate $1 did not close"
}

# gate NAME: the shell line of a host that waits at gate NAME.
gate() {
	printf '      touch %s.in/{{ host }}; flock -s %s true\n' "$D/gate-$1" "$D/gate-$1"
}

# host_seq FILE HOST: the first words of FILE's lines "WORD HOST", joined by |.
host_seq() {
	awk -v h="$2" '$2 == h { print $1 }' "$1" 2>/dev/null | paste -sd'|' -
}

# newest_id: sets id to the newest change of the repository in $D (through
# rb, so that its stderr is scanned too).
newest_id() {
	id=
	rb newest log -n 1 --json
	finished newest || return 0
	id=$("$PY" -c 'import json,sys; print(json.loads(sys.stdin.readline())["change"])' \
		<"$D/newest.out" 2>/dev/null)
}

# note_check ID STATUS: the note (plain git) has STATUS and every step
# (phase step) that ran is rolled back; prints what is wrong, if anything.
note_check() {
	git show "runbook-notes:changes/${1:0:4}/${1:4:2}/$1.md" 2>/dev/null |
		"$PY" -c '
import sys, yaml
text = sys.stdin.read()
if not text.startswith("---\n"):
    print("no note"); sys.exit()
fm = yaml.safe_load(text.split("\n---\n", 1)[0][4:])
if fm.get("status") != sys.argv[1]:
    print("note status %r, expected %r" % (fm.get("status"), sys.argv[1]))
left = ["%s on %s (%s)" % (s.get("name"), s.get("host"), s.get("rollback_result"))
        for s in fm.get("steps") or []
        if s.get("phase") == "step" and s.get("result") != "not-run"
        and s.get("rollback_result") != "rolled-back"]
if left:
    print("steps not rolled back in the note: " + ", ".join(left))
' "$2" 2>&1
}

# no_unfinished: `runbook status` lists no unfinished change
no_unfinished() {
	rb status status
	finished status
	check grep -q 'no unfinished changes' "$D/status.out" "$D/status.err" 2>/dev/null ||
		bad "expected runbook status to list no unfinished change, found: $(head -3 "$D/status.out" | paste -sd'|' -)"
}

# ------------------------------------------------------------------ rehearse: 8 mismatches at once

# The preflight passes the first time. The step makes a marker whose rollback
# deliberately leaves it behind, so the preflight run again after the rollback
# fails on all eight hosts; a gate makes those eight failures land at once.
# (ThreadSanitizer reports two accesses only if no lock taken in between
# orders them, so the eight threads must record their mismatches while the
# others are still at it. The unlocked append to the list of mismatches that
# src/apply.c once had was caught in about half of the rehearsals with a
# polling barrier instead of the gate, and in 20 of 21 with the gate on a
# loaded 2-CPU machine; hence three rounds.)
rehearse_mismatch() {
	local h n id msg final note
	{
		header e2e-par-rehearse
		printf 'preflight:\n  - name: no marker\n    run: |\n'
		printf '      if [ -e %s/marker-{{ host }} ]; then\n' "$D"
		gate after
		printf '      fi\n'
		printf '      test ! -e %s/marker-{{ host }} && echo clean\n' "$D"
		printf '    expect: { stdout: "^clean$" }\n'
		cat <<-EOF
	steps:
	  - name: make marker
	    run: echo do {{ host }} >> $D/log; touch $D/marker-{{ host }}
	    rollback: echo undo {{ host }} >> $D/log
	EOF
	} >f.yml
	gate_close after
	rb run rehearse f.yml "${KH[@]}" --forks 8
	kill -KILL "$GATE_PID" 2>/dev/null
	wait "$GATE_PID" 2>/dev/null
	GATE_PID=
	expect_rc 3
	finished run || return
	final=$(grep 'baseline did not come back' run.err 2>/dev/null | tail -n 1)
	check [ -n "$final" ] || bad "expected 'baseline did not come back' in run.err"
	for h in "${HOSTS[@]}"; do
		check [ "$(host_seq log "$h")" = 'do|undo' ] ||
			bad "expected on $h 'do|undo', found '$(host_seq log "$h")'"
		check [ -e "marker-$h" ] || bad "expected the marker of $h left behind by its rollback"
		check grep -qxF -- "--- baseline: preflight 'no marker' on $h" run.err ||
			bad "expected a diff for the preflight on $h"
		check grep -qF -- "preflight 'no marker' on $h: " <<<"$final" ||
			bad "expected the final message to name the mismatch on $h"
	done
	n=$(grep -o "preflight 'no marker' on " <<<"$final" | wc -l)
	check [ "$n" = "${#HOSTS[@]}" ] ||
		bad "expected the final message to name ${#HOSTS[@]} mismatches, found $n"
	check [ "$(wc -l <log 2>/dev/null)" = $((2 * ${#HOSTS[@]})) ] ||
		bad "expected $((2 * ${#HOSTS[@]})) log lines, found $(wc -l <log 2>/dev/null)"
	newest_id
	check [ -n "$id" ] || bad "no change in runbook log"
	msg=$(note_check "$id" failed)
	check [ -z "$msg" ] || bad "$msg"
	note=$(git show "runbook-notes:changes/${id:0:4}/${id:4:2}/$id.md" 2>/dev/null)
	check grep -q '^baseline: "differs"$' <<<"$note" || bad "expected the note to say baseline differs"
	no_unfinished
}
begin rehearse-mismatch-8
for round in 1 2 3; do	# three rounds: a race missed once is caught next time
	D=$tmp/$CASE/round-$round
	if ! mkdir -p "$D" || ! cd "$D" || ! git init -q .; then
		bad "round $round: cannot make the repository $D"
		break
	fi
	rehearse_mismatch
	# a failed round names itself and ends the check (H_WHY: the harness's
	# reasons of the open check so far)
	[ -z "$H_WHY" ] || { H_WHY="round $round: $H_WHY"; break; }
done
tsan_reports
end

# ------------------------------------------------------------------ apply: one host of 8 fails

# Step s1 runs on all eight hosts at once (a barrier) and fails on one; the
# others may or may not have started s2 by then. Every step that ran on a
# host is rolled back exactly once there, newest first, the failed one too.
apply_one_fails() {
	local h n w got want id msg BADH=${HOSTS[3]}
	{
		header e2e-par-apply
		printf 'steps:\n  - name: s1\n    run: |\n'
		printf '      echo do1 {{ host }} >> %s/log\n' "$D"
		barrier s1
		printf '      test {{ host }} != %s\n' "$BADH"
		cat <<-EOF
	    rollback: echo undo1 {{ host }} >> $D/log; echo s1 >> $D/rb-{{ host }}
	  - name: s2
	    run: echo do2 {{ host }} >> $D/log
	    rollback: echo undo2 {{ host }} >> $D/log; echo s2 >> $D/rb-{{ host }}
	EOF
	} >f.yml
	rb run apply f.yml "${KH[@]}" --forks 8
	expect_rc 1
	finished run || return
	for h in "${HOSTS[@]}"; do
		got=$(host_seq log "$h")
		if [ "$h" = "$BADH" ]; then
			want='do1|undo1'
		else
			case $got in *do2*) want='do1|do2|undo2|undo1' ;; *) want='do1|undo1' ;; esac
		fi
		check [ "$got" = "$want" ] || bad "expected on $h '$want', found '$got'"
		n=$(grep -cx s1 "rb-$h" 2>/dev/null)
		check [ "${n:-0}" = 1 ] || bad "expected the rollback of s1 on $h to run once, found ${n:-0}"
		n=$(grep -cx s2 "rb-$h" 2>/dev/null)
		case $want in *do2*) w=1 ;; *) w=0 ;; esac
		check [ "${n:-0}" = $w ] || bad "expected the rollback of s2 on $h to run $w times, found ${n:-0}"
	done
	has run.err "s1' on $BADH" "the failed step on $BADH"
	has run.err 'rolled back' "that everything was rolled back"
	newest_id
	check [ -n "$id" ] || bad "no change in runbook log"
	msg=$(note_check "$id" rolled-back)
	check [ -z "$msg" ] || bad "$msg"
	no_unfinished
}
begin apply-one-fails-8
apply_one_fails
tsan_reports
end

finish
