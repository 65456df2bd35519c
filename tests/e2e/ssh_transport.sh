#!/usr/bin/env bash
# End-to-end checks of what the SSH transport can get wrong (issue 17): one
# long-lived remote shell per host runs every command, framed on the
# channel's two streams (src/ssh_shell.h). Binary output and fake markers,
# a command reading stdin, output with no final newline, lines over 64 KiB
# on both streams at once, a command that closes stdout early, the remote
# shell killed between commands (replaced, nothing runs twice) and while a
# command runs (outcome unknown, rolled back, nothing left running).
# Each check also runs with RUNBOOK_SSH_CHANNELS=1 (one channel per command)
# where noted, so both transports keep the same contract.
#
#   RUNBOOK=build/runbook bash tests/e2e/ssh_transport.sh
# shellcheck source=lib/harness.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/harness.sh"
harness_init ssh_transport --operator 'Sam Operator <sam@example.com>' --repo-per-check
need_tools git pgrep /usr/sbin/sshd ssh-keygen
TAG=$$

# shellcheck source=lib/sshd.sh
. "$E2E_DIR/lib/sshd.sh"
leftovers() {
	pgrep -f "sleep [0-9]+\.${TAG}([^0-9]|\$)" 2>/dev/null | paste -sd' ' -
}
stop_daemons() {
	local p
	sshd_stop
	for p in $(leftovers); do kill -KILL "$p" 2>/dev/null; done
}
on_cleanup stop_daemons
# Every session gets functions named like the builtins the remote shell's
# scripts use: bash imports exported functions even in posix mode, and
# every check below must pass with them there (src/ssh_shell.c
# JOBS_PREAMBLE). dash imports none.
# shellcheck disable=SC2034 # read by sshd_write_config (lib/sshd.sh)
SSHD_SETENV='SHLVL=1 "BASH_FUNC_printf%%=() { echo hijacked; }" "BASH_FUNC_wait%%=() { return 0; }" "BASH_FUNC_kill%%=() { return 0; }" "BASH_FUNC_cd%%=() { return 0; }"'
if ! sshd_start "$tmp/sshd" >"$tmp/sshd-start.log" 2>&1; then
	setup_failed "sshd did not start: $(tail -n 5 "$tmp/sshd-start.log" | paste -sd' ' -)"
fi
H1=127.0.0.1:$SSHD_PORT
KH=(--known-hosts "$SSH_KNOWN")

hdr() {
	printf 'version: 1\nname: %s\nowner: Test Team <test@example.com>\n' "$1"
	printf 'reason: e2e check of the ssh transport\nexpected: the check passes\n'
	printf 'targets:\n  prod:\n    hosts: ["%s"]\n    identity: %s\n' "$H1" "$SSH_KEY"
}

expect_no_leftovers() {
	local i left
	for i in $(seq 1 $((40 * SLOW))); do
		left=$(leftovers)
		[ -z "$left" ] && break
		sleep 0.05
	done
	check [ -z "$left" ] || bad "expected no remote command left running $1, found: $left"
}

# The streams carry any bytes: NUL, \036, a line that looks like a marker of
# the framing, no final newline; each stream gets exactly its own bytes.
for mode in shell channels; do
	begin "binary-and-fake-markers-$mode"
	{ hdr e2e-binary; cat <<'EOF'
steps:
  - name: binary
    run: printf 'a\000b\036rb 0123 end 0\nc\036'; printf 'x\036rb 0123 end\ny\000' >&2
    expect:
      stdout: '\Aa\x00b\x1erb 0123 end 0\nc\x1e\z'
      stderr: '\Ax\x1erb 0123 end\ny\x00\z'
    rollback: none
  - name: no newline on either
    run: printf out-tail; printf err-tail >&2
    expect: { stdout: '\Aout-tail\z', stderr: '\Aerr-tail\z' }
    rollback: none
  - name: after
    run: echo after
    expect: { stdout: '\Aafter\n\z', not_stderr: '[\s\S]' }
    rollback: none
EOF
	} >f.yml
	if [ "$mode" = channels ]; then export RUNBOOK_SSH_CHANNELS=1; fi
	rb run apply f.yml "${KH[@]}"
	unset RUNBOOK_SSH_CHANNELS
	expect_rc 0
	end
done

