#!/usr/bin/env bash
# End-to-end checks of `runbook rehearse` (PRODUCT.md §3): the baseline taken
# from the preflight, the rollback of a successful apply, the second preflight
# compared with the baseline, the unified diff when they differ, the exit codes
# (0, 1, 3) and the note (status, baseline, Baseline section).
#
#   RUNBOOK=build/runbook bash tests/e2e/rehearse.sh
#
# Each check runs in its own git repository under a private mktemp -d, so its
# notes, journal and locks are its own. Output (tests/e2e/lib/harness.sh):
# `ok N - NAME` / `not ok N - NAME: why` per check, then `N passed, M failed`.
# shellcheck source=lib/harness.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/harness.sh"
harness_init rehearse --operator 'Olive Operator <olive@example.com>' --repo-per-check

# A runbook whose rollbacks restore (or, with FORGET=1, forget) file b.
write_rb() {
	cat > rb.yml <<YAML
version: 1
name: reh
owner: Ann Owner <ann@example.com>
reason: prove the rollback
expected: files a and b exist
targets:
  local: {hosts: [local]}
preflight:
  - name: state
    run: |
      echo "a=\$(cat a 2>/dev/null || echo none)"
      echo "b=\$(cat b 2>/dev/null || echo none)"
      echo stable line
    capture:
      a_state: '^a=(\S+)'
steps:
  - name: write a
    run: echo 1 > a
    rollback: rm -f a
  - name: write b
    run: echo 2 > b
    rollback: ${1:-rm -f b}
YAML
}

# note_has ERE WHAT: a line of the note matches ERE.
note_has() {
	check grep -q -- "$1" <<<"$note" || bad "note lacks $2: $(head -20 <<<"$note" | paste -sd'|' -)"
}

# 1. A rollback that restores everything: exit 0, note rehearsed, baseline same.
begin baseline-same
write_rb
rb run rehearse rb.yml
note=$(last_note)
expect_rc 0
check [ ! -e a ] && check [ ! -e b ] || bad "files left behind after the rehearsal"
note_has '^status: "rehearsed"$' "status rehearsed"
note_has '^baseline: "restored"$' "baseline restored"
note_has '^## Baseline after the rollback' "a Baseline section"
check grep -q 'rollback  local write a' run.err &&
	check [ "$(grep -c 'preflight local state' run.err)" = 2 ] ||
	bad "expected the rollback and a second preflight in the progress"
end

# 2. A rollback that forgets b: exit 3, a unified diff, note status failed.
begin baseline-differs
write_rb 'echo forgot b'
rb run rehearse rb.yml
note=$(last_note)
expect_rc 3
check grep -qx -- "--- baseline: preflight 'state' on local" run.err &&
	check grep -qx -- "+++ after rollback: preflight 'state' on local" run.err &&
	check grep -qx -- '-b=none' run.err && check grep -qx -- '+b=2' run.err &&
	check grep -qx -- ' stable line' run.err ||
	bad "expected a unified diff -b=none +b=2 with context"
refute grep -qx -- '-a=none' run.err || bad "a came back but the diff says it did not"
check grep -q 'baseline did not come back' run.err &&
	check grep -q 'check it before running again' run.err ||
	bad "expected the message to say what failed and that rerunning is not safe"
note_has '^status: "failed"$' "status failed"
note_has '^baseline: "differs"$' "baseline differs"
note_has '^baseline_diff: ".*+b=2' "the diff in baseline_diff"
note_has '^```diff$' "the diff"
end

# 3. The apply fails: rolled back as usual, the baseline compared as after
# 2b. No preflight: nothing to compare with, so the rehearsal passes (apply
# and rollback ran) and says the baseline was not compared; no baseline in
# the note.
begin no-preflight
cat > rb.yml <<YAML
version: 1
name: reh
owner: Ann Owner <ann@example.com>
reason: prove the rollback
expected: file a exists
targets:
  local: {hosts: [local]}
steps:
  - name: write a
    run: echo 1 > a
    rollback: rm -f a
YAML
rb run rehearse rb.yml
note=$(last_note)
expect_rc 0
check [ ! -e a ] || bad "file a left behind after the rehearsal"
check grep -q 'baseline not compared (no preflight)' run.err ||
	bad "expected the summary to say the baseline was not compared: $(tail -n 2 run.err | paste -sd'|' -)"
note_has '^status: "rehearsed"$' "status rehearsed"
refute grep -q '^baseline:' <<<"$note" || bad "a baseline in the note of a runbook without preflight"
end

#    every rollback, exit 1.
begin apply-fails
write_rb
cat >> rb.yml <<'YAML'
  - name: break
    run: exit 7
    rollback: 'true'
