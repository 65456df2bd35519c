#!/usr/bin/env bash
# End-to-end checks of runbook over SSH (PRODUCT.md §3, §5, §6) against a real
# OpenSSH sshd on loopback (tests/e2e/lib/sshd.sh): the three hosts 127.0.0.1,
# .2 and .3 are one sshd on one port, with distinct known_hosts names. The
# remote host is this machine, so remote commands write into the check's
# directory and the test looks at remote processes with pgrep.
#
#   RUNBOOK=build/runbook SRCDIR=. bash tests/e2e/ssh.sh
#
# Env: RUNBOOK (required) the built binary; SRCDIR the repository root (unused
# beyond locating the script); RUNBOOK_SANITIZED=1 allows 5x longer waits.
#
# Checks: apply and rollback on three hosts; rollback replay after the file is
# deleted; unknown, accepted, changed, hashed and garbage-prefixed known_hosts;
# failed auth; ~/.ssh/config aliases; serial batches and parallel hosts; no new
# step after a failure anywhere; remote timeouts; a killed sshd session; a host
# that stays unreachable, then `runbook rollback ID`; a closed port; `local:
# true`; hostile env, dir and vars; stdout/stderr, exit codes and signals; a
# channel closed without an exit status (sshd ChannelTimeout); a frozen host
# found by the keepalives, with the default bound and with ServerAliveInterval
# and ServerAliveCountMax from ~/.ssh/config. Beyond the list:
# ssh-agent auth, replay with a per-host identity, and no remote command left
# running after a lost connection or a closed channel.
#
# HOME is a private directory (its ~/.ssh is the test's own), SSH_AUTH_SOCK is
# unset except in the agent check. Every check runs in its own git repository
# (its notes and locks are its own) under a private `mktemp -d` directory.
# Long remote sleeps carry a per-run tag ("sleep N.$TAG") so that leftovers can
# be found, reported and killed by pid.
# Output (tests/e2e/lib/harness.sh): one `ok N - NAME` or `not ok N - NAME: why`
# per check (followed by a few `#` lines of runbook's stderr on failure), then
# `N passed, M failed`.
# shellcheck source=lib/harness.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/harness.sh"
harness_init ssh --operator 'Sam Operator <sam@example.com>' --repo-per-check
need_tools git "$PY" pgrep ssh-keygen ssh-keyscan ssh-agent ssh-add \
	/usr/sbin/sshd sha256sum
# Tag of this run's long remote sleeps: "sleep 30.$TAG".
TAG=$$

# shellcheck source=lib/sshd.sh
. "$E2E_DIR/lib/sshd.sh"

OTHER_SSHD=()	# pids of extra sshd daemons
AGENT_PID=
# the remote commands of this run still alive (by the tag of their sleeps)
leftovers() {
	pgrep -f "sleep [0-9]+\.${TAG}([^0-9]|\$)" 2>/dev/null | paste -sd' ' -
}
reap_leftovers() {
	local p
	for p in $(leftovers); do
		kill -KILL "$p" 2>/dev/null
	done
}
# shellcheck disable=SC2317 # called at exit (on_cleanup)
stop_daemons() {
	local p
	sshd_stop
	for p in "${OTHER_SSHD[@]}"; do
		pkill -KILL -P "$p" 2>/dev/null
		kill -KILL "$p" 2>/dev/null
	done
	[ -n "$AGENT_PID" ] && kill -KILL "$AGENT_PID" 2>/dev/null
	reap_leftovers
}
on_cleanup stop_daemons

mkdir -p "$HOME/.ssh" && chmod 700 "$HOME/.ssh" ||
	setup_failed "cannot make $HOME/.ssh"

if ! sshd_start "$tmp/sshd" >"$tmp/sshd-start.log" 2>&1; then
	setup_failed "sshd did not start: $(tail -n 5 "$tmp/sshd-start.log" | paste -sd' ' -)"
fi
P=$SSHD_PORT
H1=127.0.0.1:$P
H2=127.0.0.2:$P
H3=127.0.0.3:$P
KH=(--known-hosts "$SSH_KNOWN")
REMOTE_HOME=$(getent passwd "$SSH_USER" | cut -d: -f6)

# ------------------------------------------------------------------ helpers

# hdr NAME: the required top-level keys of a runbook.
hdr() {
	printf 'version: 1\nname: %s\nowner: Test Team <test@example.com>\n' "$1"
	printf 'reason: e2e check over ssh\nexpected: the check passes\n'
}

# tgt HOST...: a target `prod` with these hosts and the harness's user key.
tgt() {
	local h sep=
	printf 'targets:\n  prod:\n    hosts: ['
	for h in "$@"; do
		printf '%s"%s"' "$sep" "$h"
		sep=', '
	done
	printf ']\n    identity: %s\n' "$SSH_KEY"
}

# host_seq FILE HOST: the first words of FILE's lines "WORD HOST", joined by |.
host_seq() {
	awk -v h="$2" '$2 == h { print $1 }' "$1" 2>/dev/null | paste -sd'|' -
}

# expect_host_seq FILE HOST 'a|b|c'
expect_host_seq() {
	local got
	got=$(host_seq "$1" "$2")
	check [ "$got" = "$3" ] || bad "expected on $2: '$3', found '$got'"
}

# no_log FILE: nothing ran.
no_log() {
	check [ ! -s "$1" ] || bad "expected nothing to run, found $(basename "$1"): $(paste -sd'|' "$1")"
}