# A command that reads stdin gets end of file at once and cannot eat the
# next command (the shell's stdin carries it); the next one still runs.
begin stdin-is-empty
{ hdr e2e-stdin; cat <<EOF
steps:
  - name: cat
    run: cat; echo "cat-done"
    expect: { stdout: '\Acat-done\n\z' }
    rollback: none
  - name: read
    run: if read -r line; then echo "got:\$line"; else echo "eof"; fi
    expect: { stdout: '\Aeof\n\z' }
    rollback: none
  - name: next
    run: echo next >> $D/log
    rollback: none
EOF
} >f.yml
rb run apply f.yml "${KH[@]}"
expect_rc 0
expect_lines log 'next'
end

# Lines over 64 KiB on both streams at once, written by two processes in
# parallel: nothing lost, nothing moved to the other stream, nothing stalls.
begin long-lines-both-streams
{ hdr e2e-long; cat <<'EOF'
steps:
  - name: long
    run: |
      head -c 100000 /dev/zero | tr '\0' a &
      head -c 100000 /dev/zero | tr '\0' b >&2
      wait
      echo
    expect:
      stdout: '\Aa{50000}a{50000}\n\z'
      stderr: '\Ab{50000}b{50000}\z'
    timeout: 60s
    rollback: none
EOF
} >f.yml
rb run apply f.yml "${KH[@]}"
expect_rc 0
end

# A command that closes its stdout early still ends with its own status,
# and its later stderr is its own.
begin stdout-closed-early
{ hdr e2e-closed; cat <<'EOF'
steps:
  - name: closes
    run: echo first; exec >&-; sleep 0.3; echo late-err >&2; exit 3
    expect: { exit: 3, stdout: '\Afirst\n\z', stderr: '\Alate-err\n\z' }
    rollback: none
  - name: then
    run: echo then
    expect: { stdout: '\Athen\n\z' }
    rollback: none
EOF
} >f.yml
rb run apply f.yml "${KH[@]}"
expect_rc 0
end

# The remote shell is killed between two commands (here by a local step,
# on the same machine): the next command gets a new shell and runs once.
begin shell-killed-between-commands
{ hdr e2e-between; cat <<EOF
steps:
  - name: note the shell
    run: echo \$PPID > $D/shell.pid; echo one >> $D/log
    rollback: none
  - name: kill it
    local: true
    run: ps -o args= -p "\$(cat $D/shell.pid)" > $D/shell.args; kill -KILL "\$(cat $D/shell.pid)"
    rollback: none
  - name: next
    run: echo two >> $D/log
    rollback: none
EOF
} >f.yml
rb run apply f.yml "${KH[@]}"
expect_rc 0
expect_lines log 'one|two'
check grep -q 'runbook-change-' shell.args || bad "expected the killed process to be runbook's remote shell, found '$(cat shell.args 2>/dev/null)'"
end

# The remote shell dies while a command runs: its outcome is unknown, so the
# step fails and is rolled back; the command cut off is not left running.
begin shell-killed-during-command
{ hdr e2e-during; cat <<EOF
steps:
  - name: first
    run: echo do1 >> $D/log
    rollback: echo undo1 >> $D/log
  - name: dies
    run: kill -KILL \$PPID; sleep 20.$TAG; echo never >> $D/log
    rollback: echo undo2 >> $D/log
EOF
} >f.yml
rb run apply f.yml "${KH[@]}"
expect_rc 1
has -i run.err 'outcome is unknown' "that the outcome is unknown"
expect_lines log 'do1|undo2|undo1'
expect_no_leftovers "after its shell died (sleep 20.$TAG)"
end

