#!/usr/bin/env bash
# End-to-end checks of the failure budget max_fail (docs/fleets.md) on real
# loopback SSH hosts: docs/fleets.md's production of six hosts (.2-.7, a
# canary of one, then waves of 50%) with one host made to fail (rolled back
# alone, the others applied, exit 7, per-host outcomes in the note, and a
# later `runbook rollback` undoing only the applied hosts); two failing hosts
# (everything rolled back, exit 1); a percentage budget; an unreachable host
# (127.0.0.8, where nothing listens) counting against the budget; a failing
# canary past the budget stopping the change before wave two.
#
#   RUNBOOK=build/runbook bash tests/e2e/maxfail.sh
# shellcheck source=lib/harness.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/harness.sh"
harness_init maxfail --operator 'Fay Fleet <fay@example.com>' --repo-per-check
need_tools git "$PY" ssh-keygen ssh-keyscan /usr/sbin/sshd

# shellcheck source=lib/sshd.sh
. "$E2E_DIR/lib/sshd.sh"
on_cleanup sshd_stop

mkdir -p "$HOME/.ssh" && chmod 700 "$HOME/.ssh" ||
	setup_failed "cannot make $HOME/.ssh"
ADDRS=(127.0.0.1 127.0.0.2 127.0.0.3 127.0.0.4 127.0.0.5 127.0.0.6 127.0.0.7)
if ! sshd_start_on "$tmp/sshd" "${ADDRS[@]}" >"$tmp/sshd-start.log" 2>&1; then
	setup_failed "sshd did not start: $(tail -n 5 "$tmp/sshd-start.log" | paste -sd' ' -)"
fi
sshd_trust_also 127.0.0.8	# answers nothing: an unreachable host
KH=(--known-hosts "$SSH_KNOWN")
P=$SSHD_PORT

# inventory.yml and rb.yml: $1 is production's max_fail, $2 its last host
# (127.0.0.7, or one where nothing listens), $3 its serial ([1, 50%]). A host fails its check when
# $D/fail-HOST exists; each host appends to $D/ran and $D/undone.
write_fleet() {
	cat > inventory.yml <<YAML
version: 1
targets:
  production:
    serial: ${3:-[1, 50%]}
    max_fail: $1
    identity: $SSH_KEY
    hosts:
      - "127.0.0.2:$P"
      - "127.0.0.3:$P"
      - "127.0.0.4:$P"
      - "127.0.0.5:$P"
      - "127.0.0.6:$P"
      - "${2:-127.0.0.7}:$P"
YAML
	cat > rb.yml <<YAML
version: 1
name: tuning
owner: Test Team <test@example.com>
reason: e2e check of max_fail
expected: every host tuned
steps:
  - name: tune
    run: echo {{ host }} >> $D/ran
    rollback: echo {{ host }} >> $D/undone
  - name: check
    run: test ! -e $D/fail-{{ host }}
    rollback: echo {{ host }} >> $D/undone-check
notify:
  - name: pager
    when: [failed]
    run: echo "\$RUNBOOK_EVENT \$RUNBOOK_EXIT_CODE" >> $D/paged
YAML
}

hosts_in() { cut -d' ' -f1 "$1" 2>/dev/null | sed 's/:.*//' | sort | paste -sd' ' -; }
ALL6="127.0.0.2 127.0.0.3 127.0.0.4 127.0.0.5 127.0.0.6 127.0.0.7"