# expect_no_leftovers WHAT: no remote command of this run is alive (waits up
# to 2 s, for a TERM in flight); kills what it finds.
expect_no_leftovers() {
	local i left
	for i in $(seq 1 $((40 * SLOW))); do
		left=$(leftovers)
		[ -z "$left" ] && break
		sleep 0.05
	done
	check [ -z "$left" ] && return 0
	bad "expected no remote command left running $1, found: $(ps -o pid=,args= -p "${left// /,}" 2>/dev/null | cut -c1-120 | paste -sd'|' -)"
	reap_leftovers
}

# newest_id: the id of the newest change of the repository in $D.
newest_id() {
	"$RUNBOOK" log -n 1 --json 2>/dev/null |
		"$PY" -c 'import json,sys; print(json.loads(sys.stdin.readline())["change"])' 2>/dev/null
}

# note_of ID: the note, from plain git.
note_of() {
	git show "runbook-notes:changes/${1:0:4}/${1:4:2}/$1.md" 2>/dev/null
}

# sha FILE
sha() { sha256sum "$1" 2>/dev/null | cut -d' ' -f1; }

# Three steps that log "doN HOST" and roll back with "undoN HOST". With an
# argument N, s3 fails on every host, once N hosts are inside it (hosts run
# in parallel, and after a failure no host may start s3).
three_steps() {
	cat <<EOF
steps:
  - name: s1
    run: echo do1 {{ host }} >> $D/log
    rollback: echo undo1 {{ host }} >> $D/log
  - name: s2
    run: echo do2 {{ host }} >> $D/log
    rollback: echo undo2 {{ host }} >> $D/log
  - name: s3
EOF
	if [ -n "${1:-}" ]; then
		cat <<EOF
    run: |
      echo do3 {{ host }} >> $D/log
      touch $D/in3.{{ host }}
      i=0
      while [ \$(ls $D | grep -c '^in3\.') -lt $1 ]; do
        i=\$((i + 1)); [ \$i -gt $((100 * SLOW)) ] && break
        sleep 0.05
      done
      exit 1
EOF
	else
		printf '    run: echo do3 {{ host }} >> %s/log\n' "$D"
	fi
	printf '    rollback: echo undo3 {{ host }} >> %s/log\n' "$D"
}

# ------------------------------------------------------------------ apply and rollback on three hosts

# Hosts written user@host:port; the failing last step fails on every host, so
# every host rolls back all three steps, newest first, the failed one included.
begin three-hosts-rollback
U1=$SSH_USER@$H1 U2=$SSH_USER@$H2 U3=$SSH_USER@$H3
{ hdr e2e-three; tgt "$U1" "$U2" "$U3"; three_steps 3; } >f.yml
rb run apply f.yml "${KH[@]}"
expect_rc 1
for h in "$U1" "$U2" "$U3"; do
	expect_host_seq log "$h" 'do1|do2|do3|undo3|undo2|undo1'
done
check [ "$(wc -l <log 2>/dev/null)" = 18 ] || bad "expected 18 log lines, found $(wc -l <log 2>/dev/null)"
has -i run.err "rolled back" "that every change was rolled back"
id=$(newest_id)
note_of "$id" | grep -q '^status: "\{0,1\}rolled-back' ||
	bad "expected the note of '$id' to have status rolled-back"
end

# the same, successful: exit 0, no rollback
begin three-hosts-apply
{ hdr e2e-three-ok; tgt "$H1" "$H2" "$H3"; three_steps; } >f.yml
rb run apply f.yml "${KH[@]}"
expect_rc 0
for h in "$H1" "$H2" "$H3"; do
	expect_host_seq log "$h" 'do1|do2|do3'
done
end

# ------------------------------------------------------------------ rollback replay

begin rollback-replay
{ hdr e2e-replay; tgt "$H1" "$H2" "$H3"; three_steps; } >f.yml
rb run apply f.yml "${KH[@]}"
expect_rc 0
id=$(newest_id)
rm -f f.yml
rb replay rollback --last "${KH[@]}"
expect_rc 0
for h in "$H1" "$H2" "$H3"; do
	expect_host_seq log "$h" 'do1|do2|do3|undo3|undo2|undo1'
done
note_of "$id" | grep -q '^status: "\{0,1\}rolled-back' ||
	bad "expected the note of '$id' to have status rolled-back after the replay"
end

# ------------------------------------------------------------------ unknown host key

begin unknown-host-key
{ hdr e2e-hostkey; tgt "$H1" "$H2" "$H3"; three_steps; } >f.yml
: >kh
fp=$(ssh-keygen -lf "$SSHD_DIR/host_ed25519.pub" | awk '{print $2}')
hostkey=$(cut -d' ' -f1,2 "$SSHD_DIR/host_ed25519.pub")
rb unknown apply f.yml --known-hosts "$D/kh"
expect_rc 6
no_log log
case $fp in SHA256:?*) ;; *) bad "ssh-keygen -lf gave no fingerprint ('$fp')" ;; esac
has_fixed unknown.err "ED25519 key fingerprint is $fp" "the fingerprint as ssh-keygen -lf prints it"
has -i unknown.err 'ssh-keyscan|known_hosts|--accept-new-host-keys' "how to trust the key"
has -i unknown.err 'accept-new-host-keys' "--accept-new-host-keys"
check [ ! -s kh ] || bad "expected known_hosts to stay empty, found $(wc -l <kh) lines"
# --accept-new-host-keys: the three names are appended, then it works
rb accept apply f.yml --known-hosts "$D/kh" --accept-new-host-keys
expect_rc 0
for h in "$H1" "$H2" "$H3"; do
	expect_host_seq log "$h" 'do1|do2|do3'
done
want=$(for a in 127.0.0.1 127.0.0.2 127.0.0.3; do printf '[%s]:%s %s\n' "$a" "$P" "$hostkey"; done)
check [ "$(sort kh)" = "$want" ] ||
	bad "expected known_hosts to hold exactly '$(paste -sd'|' <<<"$want")', found '$(paste -sd'|' kh)'"
# trusted now: runs without the option and appends nothing
before=$(sha kh)
rm -f log
rb again apply f.yml --known-hosts "$D/kh"
expect_rc 0
check [ "$(wc -l <log 2>/dev/null)" = 9 ] || bad "expected 9 log lines on the second run, found $(wc -l <log 2>/dev/null)"
check [ "$(sha kh)" = "$before" ] || bad "expected known_hosts unchanged on the second run"
end

# ------------------------------------------------------------------ hashed known_hosts

begin hashed-known-hosts
{ hdr e2e-hashed; tgt "$H1" "$H2" "$H3"; three_steps; } >f.yml
cp "$SSH_KNOWN" kh
ssh-keygen -q -H -f kh >/dev/null 2>&1 || bad "ssh-keygen -H failed"
check [ "$(grep -c '^|1|' kh)" = 3 ] || bad "expected 3 hashed lines in known_hosts"
refute grep -q '127\.0\.0' kh || bad "expected no plain host name left in the hashed known_hosts"
rb run apply f.yml --known-hosts "$D/kh"
expect_rc 0
check [ "$(wc -l <log 2>/dev/null)" = 9 ] || bad "expected 9 log lines, found $(wc -l <log 2>/dev/null)"
end

# ------------------------------------------------------------------ garbage before the right entry

begin known-hosts-garbage-line
{ hdr e2e-garbage; tgt "$H1"; three_steps; } >f.yml
{
	printf 'this line is not a known_hosts entry at all !!!\n'
	printf '[10.9.8.7]:22 ssh-unknown-type AAAAnot-a-key\n'
	printf '\n# a comment\n'
	grep -F "[127.0.0.1]:$P " "$SSH_KNOWN"
} >kh
rb run apply f.yml --known-hosts "$D/kh"
expect_rc 0
expect_host_seq log "$H1" 'do1|do2|do3'
# the same file without the right entry refuses: the entry above was used
grep -vF "[127.0.0.1]:$P " kh >kh2
rm -f log
rb without apply f.yml --known-hosts "$D/kh2"
expect_rc 6
no_log log
end

# ------------------------------------------------------------------ failed auth

begin failed-auth
ssh-keygen -q -t ed25519 -N '' -f "$D/stranger_key" -C stranger
{ hdr e2e-auth; three_steps; } >body
{
	hdr e2e-auth
	printf 'targets:\n  prod:\n    hosts: ["%s"]\n    identity: %s\n' "$H1" "$D/stranger_key"
	sed -n '/^steps:/,$p' body
} >f.yml
rb run apply f.yml "${KH[@]}"
expect_rc 6
no_log log
has_fixed run.err "as $SSH_USER" "the user ($SSH_USER)"
has_fixed run.err "127.0.0.1" "the host"
has_fixed run.err "$D/stranger_key" "the key file tried"
has_fixed run.err "$HOME/.ssh/id_ed25519" "the default key file tried"
end

