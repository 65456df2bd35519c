#!/usr/bin/env bash
# End-to-end checks of SSH login with many keys (docs/ssh.md, Authentication)
# against a real OpenSSH sshd on loopback (tests/e2e/lib/sshd.sh) that ends a
# login after 3 refused keys (MaxAuthTries 3), and a real ssh-agent holding 7
# keys the server does not know, then the one it accepts.
#
#   RUNBOOK=build/runbook SRCDIR=. bash tests/e2e/ssh_auth.sh
#
# Env: RUNBOOK (required) the built binary; SRCDIR the repository root;
# RUNBOOK_SANITIZED=1 allows 5x longer waits.
#
# Checks: the runbook's `identity` is offered before the agent's keys, as a
# file or through the agent (an identity file locked by a passphrase whose
# key the agent holds); an IdentityFile from ~/.ssh/config likewise; without
# a configured identity the server's drop is explained (MaxAuthTries, the
# number of attempts, the fix) and nothing runs.
#
# HOME is a private directory, SSH_AUTH_SOCK is set only for the runs that
# use an agent. Every check runs in its own git repository.
# shellcheck source=lib/harness.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/harness.sh"
harness_init ssh_auth --operator 'Sam Operator <sam@example.com>' --repo-per-check
need_tools git "$PY" ssh-keygen ssh-keyscan ssh-agent ssh-add /usr/sbin/sshd

# shellcheck source=lib/sshd.sh
. "$E2E_DIR/lib/sshd.sh"

AGENTS=()	# pids of the ssh-agents started here
# shellcheck disable=SC2317 # called at exit (on_cleanup)
stop_daemons() {
	local p
	sshd_stop
	for p in "${AGENTS[@]}"; do
		kill -KILL "$p" 2>/dev/null
	done
}
on_cleanup stop_daemons

mkdir -p "$HOME/.ssh" && chmod 700 "$HOME/.ssh" ||
	setup_failed "cannot make $HOME/.ssh"

if ! SSHD_EXTRA='MaxAuthTries 3' sshd_start "$tmp/sshd" >"$tmp/sshd-start.log" 2>&1; then
	setup_failed "sshd did not start: $(tail -n 5 "$tmp/sshd-start.log" | paste -sd' ' -)"
fi
P=$SSHD_PORT
H1=127.0.0.1:$P
KH=(--known-hosts "$SSH_KNOWN")

# start_agent SOCK KEY...: an ssh-agent on SOCK holding KEY... in that order.
start_agent() {
	local sock=$1 env pid
	shift
	env=$(ssh-agent -s -a "$sock" 2>/dev/null)
	pid=$(sed -n 's/^SSH_AGENT_PID=\([0-9]*\);.*/\1/p' <<<"$env")
	[ -n "$pid" ] || setup_failed "ssh-agent did not start on $sock"
	AGENTS+=("$pid")
	SSH_AUTH_SOCK=$sock ssh-add -q "$@" 2>"$tmp/ssh-add.err" ||
		setup_failed "ssh-add failed: $(head -n 2 "$tmp/ssh-add.err" | paste -sd' ' -)"
}

mkdir -p "$tmp/keys" || setup_failed "cannot make $tmp/keys"
WRONG=()
for i in 1 2 3 4 5 6 7; do
	ssh-keygen -q -t ed25519 -N '' -C "wrong$i" -f "$tmp/keys/wrong$i" ||
		setup_failed "ssh-keygen failed"
	WRONG+=("$tmp/keys/wrong$i")
done
# 7 keys the server refuses, then the one it accepts
ALL_SOCK=$tmp/agent-all.sock
start_agent "$ALL_SOCK" "${WRONG[@]}" "$SSH_KEY"
# only the 7 it refuses
WRONG_SOCK=$tmp/agent-wrong.sock
start_agent "$WRONG_SOCK" "${WRONG[@]}"

# runbook HOST [IDENTITY]: one step that logs "did HOST" into $D/log.
runbook() {
	printf 'version: 1\nname: e2e-auth\nowner: Test Team <test@example.com>\n'
	printf 'reason: e2e check of ssh login\nexpected: the check passes\n'
	printf 'targets:\n  prod:\n    hosts: ["%s"]\n' "$1"
	[ -z "${2:-}" ] || printf '    identity: %s\n' "$2"
	printf 'steps:\n  - name: s\n    run: echo did {{ host }} >> %s/log\n    rollback: none\n' "$D"
}

# ------------------------------------------------------------------ checks

# The identity file is offered first, before the agent's 7 refused keys.
begin identity-file-before-agent
runbook "$H1" "$SSH_KEY" >f.yml
SSH_AUTH_SOCK=$WRONG_SOCK rb run apply f.yml "${KH[@]}"
expect_rc 0
expect_lines log "did $H1"
end

# The identity's key is in the agent: the agent's copy is offered first.
# The file itself is locked by a passphrase (runbook never asks for one), so
# only the agent can have logged in; it recognises the key by KEY.pub.
begin identity-held-by-agent
cp "$SSH_KEY" locked && cp "$SSH_KEY.pub" locked.pub && chmod 600 locked ||
	bad "cannot copy the key"
ssh-keygen -q -p -P '' -N 'a passphrase' -f locked >/dev/null 2>&1 ||
	bad "cannot set a passphrase on the copy"
runbook "$H1" "$D/locked" >f.yml
SSH_AUTH_SOCK=$ALL_SOCK rb run apply f.yml "${KH[@]}"
expect_rc 0
expect_lines log "did $H1"
end

# An IdentityFile of ~/.ssh/config is a configured identity too.
begin ssh-config-identity-first
cat >"$HOME/.ssh/config" <<EOF
Host authhost
    HostName 127.0.0.1
    Port $P
    IdentityFile $SSH_KEY
EOF
chmod 600 "$HOME/.ssh/config"
runbook authhost >f.yml
SSH_AUTH_SOCK=$WRONG_SOCK rb run apply f.yml "${KH[@]}"
expect_rc 0
expect_lines log "did authhost"
rm -f "$HOME/.ssh/config"
end

# No identity configured: the agent's keys go in its order, the server ends
# the login at its third refusal, and the message says why and what to do.
begin max-auth-tries-explained
runbook "$H1" >f.yml
SSH_AUTH_SOCK=$ALL_SOCK rb run apply f.yml "${KH[@]}"
expect_rc 6
check [ ! -e log ] || bad "expected nothing to run, found log: $(paste -sd'|' log)"
has_fixed run.err "server closed the login after 3 attempts" "the number of attempts"
has_fixed run.err "MaxAuthTries" "the cause"
has_fixed run.err "default 6" "the server's default"
has_fixed run.err "identity" "the fix: an identity for the host"
has_fixed run.err "ssh-add -d" "the fix: fewer keys in the agent"
has_fixed run.err "safe to run again" "that retrying is safe"
end

sshd_stop
finish
