#!/usr/bin/env bash
# End-to-end checks of fleets (docs/fleets.md) on real loopback SSH hosts:
# an inventory beside a runbook without targets, host and target vars and
# where plan says they came from, serial waves (a failing canary stops the
# change before wave two), --limit with a glob over inventory hosts and its
# rollback, confirm on a pseudo-terminal (script(1)) and without one.
# One OpenSSH sshd (tests/e2e/lib/sshd.sh) listens on 127.0.0.1-7: staging
# is .1, production .2-.7.
#
#   RUNBOOK=build/runbook bash tests/e2e/fleet.sh
# shellcheck source=lib/harness.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/harness.sh"
harness_init fleet --operator 'Fay Fleet <fay@example.com>' --repo-per-check
need_tools git "$PY" ssh-keygen ssh-keyscan /usr/sbin/sshd script

# shellcheck source=lib/sshd.sh
. "$E2E_DIR/lib/sshd.sh"
on_cleanup sshd_stop

mkdir -p "$HOME/.ssh" && chmod 700 "$HOME/.ssh" ||
	setup_failed "cannot make $HOME/.ssh"
ADDRS=(127.0.0.1 127.0.0.2 127.0.0.3 127.0.0.4 127.0.0.5 127.0.0.6 127.0.0.7)
if ! sshd_start_on "$tmp/sshd" "${ADDRS[@]}" >"$tmp/sshd-start.log" 2>&1; then
	setup_failed "sshd did not start: $(tail -n 5 "$tmp/sshd-start.log" | paste -sd' ' -)"
fi
KH=(--known-hosts "$SSH_KNOWN")
P=$SSHD_PORT

# inventory.yml beside rb.yml: $1 is production's serial, $2 its confirm.
write_fleet() {
	cat > inventory.yml <<YAML
version: 1
targets:
  staging:
    hosts: ["127.0.0.1:$P"]
    identity: $SSH_KEY
  production:
    serial: $1
    confirm: $2
    identity: $SSH_KEY
    vars: { pool: prod }
    hosts:
      - "127.0.0.2:$P"
      - "127.0.0.3:$P"
      - "127.0.0.4:$P"
      - "127.0.0.5:$P"
      - host: "127.0.0.6:$P"
        vars: { weight: "16" }
      - host: "127.0.0.7:$P"
        vars: { weight: "16", pool: big }
YAML
	cat > rb.yml <<YAML
version: 1
name: fleet
owner: Test Team <test@example.com>
reason: e2e check of fleets
expected: every host has its own weight
vars:
  weight: "8"
  pool: none
steps:
  - name: mark
    run: echo {{ host }} {{ weight }} {{ pool }} >> $D/ran
    rollback: echo {{ host }} >> $D/undone
  - name: canary-check
    run: test ! -e $D/fail-{{ host }}
    rollback: none
YAML
}

hosts_in() { cut -d' ' -f1 "$1" 2>/dev/null | sed 's/:.*//' | sort | paste -sd' ' -; }

begin inventory-vars-and-waves
write_fleet '[1, 50%]' false
rb plan plan rb.yml -t production
expect_rc 0 "plan"
has plan.out "batch 1: 127.0.0.2:$P" "the canary batch"
has plan.out "batch 2: 127.0.0.3:$P 127.0.0.4:$P 127.0.0.5:$P" "a wave of half the hosts"
has plan.out "weight = 16  \\(host 127\\.0\\.0\\.7:$P vars\\)" "a host var and where it came from"
has plan.out "pool = prod  \\(target production vars\\)" "a target var and where it came from"
has plan.out "weight = 8  \\(runbook vars\\)" "a runbook var where nothing overrides it"
rb run apply rb.yml -t production -e pool=cli "${KH[@]}"
expect_rc 0 "apply"
check [ "$(hosts_in "$D/ran")" = "127.0.0.2 127.0.0.3 127.0.0.4 127.0.0.5 127.0.0.6 127.0.0.7" ] ||
	bad "expected the six production hosts, found: $(hosts_in "$D/ran")"
check grep -qx "127.0.0.7:$P 16 cli" "$D/ran" || bad "host var, then --var over the target's: $(paste -sd'|' - <"$D/ran")"
check grep -qx "127.0.0.2:$P 8 cli" "$D/ran" || bad "runbook var where no host var: $(paste -sd'|' - <"$D/ran")"
has run.err "batch 3 of 3" "three batches"
rb back rollback --last "${KH[@]}"
expect_rc 0 "rollback"
check [ "$(hosts_in "$D/undone")" = "127.0.0.2 127.0.0.3 127.0.0.4 127.0.0.5 127.0.0.6 127.0.0.7" ] ||
	bad "the rollback did not cover the six hosts: $(hosts_in "$D/undone")"
end

