#!/usr/bin/env bash
# End-to-end checks of --limit (docs/apply.md, "Part of a target"): only the
# hosts named or globbed run, `plan` shows them, the note records `limit`,
# and the change's rollback touches exactly those hosts. One OpenSSH sshd
# (tests/e2e/lib/sshd.sh) also listens on 127.0.0.21-23, the three hosts.
#
#   RUNBOOK=build/runbook bash tests/e2e/limit.sh
#
# Output (tests/e2e/lib/harness.sh): `ok N - NAME` / `not ok N - NAME: why`
# per check, then `N passed, M failed`.
# shellcheck source=lib/harness.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/harness.sh"
harness_init limit --operator 'Lee Limit <lee@example.com>' --repo-per-check
need_tools git "$PY" ssh-keygen ssh-keyscan /usr/sbin/sshd

# shellcheck source=lib/sshd.sh
. "$E2E_DIR/lib/sshd.sh"
on_cleanup sshd_stop

mkdir -p "$HOME/.ssh" && chmod 700 "$HOME/.ssh" ||
	setup_failed "cannot make $HOME/.ssh"
ADDRS=(127.0.0.21 127.0.0.22 127.0.0.23)
if ! sshd_start_on "$tmp/sshd" "${ADDRS[@]}" >"$tmp/sshd-start.log" 2>&1; then
	setup_failed "sshd did not start: $(tail -n 5 "$tmp/sshd-start.log" | paste -sd' ' -)"
fi
KH=(--known-hosts "$SSH_KNOWN")

# Each host appends its name to $D/ran when its step runs and to $D/undone
# when its rollback runs (the hosts share this machine's file system).
write_rb() {
	cat > rb.yml <<YAML
version: 1
name: lim
owner: Test Team <test@example.com>
reason: e2e check of --limit
expected: the limited hosts changed
targets:
  prod:
    hosts: ["${ADDRS[0]}:$SSHD_PORT", "${ADDRS[1]}:$SSHD_PORT", "${ADDRS[2]}:$SSHD_PORT"]
    identity: $SSH_KEY
steps:
  - name: mark
    run: echo {{ host }} >> $D/ran
    rollback: echo {{ host }} >> $D/undone
YAML
}

begin glob-applies-and-rolls-back-only-those
write_rb
rb plan plan rb.yml -t prod --limit '127.0.0.2[23]'
expect_rc 0 "plan --limit"
hasnt plan.out "${ADDRS[0]}" "the host left out in the plan"
has plan.out "${ADDRS[1]}" "a limited host in the plan"
rb run apply rb.yml -t prod --limit '127.0.0.2[23]' "${KH[@]}"
expect_rc 0 "apply --limit"
check [ "$(sort "$D/ran" | paste -sd' ' -)" = "${ADDRS[1]}:$SSHD_PORT ${ADDRS[2]}:$SSHD_PORT" ] ||
	bad "expected only .22 and .23 to run, found: $(paste -sd' ' - <"$D/ran")"
note=$(last_note)
check grep -qx 'limit: "127.0.0.2\[23\]"' <<<"$note" || bad "the note lacks limit"
check grep -q "limited to \`127.0.0.2\[23\]\`" <<<"$note" || bad "the body does not say it was limited"
rb back rollback --last "${KH[@]}"
expect_rc 0 "rollback"
check [ "$(sort "$D/undone" | paste -sd' ' -)" = "${ADDRS[1]}:$SSHD_PORT ${ADDRS[2]}:$SSHD_PORT" ] ||
	bad "expected the rollback on .22 and .23 only, found: $(paste -sd' ' - <"$D/undone" 2>/dev/null)"
end

begin names-and-no-limit
write_rb
rb run apply rb.yml -t prod --limit "${ADDRS[0]},nosuch*" "${KH[@]}"
expect_rc 2 "a pattern that names no host"
has run.err 'limit: expected host names or globs of target prod .*found "nosuch\*", which names none; nothing was run' "the message"
check [ ! -e "$D/ran" ] || bad "something ran"
rb run2 apply rb.yml -t prod --limit "${ADDRS[0]}" "${KH[@]}"
expect_rc 0 "--limit by host name alone"
check [ "$(cat "$D/ran")" = "${ADDRS[0]}:$SSHD_PORT" ] || bad "expected only .21, found $(cat "$D/ran")"
rb run3 apply rb.yml -t prod "${KH[@]}"
expect_rc 0
note=$(last_note)
check grep -qx 'limit: null' <<<"$note" || bad "a change without --limit should say limit: null"
end

finish
