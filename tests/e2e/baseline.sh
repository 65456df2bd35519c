#!/usr/bin/env bash
# End-to-end checks of the proof after every rollback (docs/notes.md,
# "Baseline after a rollback"): after apply's automatic rollback and after
# `runbook rollback`, preflight runs again and is compared with the baseline
# recorded when the change began; `baseline: restored` or `differs` with the
# diff in the note, exit 3 when it differs; `baseline: false` leaves a check
# out; metrics measured again (`after_rollback`); every rollback command's
# exit, time and output in the note.
#
#   RUNBOOK=build/runbook bash tests/e2e/baseline.sh
#
# Each check runs in its own git repository (tests/e2e/lib/harness.sh).
# shellcheck source=lib/harness.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/harness.sh"
harness_init baseline --operator 'Olive Operator <olive@example.com>' --repo-per-check

# note_has ERE WHAT: a line of the note matches ERE.
note_has() {
	check grep -Eq -- "$1" <<<"$note" || bad "note lacks $2: $(grep -E '^(status|baseline)' <<<"$note" | paste -sd'|' -)"
}

# write_rb ROLLBACK VERIFY [BASELINE]: a runbook whose step appends v2 to
# `state`; ROLLBACK undoes it (or forgets to); VERIFY decides whether the
# apply fails; BASELINE is the clock check's `baseline:` value (or none).
write_rb() {
	cat > rb.yml <<YAML
version: 1
name: prove
owner: Ann Owner <ann@example.com>
reason: prove every rollback
expected: state ends with v2
preflight:
  - name: state
    run: cat state
  - name: clock
    run: date +%s%N
${3:+    baseline: $3}
metrics:
  - name: lines
    run: wc -l < state
    pattern: '(\d+)'
steps:
  - name: bump
    run: echo v2 >> state
    rollback: $1
verify:
  - name: check
    run: $2
YAML
}

RESTORE="echo undoing bump; sed -i '\$d' state"
FORGET="echo undoing bump, badly"

# 1. apply fails, its rollback forgets: exit 3, baseline differs, the diff.
begin auto-rollback-differs
echo v1 > state
write_rb "$FORGET" "'false'" false
rb run apply rb.yml
expect_rc 3 "a rollback that does not restore the baseline"
note=$(last_note)
note_has '^status: "rolled-back"$' "status rolled-back"
note_has '^baseline: "differs"$' "baseline differs"
note_has '^baseline_diff: ".*\+v2' "the diff (+v2) in baseline_diff"
note_has '^## Baseline after the rollback' "a Baseline section"
has run.err 'does not show the baseline again' "the message says the baseline differs"
has run.err '^\+v2$' "the diff on the terminal"
end

# 2. apply fails, its rollback restores: exit 1, baseline restored.
begin auto-rollback-restored
echo v1 > state
write_rb "$RESTORE" "'false'" false
rb run apply rb.yml
expect_rc 1
note=$(last_note)
note_has '^baseline: "restored"$' "baseline restored"
has run.err 'preflight shows the baseline again' "the message says the baseline came back"
check [ "$(cat state)" = v1 ] || bad "state is $(cat state)"
end

# 3. The clock check without `baseline: false`: its output changes, so the
#    same restoring rollback is reported as differing (what the flag is for).
begin without-baseline-false
echo v1 > state
write_rb "$RESTORE" "'false'"
rb run apply rb.yml
expect_rc 3
note=$(last_note)
note_has '^baseline: "differs"$' "baseline differs"
note_has "^baseline_diff: \".*preflight 'clock'" "the clock check in the diff"
end

# 4. Metrics again after the rollback, and the rollback's output and exit.
begin metrics-and-rollback-output
echo v1 > state
write_rb "$RESTORE" "'false'" false
rb run apply rb.yml
expect_rc 1
note=$(last_note)
note_has '"lines": \{ before: "1", after: null, after_rollback: "1" \}' "metric after_rollback"
note_has '^\| metric \| host \| before \| after \| after rollback \|' "the after-rollback column"
note_has '^### rollback of bump on local' "the rollback's output section"
note_has '^undoing bump$' "what the rollback printed"
note_has '^    rollback_exit: 0$' "the rollback's exit"
note_has '^    rollback_duration_ms: [0-9]+$' "the rollback's duration"
note_has '^    baseline_stdout: "v1\\n"$' "the recorded baseline of 'state'"
end

# 5. runbook rollback of an applied change whose rollback forgets, after the
#    runbook file was deleted: exit 3, baseline differs in the new note.
begin replay-differs
echo v1 > state
write_rb "$FORGET" "'true'" false
rb run apply rb.yml
expect_rc 0
rm rb.yml
rb back rollback --last --reason 'forgot the state'
expect_rc 3
note=$(last_note)
note_has '^baseline: "differs"$' "baseline differs"
note_has '^rollback_reason: "forgot the state"$' "the reason"
note_has '^baseline_diff: ".*recorded when the change began' "the recorded baseline in the diff"
has back.err 'does not show the baseline recorded when the change began' "the message"
end

# 6. The same with a rollback that restores, read from the note alone (the
#    journals removed, as on another clone): exit 0, baseline restored.
begin replay-restored-from-note
echo v1 > state
write_rb "$RESTORE" "'true'" false
rb run apply rb.yml
expect_rc 0
check [ "$(cat state)" = "$(printf 'v1\nv2')" ] || bad "state after apply: $(cat state)"
rm -rf .git/runbook/journal .git/runbook/done
rb back rollback --last --yes
expect_rc 0
note=$(last_note)
note_has '^baseline: "restored"$' "baseline restored"
has back.err 'running preflight again' "the preflight ran again"
check [ "$(cat state)" = v1 ] || bad "state after rollback: $(cat state)"
end

# 7. A changed check exit code counts too: state removed by the rollback.
begin replay-exit-differs
echo v1 > state
write_rb "rm state" "'true'" false
rb run apply rb.yml
rb back rollback --last
expect_rc 3
has back.err '^\+\[exit\] 1$' "the new exit code in the diff"
end

# 8. Every attempt is on record: two retries, three attempts.
begin attempts-recorded
echo v1 > state
write_rb "$RESTORE" "'true'" false
cat >> rb.yml <<'YAML'
    retries: 2
    retry_delay: 100ms
YAML
sed -i "s/run: 'true'\$/run: 'exit 4'/" rb.yml
rb run apply rb.yml
expect_rc 1
note=$(last_note)
note_has '^    attempts: 3$' "attempts: 3 on the verify step"
check [ "$(grep -cE '^  - \{ event: attempt, .*name: "check", result: "failed", attempt: [12], exit: 4, duration_ms: [0-9]+' <<<"$note")" = 2 ] ||
	bad "expected two failed attempts of 'check' in events"
note_has '^\| local \| verify \| check \| failed \(3 attempts\) \| 4 \|' "the Steps table says 3 attempts"
end

# 9. `baseline` is a preflight key and a boolean.
begin validate-baseline-key
write_rb "$RESTORE" "'true'" false
cat >> rb.yml <<'YAML'
    baseline: false
YAML
rb run validate rb.yml
expect_rc 5
has run.err 'rb.yml:[0-9]+:[0-9]+: .*verify\[0\]\.baseline: expected no baseline in verify' "baseline in verify refused, located"
write_rb "$RESTORE" "'true'" '"no"'
rb run validate rb.yml
expect_rc 5
has run.err 'preflight\[1\]\.baseline: expected true or false' "a quoted baseline refused"
end

finish