begin one-host-fails-within-the-budget
write_fleet 1
rb plan plan rb.yml -t production
expect_rc 0 "plan"
has plan.out "max_fail: 1 \\(1 of 6 hosts may fail" "plan shows the budget"
: > "$D/fail-127.0.0.4:$P"
rb run apply rb.yml -t production --json "${KH[@]}"
expect_rc 7 "apply with one failing host of max_fail: 1"
check [ "$(hosts_in "$D/ran")" = "$ALL6" ] || bad "every batch should run, found: $(hosts_in "$D/ran")"
check [ "$(hosts_in "$D/undone")" = "127.0.0.4" ] || bad "only .4 rolled back, found: $(hosts_in "$D/undone")"
check [ "$(hosts_in "$D/undone-check")" = "127.0.0.4" ] || bad "the failed step's own rollback on .4: $(hosts_in "$D/undone-check")"
# its rollback runs alone, in reverse order, before wave 3 starts
check "$PY" - "$D/run.out" "$P" <<'PY' || bad "JSON events out of order: $(head -c 600 "$D/run.out")"
import json, sys
ev = [json.loads(l) for l in open(sys.argv[1])]
port = sys.argv[2]
kinds = [(e["event"], e.get("host"), e.get("name"), e.get("outcome")) for e in ev]
rb = [k for k in kinds if k[0] == "rollback"]
assert [k[1] for k in rb] == ["127.0.0.4:" + port] * 2, rb
assert [k[2] for k in rb] == ["check", "tune"], rb
host = [k for k in kinds if k[0] == "host"]
out = {k[1]: k[3] for k in host}
assert out["127.0.0.4:" + port] == "failed-rolled-back", out
assert sorted(v for h, v in out.items() if h != "127.0.0.4:" + port) == ["applied"] * 5, out
i_rb = kinds.index(rb[-1])
# wave 3 (.6 and .7) starts after .4's rollback, wave 2 (.3-.5) before it
last = [i for i, k in enumerate(kinds) if k[0] == "step" and k[1] in
        ("127.0.0.6:" + port, "127.0.0.7:" + port)]
wave2 = [i for i, k in enumerate(kinds) if k[0] == "step" and k[1] in
         ("127.0.0.3:" + port, "127.0.0.5:" + port)]
assert last and min(last) > i_rb and wave2 and min(wave2) < i_rb, (last, wave2, i_rb)
done = [e for e in ev if e["event"] == "done"][0]
assert done["status"] == "applied-with-failures" and done["exit"] == 7, done
PY
has run.err "applied on 5 of 6 hosts of production" "the closing message counts the hosts"
check [ "$(cat "$D/paged" 2>/dev/null)" = "applied-with-failures 7" ] || bad "a notify for failed should hear of it: $(cat "$D/paged" 2>/dev/null)"
has run.err "apply again with --limit 127\\.0\\.0\\.4:$P" "says what to run next"
note=$(last_note)
check grep -q '^status: "applied-with-failures"' <<<"$note" || bad "note status: $(grep ^status <<<"$note")"
check grep -q "^outcomes:" <<<"$note" || bad "no outcomes in the front matter"
check grep -q "\"127.0.0.4:$P\": \"failed-rolled-back\"" <<<"$note" || bad "no outcome of .4: $(grep -A7 ^outcomes <<<"$note" | paste -sd'|' -)"
check [ "$(grep -c ': "applied"$' <<<"$note")" = 5 ] || bad "five applied outcomes: $(grep -A7 ^outcomes <<<"$note" | paste -sd'|' -)"
check grep -q "127.0.0.4:$P: failed, rolled back alone" <<<"$note" || bad "the body says .4's outcome"
rb lg log -n 1
has lg.out "applied-with-failures" "log shows it"
id=$("$RUNBOOK" log -n 1 --json | "$PY" -c 'import json,sys; print(json.loads(sys.stdin.readline())["change"])')
rb sh show "$id"
has sh.out "127\\.0\\.0\\.4:$P: failed, rolled back alone" "show gives .4's outcome"
rb back rollback --last "${KH[@]}"
expect_rc 0 "rollback of the change"
check [ "$(hosts_in "$D/undone")" = "$ALL6" ] || bad "rollback should add the five applied hosts only, found: $(hosts_in "$D/undone")"
check [ "$(grep -c "^127.0.0.4:" "$D/undone")" = 1 ] || bad ".4 was rolled back twice"
end

begin two-failing-hosts-roll-back-everything
write_fleet 1
: > "$D/fail-127.0.0.3:$P"
: > "$D/fail-127.0.0.5:$P"
rb run apply rb.yml -t production "${KH[@]}"
expect_rc 1 "apply with two failing hosts of max_fail: 1"
check matches "$(hosts_in "$D/ran")" "^127.0.0.2 127.0.0.3 (127.0.0.4 )?127.0.0.5$" || bad "batch 3 started: $(hosts_in "$D/ran")"
check [ "$(hosts_in "$D/undone")" = "$(hosts_in "$D/ran")" ] || bad "everything rolled back: $(hosts_in "$D/undone")"
has run.err "more than max_fail allows \\(1\\)" "says the budget was exceeded"
hasnt run.err "batch 3 of 3" "no batch starts past the budget"
note=$(last_note)
check grep -q '^status: "rolled-back"' <<<"$note" || bad "note status: $(grep ^status <<<"$note")"
end