begin canary-failure-stops-before-wave-two
write_fleet '[1, 50%]' false
: > "$D/fail-127.0.0.2:$P"
rb run apply rb.yml -t production "${KH[@]}"
expect_rc 1 "apply with a failing canary"
check [ "$(hosts_in "$D/ran")" = "127.0.0.2" ] || bad "wave two ran: $(hosts_in "$D/ran")"
check [ "$(hosts_in "$D/undone")" = "127.0.0.2" ] || bad "the canary was not rolled back: $(hosts_in "$D/undone")"
hasnt run.err "batch 2 of 3" "batch two never starts"
end

# The rollback goes back wave by wave, newest first, each wave as apply
# cut it: [2, 1] over six hosts is .2 .3 | .4 | .5 | .6 | .7; .7 fails.
begin rollback-newest-wave-first
write_fleet '[2, 1]' false
sed -i "s|rollback: echo {{ host }} >> $D/undone|rollback: sleep 0.4; echo {{ host }} \\\$(date +%s%N) >> $D/undone|" rb.yml
: > "$D/fail-127.0.0.7:$P"
rb run apply rb.yml -t production "${KH[@]}"
expect_rc 1 "apply with the last wave failing"
check [ "$(hosts_in "$D/undone")" = "127.0.0.2 127.0.0.3 127.0.0.4 127.0.0.5 127.0.0.6 127.0.0.7" ] ||
	bad "expected every host undone, found: $(hosts_in "$D/undone")"
t() { awk -v h="$1" 'index($1, h ":") == 1 { print substr($2, 1, length($2) - 6) }' "$D/undone"; }
# .6 (wave 5) well before .5 (wave 4) before .4 (wave 3): one at a time
for pair in "6 5" "5 4" "4 3"; do
	set -- $pair
	a=$(t "127.0.0.$1") b=$(t "127.0.0.$2")
	check [ -n "$a" ] && [ -n "$b" ] && [ $((b - a)) -ge 300 ] ||
		bad "expected .$1 undone at least 300 ms before .$2 (a wave of its own), found .$1 at ${a:-?} ms, .$2 at ${b:-?} ms"
done
# .2 and .3 are one wave: undone together
a=$(t 127.0.0.2) b=$(t 127.0.0.3)
d=$((a > b ? a - b : b - a))
check [ "$d" -lt 300 ] || bad "expected .2 and .3 (one wave) undone together, found $d ms apart"
end

begin capture-over-host-var
# a capture wins over a host var of the same name, --var over the capture
write_fleet 100% false
sed -i 's/^steps:$/preflight:\n  - name: read weight\n    run: echo weight=99\n    capture: { weight: '"'"'weight=(\\d+)'"'"' }\nsteps:/' rb.yml
rb run apply rb.yml -t production --limit '127.0.0.[67]*' "${KH[@]}"
expect_rc 0 "apply"
check grep -qx "127.0.0.7:$P 99 big" "$D/ran" || bad "expected the capture over the host var: $(paste -sd'|' - <"$D/ran")"
rm -f "$D/ran"
rb run2 apply rb.yml -t production --limit '127.0.0.7*' -e weight=7 "${KH[@]}"
expect_rc 0 "apply -e"
check grep -qx "127.0.0.7:$P 7 big" "$D/ran" || bad "expected --var over the capture: $(paste -sd'|' - <"$D/ran")"
end

begin serial-override
write_fleet 1 false
rb plan plan rb.yml -t production --serial 2,100%
expect_rc 0 "plan --serial"
has plan.out "6 hosts in 2 batches" "--serial 2,100% over serial: 1"
rb bad plan rb.yml -t production --serial 0
expect_rc 2 "--serial 0"
has bad.err "--serial: expected" "says what --serial takes"
end

begin limit-glob-over-inventory-hosts
write_fleet '[1, 50%]' false
rb run apply rb.yml -t production --limit '127.0.0.[67]*' "${KH[@]}"
expect_rc 0 "apply --limit"
check [ "$(hosts_in "$D/ran")" = "127.0.0.6 127.0.0.7" ] || bad "expected .6 and .7 only, found: $(hosts_in "$D/ran")"
rb back rollback --last "${KH[@]}"
expect_rc 0 "rollback"
check [ "$(hosts_in "$D/undone")" = "127.0.0.6 127.0.0.7" ] || bad "the rollback touched: $(hosts_in "$D/undone")"
end

begin confirm-without-a-terminal
write_fleet '[1, 50%]' true
rb run apply rb.yml -t production "${KH[@]}" </dev/null
expect_rc 2 "confirm without a terminal"
has run.err "add --yes" "says what to add"
check [ ! -e "$D/ran" ] || bad "something ran"
rb yes apply rb.yml -t production --yes --limit '127.0.0.2*' "${KH[@]}" </dev/null
expect_rc 0 "--yes"
has yes.err "--yes given" "says it went on because of --yes"
end