# ------------------------------------------------------------------ ssh-agent (beyond the list)

begin ssh-agent-auth
{
	hdr e2e-agent
	printf 'targets:\n  prod:\n    hosts: ["%s"]\n' "$H1"
	three_steps
} >f.yml
# without an agent and without keys in ~/.ssh: refused
rb noagent apply f.yml "${KH[@]}"
expect_rc 6
no_log log
agent_env=$(ssh-agent -s -a "$D/agent.sock" 2>/dev/null)
AGENT_PID=$(sed -n 's/^SSH_AGENT_PID=\([0-9]*\);.*/\1/p' <<<"$agent_env")
if [ -z "$AGENT_PID" ]; then
	bad "ssh-agent did not start"
else
	SSH_AUTH_SOCK=$D/agent.sock ssh-add -q "$SSH_KEY" 2>/dev/null || bad "ssh-add failed"
	SSH_AUTH_SOCK=$D/agent.sock rb agent apply f.yml "${KH[@]}"
	expect_rc 0
	expect_host_seq log "$H1" 'do1|do2|do3'
	kill "$AGENT_PID" 2>/dev/null
	AGENT_PID=
fi
end

# ------------------------------------------------------------------ ~/.ssh/config aliases

begin ssh-config-alias
cat >"$HOME/.ssh/config" <<EOF
# the alias's block first: for each keyword the first value wins
Host web1
    HostName 127.0.0.2
    Port $P
    User $SSH_USER
    IdentityFile $SSH_KEY

Host *
    Port 1
    User nobody
    IdentityFile ~/.ssh/no-such-key
    ServerAliveInterval 30
EOF
chmod 600 "$HOME/.ssh/config"
rm -f "$HOME/.ssh/known_hosts"
{
	hdr e2e-alias
	printf 'targets:\n  prod:\n    hosts: [web1]\n'
	cat <<EOF
steps:
  - name: where
    run: echo {{ host }} "\$SSH_CONNECTION" "\$(id -un)" >> $D/log
    rollback: none
EOF
} >f.yml
# the default known_hosts (~/.ssh/known_hosts) learns the alias's real name
rb learn apply f.yml --accept-new-host-keys
expect_rc 0
want="[127.0.0.2]:$P $(cut -d' ' -f1,2 "$SSHD_DIR/host_ed25519.pub")"
check [ "$(cat "$HOME/.ssh/known_hosts" 2>/dev/null)" = "$want" ] ||
	bad "expected ~/.ssh/known_hosts to be '$want', found '$(paste -sd'|' "$HOME/.ssh/known_hosts" 2>/dev/null)'"
rm -f log
rb run apply f.yml
expect_rc 0
# SSH_CONNECTION: client address, client port, server address, server port
read -r name _ _ srv srvport user _ <log 2>/dev/null
check [ "${name:-}" = web1 ] || bad "expected {{ host }} to be web1, found '${name:-}'"
check [ "${srv:-}:${srvport:-}" = "127.0.0.2:$P" ] ||
	bad "expected the step to run over a connection to 127.0.0.2:$P, found '${srv:-}:${srvport:-}'"
check [ "${user:-}" = "$SSH_USER" ] || bad "expected to log in as $SSH_USER, found '${user:-}'"
rm -f "$HOME/.ssh/config" "$HOME/.ssh/known_hosts"
end

# ------------------------------------------------------------------ serial

# serial: 1 runs host by host. Step s1 sleeps, so hosts run together would
# interleave (all s1 lines before the s2 lines).
begin serial-one
{
	hdr e2e-serial
	tgt "$H1" "$H2" "$H3"
	printf '    serial: 1\n'
	cat <<EOF
steps:
  - name: s1
    run: echo s1 {{ host }} >> $D/log; sleep 0.2
    rollback: none
  - name: s2
    run: echo s2 {{ host }} >> $D/log
    rollback: none
EOF
} >f.yml
rb run apply f.yml "${KH[@]}"
expect_rc 0
expect_lines log "s1 $H1|s2 $H1|s1 $H2|s2 $H2|s1 $H3|s2 $H3"
end

# Without serial the three hosts run at once: each host's step waits until all
# three have started it (a barrier); hosts one after the other would time out.
begin parallel-hosts
{
	hdr e2e-parallel
	tgt "$H1" "$H2" "$H3"
	cat <<EOF
steps:
  - name: barrier
    run: |
      echo start {{ host }} \$(date +%s%N) >> $D/log
      touch $D/started.{{ host }}
      i=0
      while [ \$(ls $D | grep -c '^started\.') -lt 3 ]; do
        i=\$((i + 1)); [ \$i -gt $((100 * SLOW)) ] && exit 1
        sleep 0.05
      done
      sleep 0.5
      echo end {{ host }} \$(date +%s%N) >> $D/log
    rollback: none
EOF
} >f.yml
rb run apply f.yml "${KH[@]}"
expect_rc 0
# every start before every end
last_start=$(awk '$1 == "start" { print $3 }' log 2>/dev/null | sort -n | tail -n1)
first_end=$(awk '$1 == "end" { print $3 }' log 2>/dev/null | sort -n | head -n1)
check [ "$(grep -c '^start' log 2>/dev/null)" = 3 ] && check [ "$(grep -c '^end' log 2>/dev/null)" = 3 ] ||
	bad "expected 3 start and 3 end lines, found '$(paste -sd'|' log 2>/dev/null)'"
check [ -n "$last_start" ] && check [ -n "$first_end" ] && check [ "$last_start" -lt "$first_end" ] ||
	bad "expected every host to start before any host ended (overlap)"
end

# --forks 1: at most one host at a time, so no two hosts' steps overlap.
begin forks-one
{
	hdr e2e-forks
	tgt "$H1" "$H2" "$H3"
	cat <<EOF
steps:
  - name: timed
    run: |
      echo start {{ host }} \$(date +%s%N) >> $D/log
      sleep 0.2
      echo end {{ host }} \$(date +%s%N) >> $D/log
    rollback: none
EOF
} >f.yml
rb run apply f.yml "${KH[@]}" --forks 1
expect_rc 0
check [ "$(grep -c '^start' log 2>/dev/null)" = 3 ] && check [ "$(grep -c '^end' log 2>/dev/null)" = 3 ] ||
	bad "expected 3 start and 3 end lines, found '$(paste -sd'|' log 2>/dev/null)'"
