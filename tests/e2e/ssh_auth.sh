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
# number of attempts, the fix) and nothing runs. IdentitiesOnly yes in
# ~/.ssh/config: only the configured keys (the agent's copy of one counts),
# never the agent's other keys; without a configured key, the default files.
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
# the one it accepts first, then the 7 it refuses: the agent alone logs in
RIGHT_SOCK=$tmp/agent-right.sock
start_agent "$RIGHT_SOCK" "$SSH_KEY" "${WRONG[@]}"

# runbook HOST [IDENTITY]: one step that logs "did HOST" into $D/log.
runbook() {
	printf 'version: 1\nname: e2e-auth\nowner: Test Team <test@example.com>\n'
	printf 'reason: e2e check of ssh login\nexpected: the check passes\n'
	printf 'targets:\n  prod:\n    hosts: ["%s"]\n' "$1"
	[ -z "${2:-}" ] || printf '    identity: %s\n' "$2"
	printf 'steps:\n  - name: s\n    run: echo did {{ host }} >> %s/log\n    rollback: none\n' "$D"
}

# ssh_config LINE...: ~/.ssh/config with "Host strict" (this sshd) and LINE...
ssh_config() {
	{
		printf 'Host strict\n    HostName 127.0.0.1\n    Port %s\n' "$P"
		printf '    %s\n' "$@"
	} >"$HOME/.ssh/config" && chmod 600 "$HOME/.ssh/config" ||
		bad "cannot write ~/.ssh/config"
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

# IdentitiesOnly yes: only the configured key is offered (through the agent,
# which holds it). The agent's right key, which alone would log in (the next
# check), is never offered: the login fails after one refusal, as with ssh.
begin identities-only-yes
ssh_config "IdentityFile ${WRONG[0]}" 'IdentitiesOnly yes'
runbook strict >f.yml
SSH_AUTH_SOCK=$RIGHT_SOCK rb run apply f.yml "${KH[@]}"
expect_rc 6
check [ ! -e log ] || bad "expected nothing to run, found log: $(paste -sd'|' log)"
has_fixed run.err "tried ${WRONG[0]} (through ssh-agent) (rejected);" "the configured key as the only one tried"
hasnt run.err 'ssh-agent \([0-9]+ keys? rejected' "the agent's other keys as tried"
hasnt run.err 'closed the login' "a login the server closed (one refusal is under MaxAuthTries 3)"
has_fixed run.err "IdentitiesOnly yes" "why the agent's other keys were not offered"
has_fixed run.err "not offered: 7 keys of ssh-agent" "the agent's keys left out"
has_fixed run.err "safe to run again" "that retrying is safe"
rm -f "$HOME/.ssh/config"
end

# The same with IdentitiesOnly no: after the configured key, the agent's other
# keys are offered, and its first one logs in.
begin identities-only-no
ssh_config "IdentityFile ${WRONG[0]}" 'IdentitiesOnly no'
runbook strict >f.yml
SSH_AUTH_SOCK=$RIGHT_SOCK rb run apply f.yml "${KH[@]}"
expect_rc 0
expect_lines log "did strict"
rm -f "$HOME/.ssh/config"
end

# The runbook's `identity` is a configured key too: with IdentitiesOnly yes
# (and no IdentityFile) it is the only key offered.
begin identities-only-runbook-identity
ssh_config 'IdentitiesOnly yes'
runbook strict "${WRONG[1]}" >f.yml
SSH_AUTH_SOCK=$RIGHT_SOCK rb run apply f.yml "${KH[@]}"
expect_rc 6
check [ ! -e log ] || bad "expected nothing to run, found log: $(paste -sd'|' log)"
has_fixed run.err "tried ${WRONG[1]} (through ssh-agent) (rejected);" "the runbook's identity as the only key tried"
has_fixed run.err "IdentitiesOnly yes" "why the agent's other keys were not offered"
rm -f "$HOME/.ssh/config"
end

# The agent's copy of a configured key counts (as in ssh): the IdentityFile
# is locked by a passphrase, the agent holds its key behind 7 refused ones.
begin identities-only-agent-copy
cp "$SSH_KEY" locked && cp "$SSH_KEY.pub" locked.pub && chmod 600 locked ||
	bad "cannot copy the key"
ssh-keygen -q -p -P '' -N 'a passphrase' -f locked >/dev/null 2>&1 ||
	bad "cannot set a passphrase on the copy"
ssh_config "IdentityFile $D/locked" 'IdentitiesOnly yes'
runbook strict >f.yml
SSH_AUTH_SOCK=$ALL_SOCK rb run apply f.yml "${KH[@]}"
expect_rc 0
expect_lines log "did strict"
rm -f "$HOME/.ssh/config"
end

# IdentitiesOnly yes and no key configured: as in ssh, the default key files
# are the configured ones (here ~/.ssh/id_ed25519 is the right key), and the
# agent's 7 refused keys are not offered (they would use up MaxAuthTries 3).
begin identities-only-default-files
cp "$SSH_KEY" "$HOME/.ssh/id_ed25519" && cp "$SSH_KEY.pub" "$HOME/.ssh/id_ed25519.pub" &&
	chmod 600 "$HOME/.ssh/id_ed25519" || bad "cannot copy the key"
ssh_config 'IdentitiesOnly yes'
runbook strict >f.yml
SSH_AUTH_SOCK=$WRONG_SOCK rb run apply f.yml "${KH[@]}"
expect_rc 0
expect_lines log "did strict"
rm -f "$HOME/.ssh/config" "$HOME/.ssh/id_ed25519" "$HOME/.ssh/id_ed25519.pub"
end

sshd_stop
finish