YAML
rb run rehearse rb.yml
note=$(last_note)
expect_rc 1
check [ ! -e a ] && check [ ! -e b ] || bad "the failed apply was not rolled back"
check grep -q 'running preflight again' run.err ||
	bad "expected the baseline compared after the automatic rollback"
note_has '^status: "rolled-back"$' "status rolled-back"
note_has '^baseline: "restored"$' "baseline restored after the automatic rollback"
end

# 4. The rollback fails: exit 3, status rollback-failed, and
#    `runbook rollback` finishes it once the cause is fixed.
begin rollback-fails
write_rb 'test -e fixed && rm -f b'
rb run rehearse rb.yml
note=$(last_note)
id=$("$RUNBOOK" log -n 1 --json | "$PY" -c 'import json,sys; print(json.loads(sys.stdin.readline())["change"])')
expect_rc 3
note_has '^status: "rollback-failed"$' "status rollback-failed"
hasnt run.err 'running preflight again' "a baseline compared although the rollback failed"
touch fixed
rb rollback rollback "$id"
expect_rc 0 "runbook rollback $id (did it finish?)"
check [ ! -e a ] && check [ ! -e b ] || bad "files left after runbook rollback"
note=$(last_note)
note_has '^status: "rolled-back"$' "the final status rolled-back"
end

# 5. A preflight expectation that no longer holds after the rollback is a
#    mismatch (exit 3) naming the preflight, not an apply failure.
begin preflight-expect
cat > rb.yml <<'YAML'
version: 1
name: reh
owner: Ann Owner <ann@example.com>
reason: prove the rollback
expected: marker made
targets:
  local: {hosts: [local]}
preflight:
  - name: no marker yet
    run: test ! -e marker && echo clean
    expect: { stdout: '^clean$' }
steps:
  - name: make marker
    run: touch marker
    rollback: 'true'
YAML
rb run rehearse rb.yml
expect_rc 3
check grep -q "baseline did not come back (diff above): preflight 'no marker yet' on local: expected exit 0, found exit 1" run.err &&
	check grep -qx -- '-[[]result] ok, exit 0' run.err &&
	check grep -qx -- '+[[]result] failed, exit 1' run.err ||
	bad "expected the failing preflight named and its result in the diff"
end

# 6. Secrets printed by the preflight are compared and shown redacted.
begin secret-redacted
cat > rb.yml <<'YAML'
version: 1
name: reh
owner: Ann Owner <ann@example.com>
reason: prove the rollback
expected: token file
targets:
  local: {hosts: [local]}
secrets:
  TOKEN: {env: REH_TOKEN}
preflight:
  - name: show
    run: 'if [ -e tok ]; then echo "tok={{ secrets.TOKEN }}"; else echo tok=absent; fi'
steps:
  - name: write token
    run: echo x > tok
    rollback: 'true'
YAML
REH_TOKEN=s3cr3t-canary-4711 rb run rehearse rb.yml --json
expect_rc 3
refute grep -rq 's3cr3t-canary-4711' run.out run.err .git ||
	bad "the secret leaked into output or the repository"
check grep -qx -- '+tok=[[]secret:TOKEN]' run.err || bad "expected the diff to show [secret:TOKEN]"
check "$PY" -c '
import json, sys
ev = [json.loads(l) for l in open("run.out")]
r = [e for e in ev if e.get("event") == "baseline"]
assert len(r) == 1 and r[0]["baseline"] == "differs", r
assert "+tok=[secret:TOKEN]" in r[0]["diff"], r[0]
assert ev[-1]["event"] == "done" and ev[-1]["exit"] == 3, ev[-1]
' 2>>py.err || bad "expected a JSON baseline event with the diff and a done event with exit 3: $(tail -n 1 py.err)"
end

# 7. A difference past the first MiB of output is still found.
begin big-output
cat > rb.yml <<'YAML'
version: 1
name: reh
owner: Ann Owner <ann@example.com>
reason: prove the rollback
expected: tail changed
targets:
  local: {hosts: [local]}
preflight:
  - name: dump
    run: 'seq 1 400000; cat tail 2>/dev/null || echo end'
steps:
  - name: change tail
    run: echo changed > tail
    rollback: 'true'
YAML
rb run rehearse rb.yml
expect_rc 3 "a difference after 1 MiB"
check grep -q '^-[[]stdout: .* bytes in all, crc32c' run.err ||
	bad "expected the length/checksum line in the diff"
end

# 8. The demo runbook rehearses cleanly (it is what the README shows).
begin demo
base=$D/demo-base
rb run rehearse "$SRCDIR/runbooks/demo.yml" --notes "$D" \
	-e base_dir="$base" -e release=9.9.9
expect_rc 0
check [ ! -e "$base" ] || bad "the demo left $base behind"
end

finish