# each host's start after the end of the one before it
overlap=$(awk '{ t[$2, $1] = $3; h[$2] = 1 }
	END { for (a in h) for (b in h) if (a != b && t[a, "start"] < t[b, "start"] && t[b, "start"] < t[a, "end"]) print a " and " b }' log 2>/dev/null)
check [ -z "$overlap" ] || bad "expected no two hosts at once with --forks 1, found overlapping: $(paste -sd, <<<"$overlap")"
end

# ------------------------------------------------------------------ no new step after a failure

# Host .1's s2 fails once .2 and .3 are inside their slow s2: s3 starts
# nowhere, the running s2 steps finish, then all three hosts roll back.
begin failure-stops-everywhere
{
	hdr e2e-stop-all
	tgt "$H1" "$H2" "$H3"
	cat <<EOF
steps:
  - name: s1
    run: echo do1 {{ host }} >> $D/log
    rollback: echo undo1 {{ host }} >> $D/log
  - name: s2
    run: |
      echo do2 {{ host }} >> $D/log
      if [ {{ host }} = $H1 ]; then
        i=0
        while [ ! -e $D/in2.$H2 ] || [ ! -e $D/in2.$H3 ]; do
          i=\$((i + 1)); [ \$i -gt $((100 * SLOW)) ] && break
          sleep 0.05
        done
        exit 1
      fi
      touch $D/in2.{{ host }}
      sleep 1.5
      echo end2 {{ host }} >> $D/log
    rollback: echo undo2 {{ host }} >> $D/log
  - name: s3
    run: echo do3 {{ host }} >> $D/log
    rollback: echo undo3 {{ host }} >> $D/log
EOF
} >f.yml
rb run apply f.yml "${KH[@]}"
expect_rc 1
check [ -e "in2.$H2" ] && check [ -e "in2.$H3" ] || bad "expected hosts .2 and .3 to have been inside s2"
refute grep -q '^do3' log 2>/dev/null || bad "expected s3 to start nowhere, found '$(grep '^do3' log | paste -sd'|' -)'"
expect_host_seq log "$H1" 'do1|do2|undo2|undo1'
expect_host_seq log "$H2" 'do1|do2|end2|undo2|undo1'
expect_host_seq log "$H3" 'do1|do2|end2|undo2|undo1'
# the running steps ended before any rollback started
last_end=$(grep -n '^end2' log 2>/dev/null | tail -n1 | cut -d: -f1)
first_undo=$(grep -n '^undo' log 2>/dev/null | head -n1 | cut -d: -f1)
check [ -n "$last_end" ] && check [ -n "$first_undo" ] && check [ "$last_end" -lt "$first_undo" ] ||
	bad "expected the running steps to end before any rollback, found '$(paste -sd'|' log 2>/dev/null)'"
end

# ------------------------------------------------------------------ remote timeout

begin remote-timeout
{
	hdr e2e-timeout
	tgt "$H1"
	cat <<EOF
steps:
  - name: first
    run: echo do1 {{ host }} >> $D/log
    rollback: echo undo1 {{ host }} >> $D/log
  - name: slow
    run: echo do2 {{ host }} >> $D/log; sleep 77.$TAG
    rollback: echo undo2 {{ host }} >> $D/log
    timeout: 1s
EOF
} >f.yml
rb run apply f.yml "${KH[@]}"
expect_rc 1
has -i run.err 'tim(ed|e)[ -]?out' "the timeout"
expect_host_seq log "$H1" 'do1|do2|undo2|undo1'
check [ "$MS" -lt $((8000 * SLOW)) ] || bad "expected the 1 s timeout to end the run within $((8 * SLOW)) s, took $MS ms"
expect_no_leftovers "after the timeout (pgrep -f 'sleep 77.$TAG')"
end

# ------------------------------------------------------------------ killed sshd session

begin killed-session
{
	hdr e2e-killed
	tgt "$H1" "$H2"
	cat <<EOF
steps:
  - name: s1
    run: echo do1 {{ host }} >> $D/log
    rollback: echo undo1 {{ host }} >> $D/log
  - name: s2
    run: echo do2 {{ host }} >> $D/log; touch $D/in2.{{ host }}; sleep 30.$TAG
    rollback: echo undo2 {{ host }} >> $D/log
EOF
} >f.yml
start_bg run apply f.yml "${KH[@]}"
if wait_files $((10 * SLOW)) "in2.$H1" "in2.$H2"; then
	sleep 0.2
	check [ -n "$(leftovers)" ] || bad "expected the remote sleeps to run before the sessions were killed"
	sshd_kill_sessions
else
	bad "s2 never started on both hosts"
fi
wait_bg "$BGPID" $((30 * SLOW)) || bad "runbook did not finish within $((30 * SLOW)) s"
expect_rc 1
has -i run.err 'lost the connection' "'lost the connection'"
for h in "$H1" "$H2"; do
	expect_host_seq log "$h" 'do1|do2|undo2|undo1'
done
expect_no_leftovers "after the session was killed"
end

# ------------------------------------------------------------------ host that stays unreachable

begin unreachable-host
{
	hdr e2e-gone
	tgt "$H1" "$H2"
	cat <<EOF
steps:
  - name: s1
    run: echo do1 {{ host }} >> $D/log
    rollback: echo undo1 {{ host }} >> $D/log
  - name: s2
    run: echo do2 {{ host }} >> $D/log; touch $D/in2.{{ host }}; sleep 31.$TAG
    rollback: echo undo2 {{ host }} >> $D/log
EOF
} >f.yml
start_bg run apply f.yml "${KH[@]}"
stopped=
if wait_files $((10 * SLOW)) "in2.$H1" "in2.$H2"; then
	sleep 0.2
	sshd_stop
	stopped=1
else
	bad "s2 never started on both hosts"
fi
wait_bg "$BGPID" $((30 * SLOW)) || bad "runbook did not finish within $((30 * SLOW)) s"
expect_rc 3
for h in "$H1" "$H2"; do
	expect_host_seq log "$h" 'do1|do2'
done
id=$(newest_id)
note_of "$id" | grep -q '^status: "\{0,1\}rollback-failed' ||
	bad "expected the note of '$id' to have status rollback-failed"
rb status status
has -i status.out "rollback-failed" "the change as rollback-failed"
has -i status.out "not undone.*s2" "s2 as not undone"
has -i status.out "runbook rollback $id" "the command that finishes it"
if [ -n "$stopped" ]; then
	sshd_restart >"$D/restart.log" 2>&1 || bad "sshd did not restart"
fi
rb finish rollback "$id" "${KH[@]}"
expect_rc 0
for h in "$H1" "$H2"; do
	expect_host_seq log "$h" 'do1|do2|undo2|undo1'
done
note_of "$id" | grep -q '^status: "\{0,1\}rolled-back' ||
	bad "expected the note of '$id' to have status rolled-back after runbook rollback"
end

# Beyond the list: the cut-off s2 of the check above (its `sleep 31.TAG`) was
# still running on the hosts when the connections were lost; by the time the
# rollback of s2 has run, it must have been stopped.
begin unreachable-host-cut-off-command-stopped
expect_no_leftovers "after 'runbook rollback' of the change whose s2 was cut off (sleep 31.$TAG)"
end

# ------------------------------------------------------------------ closed port

begin closed-port
closed=$(sshd_free_port)
{ hdr e2e-closed; tgt "$H1" "127.0.0.2:$closed"; three_steps; } >f.yml
rb run apply f.yml "${KH[@]}"
expect_rc 6
no_log log
has -i run.err "127\.0\.0\.2.*$closed|$closed.*127\.0\.0\.2" "the closed host and port"
has -i run.err "refused" "'connection refused'"
check [ "$MS" -lt $((5000 * SLOW)) ] || bad "expected a refused connection to end the run within $((5 * SLOW)) s, took $MS ms"
# the change was opened before any host was reached (PRODUCT.md §3): its
# note tells that it failed and that no step ran
cid=$(newest_id)
note_of "${cid:-x}" >note.md
check grep -qx 'status: "failed"' note.md || bad "expected a note saying status failed, found: $(grep '^status' note.md)"
check grep -q '^steps: \[\]' note.md || bad "expected no step in the note"
end

# ------------------------------------------------------------------ local: true

begin local-step
{
	hdr e2e-local
	tgt "$H1"
	cat <<EOF
steps:
  - name: remote
    run: echo "remote [\$SSH_CONNECTION] [\${RB_E2E_RUNNER_ONLY:-}] \$RUNBOOK_HOST" >> $D/log
    rollback: echo "remote-undo [\$SSH_CONNECTION]" >> $D/log
  - name: on runner
    local: true
    run: echo "local [\$SSH_CONNECTION] [\${RB_E2E_RUNNER_ONLY:-}] \$RUNBOOK_HOST" >> $D/log
    rollback: echo "local-undo [\$SSH_CONNECTION] [\${RB_E2E_RUNNER_ONLY:-}]" >> $D/log
  - name: fails
    run: exit 1
    rollback: none
EOF
} >f.yml
RB_E2E_RUNNER_ONLY=yes rb run apply f.yml "${KH[@]}"
expect_rc 1
# SSH_CONNECTION is "client-address client-port server-address server-port"
conn="127\.0\.0\.1 [0-9]+ 127\.0\.0\.1 $P"
want=("^remote \[$conn\] \[\] $H1\$" "^local \[\] \[yes\] $H1\$"
	"^local-undo \[\] \[yes\]\$" "^remote-undo \[$conn\]\$")
mapfile -t got <log 2>/dev/null
check [ "${#got[@]}" = 4 ] || bad "expected 4 log lines, found '$(paste -sd'|' log 2>/dev/null)'"
for i in 0 1 2 3; do
	check matches "${got[i]:-}" "${want[i]}" || bad "expected log line $((i + 1)) to match '${want[i]}', found '${got[i]:-}'"
done
end

# ------------------------------------------------------------------ hostile env, dir and vars

begin hostile-env-dir
nasty_dir="it's a \$(touch PWNED$TAG) \`touch PWNED$TAG\`; touch PWNED$TAG \"dir\""
mkdir -p "$D/$nasty_dir"
cat >vals.yml <<EOF
  V1: "it's"
  V2: "\$(touch $D/PWNED$TAG)"
  V3: "line1\nline2' \"; touch $D/PWNED$TAG; echo '\n\`touch $D/PWNED$TAG\`"
  V4: "{{ v }}"
EOF
# the dir, quoted for YAML's double quotes
ydir=$(printf '%s' "$D/$nasty_dir" | sed 's/\\/\\\\/g; s/"/\\"/g')
{
	hdr e2e-hostile
	tgt "$H1"
	cat <<EOF
vars:
  v: "a'b \$(touch $D/PWNED$TAG) \"c\"; touch $D/PWNED$TAG"
steps:
  - name: env and dir
    dir: "$ydir"
    env:
$(sed 's/^/    /' vals.yml)
    run: |
      printf '%s\n--\n' "\$V1" "\$V2" "\$V3" "\$V4" > out
      pwd > where
      printf '%s' {{ v }} > var
    rollback: none
EOF
} >f.yml
rb run apply f.yml "${KH[@]}"
expect_rc 0
want_v="a'b \$(touch $D/PWNED$TAG) \"c\"; touch $D/PWNED$TAG"
want_out=$(printf '%s\n--\n' "it's" "\$(touch $D/PWNED$TAG)" \
	"line1"$'\n'"line2' \"; touch $D/PWNED$TAG; echo '"$'\n'"\`touch $D/PWNED$TAG\`" "$want_v")
check [ "$(cat "$D/$nasty_dir/out" 2>/dev/null)" = "$want_out" ] ||
	bad "expected the env values verbatim, found '$(cat "$D/$nasty_dir/out" 2>/dev/null | paste -sd'|' -)'"
check [ "$(cat "$D/$nasty_dir/where" 2>/dev/null)" = "$D/$nasty_dir" ] ||
	bad "expected the step to run in the hostile dir, found '$(cat "$D/$nasty_dir/where" 2>/dev/null)'"
check [ "$(cat "$D/$nasty_dir/var" 2>/dev/null)" = "$want_v" ] ||
	bad "expected {{ v }} verbatim, found '$(cat "$D/$nasty_dir/var" 2>/dev/null)'"
pwned=$(find "$D" "$REMOTE_HOME" "$HOME" -maxdepth 2 -name "PWNED$TAG*" 2>/dev/null)
check [ -z "$pwned" ] || bad "injected: $pwned was created"
rm -f "$REMOTE_HOME/PWNED$TAG"
# a dir that does not exist fails the step and says so
sed "s|^    dir: .*|    dir: $D/no-such-dir|" f.yml >g.yml
rb nodir apply g.yml "${KH[@]}"
expect_rc 1
end

# ------------------------------------------------------------------ stdout, stderr, exit codes, signals

begin streams-and-exit-codes
{
	hdr e2e-streams
	tgt "$H1"
	cat <<'EOF'
steps:
  - name: apart
    run: echo OUT-ONLY; echo ERR-ONLY >&2
    expect: { stdout: '^OUT-ONLY$', stderr: '^ERR-ONLY$', not_stdout: 'ERR', not_stderr: 'OUT' }
    rollback: none
  - name: no newline
    run: printf 'tail-without-newline'
    expect: { stdout: '\Atail-without-newline\z' }
    rollback: none
  - name: exit seven
    run: echo bye; exit 7
    expect: { exit: 7 }
    rollback: none
EOF
} >f.yml
rb run apply f.yml "${KH[@]}"
expect_rc 0
# the same expectation on the wrong stream fails
sed "s/stdout: '^OUT-ONLY\$', stderr: '^ERR-ONLY\$'/stdout: 'ERR-ONLY'/" f.yml >swapped.yml
check grep -q "stdout: 'ERR-ONLY'" swapped.yml || bad "could not write swapped.yml"
rb swapped apply swapped.yml "${KH[@]}"
expect_rc 1
# exit 7 without `expect: {exit: 7}` fails and says exit 7
{
	hdr e2e-exit7
	tgt "$H1"
	printf 'steps:\n  - name: seven\n    run: exit 7\n    rollback: none\n'
} >seven.yml
rb seven apply seven.yml "${KH[@]}"
expect_rc 1
has -i seven.err 'exit 7' "'exit 7'"
end

begin remote-signal
{
	hdr e2e-signal
	tgt "$H1"
	printf 'steps:\n  - name: killed\n    run: kill -9 $$\n    rollback: none\n'
} >f.yml
rb run apply f.yml "${KH[@]}"
expect_rc 1
# $$ is the remote wrapper shell here, so the whole command dies by
# SIGKILL and sshd sends exit-signal; a command whose child is killed is
# seen as a shell sees it, 128+9, and explained as such (docs/ssh.md).
has -i run.err 'killed by signal 9|found exit 137 \(a shell.s code for a command killed by signal 9' "signal 9"
end

begin remote-child-signal
{
	hdr e2e-signal2
	tgt "$H1"
	printf 'steps:\n  - name: killed\n    run: sh -c '"'"'kill -9 $$'"'"'\n    rollback: none\n'
} >f.yml
rb run apply f.yml "${KH[@]}"
expect_rc 1
has -i run.err 'found exit 137 \(a shell.s code for a command killed by signal 9' "exit 137 explained as signal 9"
end

# ------------------------------------------------------------------ replay with a per-host identity (beyond the list)

# A host written as {host: ..., identity: FILE} (no target identity): the
# recorded rollback must reach the host with the same key.
begin rollback-replay-host-identity
{
	hdr e2e-host-identity
	printf 'targets:\n  prod:\n    hosts:\n      - { host: "%s", identity: %s }\n' "$H1" "$SSH_KEY"
	three_steps
} >f.yml
rb run apply f.yml "${KH[@]}"
expect_rc 0
rm -f f.yml
rb replay rollback --last "${KH[@]}"
expect_rc 0
expect_host_seq log "$H1" 'do1|do2|do3|undo3|undo2|undo1'
end

# ------------------------------------------------------------------ changed host key

begin changed-host-key
{ hdr e2e-changed; tgt "$H1" "$H2"; three_steps; } >f.yml
cp "$SSH_KNOWN" kh
before=$(sha kh)
rm -f "$SSHD_DIR/host_ed25519" "$SSHD_DIR/host_ed25519.pub"
ssh-keygen -q -t ed25519 -N '' -f "$SSHD_DIR/host_ed25519" -C host2 || bad "ssh-keygen failed"
sshd_restart >"$D/restart.log" 2>&1 || bad "sshd did not restart"
newfp=$(ssh-keygen -lf "$SSHD_DIR/host_ed25519.pub" | awk '{print $2}')
rb run apply f.yml --known-hosts "$D/kh" --accept-new-host-keys
expect_rc 6
no_log log
has -i run.err 'WARNING.*HOST KEY.*CHANGED' "the loud warning"
has_fixed run.err "$newfp" "the new key's fingerprint"
check [ "$(sha kh)" = "$before" ] || bad "expected known_hosts unchanged, found '$(paste -sd'|' kh)'"
# the harness's known_hosts follows the new key for the checks after this one
sshd_trust
end

# ------------------------------------------------------------------ channel closed without exit status

# A second sshd closes idle session channels after 2 s (OpenSSH 9.2
# ChannelTimeout): `sleep 30; exit 0` prints nothing and loses its channel
# with no exit status, which must not count as success. .ci/setup installs
# an OpenSSH that has ChannelTimeout: an sshd without it fails both checks.
begin channel-closed-without-status
ct_pid=
printf 'Port %s\nListenAddress 127.0.0.1\nHostKey %s\nChannelTimeout session:*=2s\n' \
	"$(sshd_free_port)" "$SSHD_DIR/host_ed25519" >"$D/ct-test.conf"
if ! /usr/sbin/sshd -t -f "$D/ct-test.conf" >"$D/ct-test.log" 2>&1; then
	bad "this sshd does not accept 'ChannelTimeout session:*=2s' (OpenSSH 9.2 or later is required): $(head -n1 "$D/ct-test.log")"
else
	# remember the main sshd, start the second one, come back afterwards
	m_dir=$SSHD_DIR m_port=$SSHD_PORT m_pid=$SSHD_PID m_key=$SSH_KEY m_known=$SSH_KNOWN
	SSHD_PORT= SSHD_PID=
	SSHD_EXTRA='ChannelTimeout session:*=2s'
	if sshd_start "$tmp/sshd-ct" >"$D/sshd.log" 2>&1; then
		OTHER_SSHD+=("$SSHD_PID")
		ct_port=$SSHD_PORT ct_pid=$SSHD_PID ct_key=$SSH_KEY ct_known=$SSH_KNOWN
	else
		bad "the second sshd did not start: $(tail -n 3 "$D/sshd.log" | paste -sd' ' -)"
		ct_pid=
	fi
	SSHD_EXTRA=
	SSHD_DIR=$m_dir SSHD_PORT=$m_port SSHD_PID=$m_pid SSH_KEY=$m_key SSH_KNOWN=$m_known
	if [ -n "$ct_pid" ]; then
		{
			hdr e2e-channel
			printf 'targets:\n  prod:\n    hosts: ["127.0.0.1:%s"]\n    identity: %s\n' "$ct_port" "$ct_key"
			cat <<EOF
steps:
  - name: first
    run: echo do1 >> $D/log
    rollback: echo undo1 >> $D/log
  - name: silent
    run: sleep 30.$TAG; exit 0
    rollback: echo undo2 >> $D/log
EOF
		} >f.yml
		rb run apply f.yml --known-hosts "$ct_known"
		check [ "$RC" != 0 ] || bad "expected a channel closed without an exit status not to count as success, found exit 0"
		expect_rc 1
		has -i run.err 'without an exit status|outcome is unknown' "that the outcome is unknown"
		expect_lines log 'do1|undo2|undo1'
	fi
fi
end

# Beyond the list: the command of a channel closed under it may still
# run; the rollback must not run next to it, and nothing may be left.
begin channel-closed-command-stopped
check [ -n "$ct_pid" ] || bad "no second sshd"
expect_no_leftovers "after the channel was closed (sleep 30.$TAG)"
end

if [ -n "$ct_pid" ]; then
	pkill -KILL -P "$ct_pid" 2>/dev/null
	kill "$ct_pid" 2>/dev/null
	OTHER_SSHD=()
fi

# ------------------------------------------------------------------ SIGINT stops the remote command

# Ctrl-C while a remote step runs: the remote process group is stopped too,
# the host is rolled back, exit 130.
begin remote-sigint
{
	hdr e2e-sigint
	tgt "$H1"
	printf 'steps:\n  - name: first\n    run: echo do1 >> %s/log\n    rollback: echo undo1 >> %s/log\n' "$D" "$D"
	printf '  - name: long\n    run: touch %s/started; sleep 45.%s\n    rollback: echo undo2 >> %s/log\n' "$D" "$TAG" "$D"
} >f.yml
start_bg run apply f.yml "${KH[@]}"
if wait_files $((10 * SLOW)) "$D/started"; then
	sleep 0.3
	kill -INT "$BGPID"
	wait_bg "$BGPID" $((30 * SLOW)) || bad "runbook did not finish within $((30 * SLOW)) s"
	expect_rc 130
	expect_lines log 'do1|undo2|undo1'
	expect_no_leftovers "after Ctrl-C (sleep 45.$TAG)"
else
	bad "the step never started"
	wait_bg "$BGPID" $((30 * SLOW)) || bad "runbook did not finish within $((30 * SLOW)) s"
fi
end

# ------------------------------------------------------------------ secrets off remote command lines

# The command and env values travel on the channel's stdin: other users of
# the remote host never see a secret in `ps` (here remote and local are one).
begin secrets-not-in-ps
{
	hdr e2e-ps
	tgt "$H1"
	printf 'secrets:\n  tok: { env: E2E_TOK }\nsteps:\n'
	printf '  - name: hold\n    run: "test -n {{ secrets.tok }} && touch %s/started && sleep 3.%s"\n' "$D" "$TAG"
	printf '    env: { TOKEN: "{{ secrets.tok }}" }\n    rollback: none\n'
} >f.yml
E2E_TOK=S3cr3t-CANARY-$TAG start_bg run apply f.yml "${KH[@]}"
if wait_files $((10 * SLOW)) "$D/started"; then
	ps -eo args >"$D/ps.txt" 2>/dev/null
	refute grep -q "S3cr3t-CANARY-$TAG" "$D/ps.txt" ||
		bad "a secret is on a command line: $(grep "S3cr3t-CANARY-$TAG" "$D/ps.txt" | cut -c1-120 | head -n 2 | paste -sd'|' -)"
	check grep -q "runbook-change-" "$D/ps.txt" ||
		bad "expected the remote shell's command line to name the change (for stops)"
else
	bad "the step never started"
fi
wait_bg "$BGPID" $((30 * SLOW)) || bad "runbook did not finish within $((30 * SLOW)) s"
expect_rc 0
end

# ------------------------------------------------------------------ more daemons: startup output, idle drops, a frozen host

# extra_sshd NAME EXTRA [SETENV]: another sshd with more config; sets x_port,
# x_pid, x_known, x_key and restores the main daemon's variables.
extra_sshd() {
	local m_dir=$SSHD_DIR m_port=$SSHD_PORT m_pid=$SSHD_PID m_key=$SSH_KEY m_known=$SSH_KNOWN
	SSHD_PORT= SSHD_PID= SSHD_EXTRA=$2 SSHD_SETENV=${3:-}
	x_pid=
	if sshd_start "$tmp/sshd-$1" >"$D/sshd.log" 2>&1; then
		OTHER_SSHD+=("$SSHD_PID")
		x_port=$SSHD_PORT x_pid=$SSHD_PID x_key=$SSH_KEY x_known=$SSH_KNOWN
	else
		bad "the extra sshd $1 did not start: $(tail -n 3 "$D/sshd.log" | paste -sd' ' -)"
	fi
	SSHD_EXTRA= SSHD_SETENV=
	SSHD_DIR=$m_dir SSHD_PORT=$m_port SSHD_PID=$m_pid SSH_KEY=$m_key SSH_KNOWN=$m_known
}

stop_extra() {
	[ -n "$x_pid" ] || return 0
	pkill -KILL -P "$x_pid" 2>/dev/null
	kill "$x_pid" 2>/dev/null
}

# A login startup file that prints before the command (BASH_ENV here): its
# output is passed on, and the command's pid is still known, so a timeout
# stops the remote command.
begin startup-output
printf 'echo hello-from-startup\n' >"$D/env.sh"
extra_sshd startup '' "SHLVL=1 BASH_ENV=$D/env.sh"
if [ -n "$x_pid" ]; then
	{
		printf 'version: 1\nname: e2e-startup\nowner: T <t@e.com>\nreason: r\nexpected: e\n'
		printf 'targets:\n  prod:\n    hosts: ["127.0.0.1:%s"]\n    identity: %s\n' "$x_port" "$x_key"
		printf 'steps:\n  - name: slow\n    run: sleep 40.%s; echo never\n    timeout: 1s\n    rollback: none\n' "$TAG"
	} >f.yml
	rb run apply f.yml --known-hosts "$x_known" -v
	expect_rc 1
	has -i run.err 'hello-from-startup' "the startup file's output"
	hasnt -i run.err 'rb-pid' "our pid report"
	expect_no_leftovers "after a timeout behind startup output (sleep 40.$TAG)"
fi
stop_extra
end

# sshd drops idle sessions (ClientAliveInterval 1, CountMax 1): with serial
# batches, the second host waits longer than that; its session is replaced
# before its first command (nothing had started on it).
begin idle-session-dropped
extra_sshd idle $'ClientAliveInterval 1\nClientAliveCountMax 1'
if [ -n "$x_pid" ]; then
	: >"$D/known"
	for a in 127.0.0.1 127.0.0.2; do
		printf '[%s]:%s %s\n' "$a" "$x_port" "$(cut -d' ' -f1,2 "$tmp/sshd-idle/host_ed25519.pub")" >>"$D/known"
	done
	{
		printf 'version: 1\nname: e2e-idle\nowner: T <t@e.com>\nreason: r\nexpected: e\n'
		printf 'targets:\n  prod:\n    hosts: ["127.0.0.1:%s", "127.0.0.2:%s"]\n    serial: 1\n    identity: %s\n' "$x_port" "$x_port" "$x_key"
		printf 'steps:\n  - name: wait\n    run: sleep 4; echo done {{ host }} >> %s/log\n    rollback: none\n' "$D"
	} >f.yml
	rb run apply f.yml --known-hosts "$D/known"
	expect_rc 0
	check [ "$(wc -l <"$D/log" 2>/dev/null)" = 2 ] || bad "expected both hosts to run, found: $(paste -sd'|' "$D/log" 2>/dev/null)"
fi
stop_extra
end

# A host that freezes (its session processes stopped: TCP stays up, nothing
# is answered) must not hang runbook: the step times out, the stop cannot be
# delivered (said so), the run ends within a bound; the rollback reaches the
# host on a new connection and stops the cut-off command first.
begin frozen-host
{
	hdr e2e-frozen
	tgt "$H1"
	printf 'steps:\n  - name: hang\n    run: touch %s/started; sleep 50.%s\n    timeout: 2s\n    rollback: echo undo >> %s/log\n' "$D" "$TAG" "$D"
} >f.yml
start_bg run apply f.yml "${KH[@]}"
if wait_files $((10 * SLOW)) "$D/started"; then
	frozen=$(pgrep -P "$SSHD_PID" | paste -sd' ' -)
	# shellcheck disable=SC2086
	[ -n "$frozen" ] && kill -STOP $frozen
	wait_bg "$BGPID" $((60 * SLOW)) || bad "runbook did not finish within $((60 * SLOW)) s"
	# shellcheck disable=SC2086
	[ -n "$frozen" ] && kill -CONT $frozen
	# the rollback reconnects (the daemon still accepts): the cut-off
	# command is stopped there first, then the rollback runs
	expect_rc 1
	has -i run.err 'could not stop it on .*did not answer' "that the stop could not be delivered"
	expect_lines log 'undo'
else
	bad "the step never started"
	wait_bg "$BGPID" $((60 * SLOW)) || bad "runbook did not finish within $((60 * SLOW)) s"
fi
expect_no_leftovers "after the frozen host came back (sleep 50.$TAG)"
end

# A host that freezes while a silent command runs with a long timeout: the
# unanswered keepalives show the link dead within 20 s (docs/ssh.md), long
# before the step's 300 s, and the message says so and what retrying means.
# The rollback reaches the host on a new connection (the daemon still
# accepts) and stops the cut-off command first.
begin frozen-link-keepalive
{
	hdr e2e-frozen-link
	tgt "$H1"
	printf 'steps:\n  - name: hang\n    run: touch %s/started; sleep 60.%s\n    timeout: 300s\n    rollback: echo undo >> %s/log\n' "$D" "$TAG" "$D"
} >f.yml
start_bg run apply f.yml "${KH[@]}"
if wait_files $((10 * SLOW)) "$D/started"; then
	frozen=$(pgrep -P "$SSHD_PID" | paste -sd' ' -)
	# shellcheck disable=SC2086
	[ -n "$frozen" ] && kill -STOP $frozen
	wait_bg "$BGPID" $((40 * SLOW)) || bad "runbook did not notice the dead link within $((40 * SLOW)) s"
	# shellcheck disable=SC2086
	[ -n "$frozen" ] && kill -CONT $frozen
	expect_rc 1
	check [ "$MS" -lt $((40000 * SLOW)) ] || bad "expected the dead link noticed within 40 s, took ${MS} ms"
	has -i run.err 'the link is dead' "that the link is dead"
	has -i run.err 'no answer to 3 keepalives' "the unanswered keepalives"
	has -i run.err 'may have done part of its work' "that the outcome is unknown"
	has -i run.err 'safe to run again only once it has been rolled back' "whether retrying is safe"
	expect_lines log 'undo'
else
	bad "the step never started"
	wait_bg "$BGPID" $((60 * SLOW)) || bad "runbook did not finish within $((60 * SLOW)) s"
fi
expect_no_leftovers "after the frozen host came back (sleep 60.$TAG)"
end

# ServerAliveInterval 1 and ServerAliveCountMax 2 for the host in ~/.ssh/config
# set the bound: a keepalive after 1 s of silence, another 1 s later, and the
# link is dead 1 s after that, about 3 s after the host's last byte instead of
# the default 20 s (frozen-link-keepalive).
begin frozen-link-server-alive
cat >"$HOME/.ssh/config" <<EOF
Host quick
    HostName 127.0.0.1
    Port $P
    ServerAliveInterval 1
    ServerAliveCountMax 2
EOF
chmod 600 "$HOME/.ssh/config"
{
	hdr e2e-frozen-quick
	tgt quick
	printf 'steps:\n  - name: hang\n    run: touch %s/started; sleep 60.%s\n    timeout: 300s\n    rollback: echo undo >> %s/log\n' "$D" "$TAG" "$D"
} >f.yml
start_bg run apply f.yml "${KH[@]}"
if wait_files $((10 * SLOW)) "$D/started"; then
	frozen=$(pgrep -P "$SSHD_PID" | paste -sd' ' -)
	# shellcheck disable=SC2086
	[ -n "$frozen" ] && kill -STOP $frozen
	wait_bg "$BGPID" $((40 * SLOW)) || bad "runbook did not notice the dead link within $((40 * SLOW)) s"
	# shellcheck disable=SC2086
	[ -n "$frozen" ] && kill -CONT $frozen
	expect_rc 1
	check [ "$MS" -lt $((10000 * SLOW)) ] || bad "expected the dead link noticed within 10 s (about 3 s), took ${MS} ms"
	has -i run.err 'the link is dead' "that the link is dead"
	has -i run.err 'no answer to 2 keepalives sent 1 s apart' "the configured keepalives"
	has -i run.err 'nothing from the host for 3 s' "the configured bound"
	has run.err 'ServerAliveInterval 1 and ServerAliveCountMax 2' "where the bound came from"
	has -i run.err 'safe to run again only once it has been rolled back' "whether retrying is safe"
	expect_lines log 'undo'
else
	bad "the step never started"
	wait_bg "$BGPID" $((60 * SLOW)) || bad "runbook did not finish within $((60 * SLOW)) s"
fi
rm -f "$HOME/.ssh/config"
expect_no_leftovers "after the frozen host came back (sleep 60.$TAG)"
end

# ServerAliveInterval 0 turns ssh's keepalives off, not runbook's: the interval
# stays 5 s. ServerAliveCountMax 0, as in ssh, sends none and gives up after
# one silent interval: about 5 s, not 20 s, nor the step's 300 s timeout.
begin frozen-link-server-alive-zero
cat >"$HOME/.ssh/config" <<EOF
Host zero
    HostName 127.0.0.1
    Port $P
    ServerAliveInterval 0
    ServerAliveCountMax 0
EOF
chmod 600 "$HOME/.ssh/config"
{
	hdr e2e-frozen-zero
	tgt zero
	printf 'steps:\n  - name: hang\n    run: touch %s/started; sleep 60.%s\n    timeout: 300s\n    rollback: echo undo >> %s/log\n' "$D" "$TAG" "$D"
} >f.yml
start_bg run apply f.yml "${KH[@]}"
if wait_files $((10 * SLOW)) "$D/started"; then
	frozen=$(pgrep -P "$SSHD_PID" | paste -sd' ' -)
	# shellcheck disable=SC2086
	[ -n "$frozen" ] && kill -STOP $frozen
	wait_bg "$BGPID" $((40 * SLOW)) || bad "runbook did not notice the dead link within $((40 * SLOW)) s"
	# shellcheck disable=SC2086
	[ -n "$frozen" ] && kill -CONT $frozen
	expect_rc 1
	check [ "$MS" -ge 4000 ] ||
		bad "expected the dead link noticed after about 5 s (the default interval, not 0), took ${MS} ms"
	check [ "$MS" -lt $((10000 * SLOW)) ] ||
		bad "expected the dead link noticed within 10 s (about 5 s), took ${MS} ms"
	has -i run.err 'the link is dead \(nothing from the host for 5 s, with ServerAliveCountMax 0:' "the bound, without keepalives"
	hasnt run.err 'ServerAliveInterval' "the interval of 0 as if in use"
	expect_lines log 'undo'
else
	bad "the step never started"
	wait_bg "$BGPID" $((60 * SLOW)) || bad "runbook did not finish within $((60 * SLOW)) s"
fi
rm -f "$HOME/.ssh/config"
expect_no_leftovers "after the frozen host came back (sleep 60.$TAG)"
end

sshd_stop
reap_leftovers
finish