begin percentage-budget
# 34% of 6 hosts is 2.04, rounded down: two may fail
write_fleet 34%
: > "$D/fail-127.0.0.3:$P"
: > "$D/fail-127.0.0.6:$P"
rb run apply rb.yml -t production "${KH[@]}"
expect_rc 7 "two failing hosts of max_fail: 34%"
check [ "$(hosts_in "$D/undone")" = "127.0.0.3 127.0.0.6" ] || bad "only the failed hosts rolled back: $(hosts_in "$D/undone")"
has run.err "applied on 4 of 6 hosts" "four applied"
end
again percentage-budget-rounded-down
# 16% of 6 is 0.96: no host may fail
rm -f "$D/ran" "$D/undone" "$D/undone-check" "$D/fail-127.0.0.6:$P"
write_fleet 16%
rb run2 apply rb.yml -t production "${KH[@]}"
expect_rc 1 "one failing host of max_fail: 16% (0 hosts)"
check [ "$(hosts_in "$D/undone")" = "127.0.0.2 127.0.0.3 127.0.0.4 127.0.0.5" ] || bad "everything rolled back: $(hosts_in "$D/undone")"
end

begin unreachable-host-counts
write_fleet 1 127.0.0.8
rb run apply rb.yml -t production "${KH[@]}"
expect_rc 7 "one unreachable host of max_fail: 1"
check [ "$(hosts_in "$D/ran")" = "127.0.0.2 127.0.0.3 127.0.0.4 127.0.0.5 127.0.0.6" ] || bad "the reachable hosts applied: $(hosts_in "$D/ran")"
check [ ! -e "$D/undone" ] || bad "nothing rolled back: $(hosts_in "$D/undone")"
has run.err "host 127\\.0\\.0\\.8:$P: unreachable" "says which host was unreachable"
note=$(last_note)
check grep -q "\"127.0.0.8:$P\": \"unreachable\"" <<<"$note" || bad "no unreachable outcome in the note"
end
again unreachable-plus-failure-exceeds
rm -f "$D/ran" "$D/undone"
: > "$D/fail-127.0.0.4:$P"
rb run2 apply rb.yml -t production "${KH[@]}"
expect_rc 1 "an unreachable and a failing host of max_fail: 1"
check [ "$(hosts_in "$D/undone")" = "127.0.0.2 127.0.0.3 127.0.0.4 127.0.0.5" ] || bad "everything rolled back: $(hosts_in "$D/undone")"
hasnt run2.err "batch 3 of 3" "no batch starts past the budget"
end
again every-host-unreachable-past-the-budget
rb run3 apply rb.yml -t production --limit '127.0.0.8*' "${KH[@]}"
expect_rc 6 "the only host unreachable"
end

begin canary-past-the-budget-stops-before-wave-two
# a canary of two hosts, both failing, with max_fail: 1
write_fleet 1 127.0.0.7 '[2, 50%]'
: > "$D/fail-127.0.0.2:$P"
: > "$D/fail-127.0.0.3:$P"
rb run apply rb.yml -t production "${KH[@]}"
expect_rc 1 "a canary failing past max_fail: 1"
check [ "$(hosts_in "$D/ran")" = "127.0.0.2 127.0.0.3" ] || bad "wave two ran: $(hosts_in "$D/ran")"
check [ "$(hosts_in "$D/undone")" = "127.0.0.2 127.0.0.3" ] || bad "the canary rolled back: $(hosts_in "$D/undone")"
hasnt run.err "batch 2 of" "batch two never starts"
has run.err "more than max_fail allows \\(1\\)" "says the budget was exceeded"
end
again canary-within-the-budget-goes-on
rm -f "$D/ran" "$D/undone" "$D/undone-check" "$D/fail-127.0.0.3:$P"
write_fleet 1
rb run2 apply rb.yml -t production "${KH[@]}"
expect_rc 7 "a failing canary within max_fail: 1"
check [ "$(hosts_in "$D/ran")" = "$ALL6" ] || bad "the waves should go on: $(hosts_in "$D/ran")"
check [ "$(hosts_in "$D/undone")" = "127.0.0.2" ] || bad "the canary alone rolled back: $(hosts_in "$D/undone")"
end

finish