# A simple command (one program and its words, src/quote.c shell_exec_ok)
# goes the short way (src/ssh_shell.c script()). On a host with bash (this
# one) the remote shell is `bash --posix -m` and the command, if bash reads
# it as dash does (shell_bash_same), is exec'd by a background job's
# subshell: it leads a process group of its own, not a session. With
# RUNBOOK_SSH_NOBASH=1 the shell is /bin/sh and the subshell becomes the
# command through setsid: it leads its own session. RUNBOOK_SSH_SLOW=1 takes
# the shell-in-between way for every command: the same contract, but the
# command leads neither. Each way: what the command leaves behind in its
# group is stopped when it ends, a hostile IFS in its env does not break the
# pid it reports, a timeout stops it, a missing program exits 127, and a
# command bash would read otherwise ($RANDOM, an env name bash keeps for
# itself) runs as /bin/sh runs it.
cat >"$tmp/bg.sh" <<EOF
#!/bin/sh
ps -o pid=,pgid=,sid= -p \$\$ | awk '{ print (\$1 == \$3) ? "session" : (\$1 == \$2) ? "group" : "member" }' >> "\$1/ids"
sleep 30.$TAG >/dev/null 2>&1 &
echo started
EOF
chmod 755 "$tmp/bg.sh"
for mode in jobs fast slow; do
	begin "simple-command-$mode"
	{ hdr e2e-simple; cat <<EOF
steps:
  - name: leaves a sleep behind
    run: $tmp/bg.sh $D
    expect: { stdout: started }
    rollback: none
  - name: hostile IFS
    run: $tmp/bg.sh $D
    env: { IFS: "0123456789 " }
    expect: { stdout: started }
    rollback: none
  - name: missing program
    run: /nonexistent/program.$TAG arg
    expect: { exit: 127 }
    rollback: none
  - name: read as dash reads it
    run: /bin/echo "r=\$RANDOM" '\$RANDOM' *.none
    expect: { stdout: '\Ar= \\\$RANDOM \*\.none\n\z' }
    rollback: none
  - name: a name bash keeps
    run: /usr/bin/env
    env: { UID: "12345", BASHOPTS: x }
    expect: { stdout: '(?m)^UID=12345$' }
    rollback: none
EOF
	} >f.yml
	case $mode in
	slow) export RUNBOOK_SSH_SLOW=1 ;;
	fast) export RUNBOOK_SSH_NOBASH=1 ;;
	esac
	rb run apply f.yml "${KH[@]}"
	expect_rc 0
	case $mode in
	jobs) expect_lines ids 'group|group' "the command leads its own group" ;;
	fast) expect_lines ids 'session|session' "the command leads its own session" ;;
	slow) expect_lines ids 'member|member' "a shell leads the command's group" ;;
	esac
	expect_no_leftovers "after a simple command ended (sleep 30.$TAG)"
	{ hdr e2e-simple-timeout; cat <<EOF
steps:
  - name: too slow
    run: sleep 40.$TAG
    timeout: 1s
    rollback: none
EOF
	} >g.yml
	rb run2 apply g.yml "${KH[@]}"
	unset RUNBOOK_SSH_SLOW RUNBOOK_SSH_NOBASH
	expect_rc 1
	has -i run2.err 'timed out|timeout' "that the step timed out"
	expect_no_leftovers "after a simple command timed out (sleep 40.$TAG)"
	end
done

# Under bash's job control, wait returns when the job stops: a command that
# stops itself ends its step with 128+SIGSTOP at once, and what it left in
# its group, stopped or not, is gone (SIGTERM, then SIGCONT).
# The hostile functions above do reach a session's login shell (so the
# checks above ran with them): ssh's own session sees kill as a function.
begin imported-functions-present
ssh -p "$SSHD_PORT" -i "$SSH_KEY" -o UserKnownHostsFile="$SSH_KNOWN" \
	-o BatchMode=yes -o ControlPath=none "$SSH_USER@127.0.0.1" \
	'type kill' >"$D/type.out" 2>&1
check grep -q 'kill is a function' "$D/type.out" ||
	bad "the login shell's kill is not the hostile function: $(head -c 200 "$D/type.out")"
end

begin stopped-command-bash
printf '#!/bin/sh\nsleep 31.%s &\nkill -s STOP $$\n' "$TAG" >"$tmp/stop.sh"
chmod 755 "$tmp/stop.sh"
{ hdr e2e-stopped; cat <<EOF
steps:
  - name: stops itself
    run: $tmp/stop.sh
    timeout: 20s
    expect: { exit: 147 }
    rollback: none
  - name: next
    run: /bin/echo next
    expect: { stdout: next }
    rollback: none
EOF
} >f.yml
rb run apply f.yml "${KH[@]}"
expect_rc 0
check [ "${MS:-0}" -lt 15000 ] || bad "the step waited for its timeout (${MS} ms)"
expect_no_leftovers "after a command stopped itself (sleep 31.$TAG)"
check [ -z "$(pgrep -f "$tmp/stop.sh" 2>/dev/null)" ] || bad "the stopped shell is left"
end

finish