begin confirm-on-a-terminal
write_fleet '[1, 50%]' true
cmd=$(printf '%q ' "$RUNBOOK" apply rb.yml -t production --limit '127.0.0.2*' "${KH[@]}")
printf 'staging\n' > wrong.in
rb_cmd wrong env TERM=dumb script -qec "$cmd" /dev/null <wrong.in
expect_rc 2 "a wrong name"
has wrong.out "type the target's name \\(production\\) to go on" "the question on the pty"
has wrong.out "hosts: 127\\.0\\.0\\.2:$P" "the hosts shown"
has wrong.out 'found "staging"' "the refusal names what was typed"
has wrong.out "e2e check of fleets" "the reason shown"
check [ ! -e "$D/ran" ] || bad "something ran after a wrong name"
printf 'production\n' > right.in
rb_cmd right env TERM=dumb script -qec "$cmd" /dev/null <right.in
expect_rc 0 "the right name"
check [ "$(hosts_in "$D/ran")" = "127.0.0.2" ] || bad "expected .2 to run, found: $(hosts_in "$D/ran")"
# its rollback asks too, from the record (the runbook is gone)
mv rb.yml rb.yml.gone
rb back-nt rollback --last "${KH[@]}" </dev/null
expect_rc 2 "rollback of a confirm target without a terminal"
has back-nt.err "add --yes" "the rollback says what to add"
check [ ! -e "$D/undone" ] || bad "a rollback ran unconfirmed"
cmd=$(printf '%q ' "$RUNBOOK" rollback --last "${KH[@]}")
rb_cmd back-wrong env TERM=dumb script -qec "$cmd" /dev/null <wrong.in
expect_rc 2 "rollback, a wrong name"
has back-wrong.out "rollback on target production asks for confirmation" "the rollback's question"
has back-wrong.out "hosts: 127\\.0\\.0\\.2:$P" "the hosts of the change shown"
check [ ! -e "$D/undone" ] || bad "a rollback ran after a wrong name"
rb_cmd back-right env TERM=dumb script -qec "$cmd" /dev/null <right.in
expect_rc 0 "rollback, the right name"
check [ "$(hosts_in "$D/undone")" = "127.0.0.2" ] || bad "expected .2 undone, found: $(hosts_in "$D/undone")"
mv rb.yml.gone rb.yml
end

begin pause-between-batches
# a canary, then the rest after a 2 s pause: plan says it, apply waits and
# says so, a terminal shows the countdown, and SIGINT during the pause
# rolls back the canary while the second batch never starts
write_fleet '[1, 100%]' false
sed -i 's/^    serial: .*/&\n    pause: 2s/' inventory.yml
rb plan plan rb.yml -t production --limit '127.0.0.[23]*'
expect_rc 0 "plan"
has plan.out 'pause: +2s between batches' "plan shows the pause"
t0=$(date +%s%N)
rb run apply rb.yml -t production --limit '127.0.0.[23]*' "${KH[@]}"
t1=$(date +%s%N)
expect_rc 0 "apply with a pause"
has run.err 'pause: 2s before batch 2 of 2' "the pause announced"
check [ $(((t1 - t0) / 1000000)) -ge 2000 ] || bad "the apply took $(((t1 - t0) / 1000000)) ms, less than the pause"
check [ "$(hosts_in "$D/ran")" = "127.0.0.2 127.0.0.3" ] || bad "expected .2 and .3 to run, found: $(hosts_in "$D/ran")"
rm -f "$D/ran" "$D/undone"
cmd=$(printf '%q ' "$RUNBOOK" apply rb.yml -t production --limit '127.0.0.[23]*' "${KH[@]}")
rb_cmd tty env TERM=xterm script -qec "$cmd" /dev/null </dev/null
expect_rc 0 "apply on a terminal"
has tty.out 'batch 2 of 2 starts in [12]s' "the countdown on the terminal"
rm -f "$D/ran" "$D/undone"
sed -i 's/^    pause: 2s/    pause: 30s/' inventory.yml
start_bg int apply rb.yml -t production --limit '127.0.0.[23]*' "${KH[@]}"
for _ in $(seq 1 $((100 * SLOW))); do
	grep -q 'pause: 30s before batch 2' "$D/int.err" 2>/dev/null && break
	sleep 0.1
done
kill -INT "$BGPID"
wait_bg "$BGPID" $((10 * SLOW)) || bad "runbook still ran 10 s after SIGINT"
expect_rc 130 "SIGINT during the pause"
has int.err 'interrupted by a signal during the pause before batch 2 of 2' "the pause named"
check [ "$(hosts_in "$D/ran")" = "127.0.0.2" ] || bad "expected only the canary to run, found: $(hosts_in "$D/ran")"
check [ "$(hosts_in "$D/undone")" = "127.0.0.2" ] || bad "expected the canary rolled back, found: $(hosts_in "$D/undone")"
end

begin inventory-problems-located
write_fleet '[1, 0]' maybe
rb val validate rb.yml
expect_rc 5 "validate"
has val.err "inventory.yml:" "problems located in the inventory"
has val.err 'inventory\.yml:7:17: targets\.production\.serial\[1\]: expected' "the bad wave"
has val.err "targets.production.confirm: expected true or false" "the bad confirm"
end

finish
