#!/usr/bin/env bash
# End-to-end checks of `runbook rehearse` (PRODUCT.md §3): the baseline taken
# from the preflight, the rollback of a successful apply, the second preflight
# compared with the baseline, the unified diff when they differ, the exit codes
# (0, 1, 3) and the note (status, baseline, Rehearsal section).
#
#   RUNBOOK=build/runbook bash tests/e2e/rehearse.sh
#
# Each check runs in its own git repository under a private mktemp -d, so its
# notes, journal and locks are its own. Output: `ok NAME` / `not ok NAME: why`
# per check, then `N passed, M failed`.
set -u
export LC_ALL=C
unset NO_COLOR RUNBOOK_NOTES

passed=0
failed=0
ok() { printf 'ok %s\n' "$1"; passed=$((passed + 1)); }
not_ok() {
	printf 'not ok %s: %s\n' "$1" "$2"
	[ -f err ] && sed -n '1,40s/^/#   /p' err
	failed=$((failed + 1))
}

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRCDIR=${SRCDIR:-$(cd "$script_dir/../.." && pwd)}
if [ -z "${RUNBOOK:-}" ] || [ ! -x "$RUNBOOK" ]; then
	printf 'not ok setup: RUNBOOK is not an executable file\n0 passed, 1 failed\n'
	exit 1
fi
case $RUNBOOK in /*) ;; *) RUNBOOK=$PWD/$RUNBOOK ;; esac

tmp=$(mktemp -d "${TMPDIR:-/tmp}/runbook-rehearse.XXXXXX") || exit 1
tmp=$(cd "$tmp" && pwd -P)
trap 'rm -rf -- "$tmp"' EXIT
export HOME=$tmp/home
mkdir -p "$HOME"
git config --global user.name 'Olive Operator'
git config --global user.email olive@example.com
git config --global init.defaultBranch main

# fresh CHECK: a new git repository to run one check in
fresh() {
	cd "$tmp" && rm -rf "$1" && mkdir "$1" && cd "$1" && git init -q .
}

# The note of the newest change, from plain git.
last_note() {
	local id
	id=$("$RUNBOOK" log -n 1 --json | "$PY" -c 'import json,sys; print(json.loads(sys.stdin.readline())["change"])') || return 1
	git show "runbook-notes:changes/${id:0:4}/${id:4:2}/$id.md"
}
PY=/usr/bin/python3

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

# 1. A rollback that restores everything: exit 0, note rehearsed, baseline same.
t=baseline-same
fresh $t
write_rb
"$RUNBOOK" rehearse rb.yml > out 2> err
rc=$?
note=$(last_note)
if [ $rc != 0 ]; then
	not_ok $t "expected exit 0, found $rc"
elif [ -e a ] || [ -e b ]; then
	not_ok $t "files left behind after the rehearsal"
elif ! grep -q '^status: "rehearsed"$' <<<"$note" ||
     ! grep -q '^baseline: "same"$' <<<"$note" ||
     ! grep -q '^## Rehearsal' <<<"$note"; then
	not_ok $t "note lacks status rehearsed / baseline same / Rehearsal: $(head -20 <<<"$note")"
elif ! grep -q 'rollback  local write a' err ||
     [ "$(grep -c 'preflight local state' err)" != 2 ]; then
	not_ok $t "expected the rollback and a second preflight in the progress"
else
	ok $t
fi

# 2. A rollback that forgets b: exit 3, a unified diff, note status failed.
t=baseline-differs
fresh $t
write_rb 'echo forgot b'
"$RUNBOOK" rehearse rb.yml > out 2> err
rc=$?
note=$(last_note)
if [ $rc != 3 ]; then
	not_ok $t "expected exit 3, found $rc"
elif ! grep -qx -- "--- baseline: preflight 'state' on local" err ||
     ! grep -qx -- "+++ after rollback: preflight 'state' on local" err ||
     ! grep -qx -- '-b=none' err || ! grep -qx -- '+b=2' err ||
     ! grep -qx -- ' stable line' err; then
	not_ok $t "expected a unified diff -b=none +b=2 with context"
elif grep -qx -- '-a=none' err; then
	not_ok $t "a came back but the diff says it did not"
elif ! grep -q 'baseline did not come back' err ||
     ! grep -q 'check it before running again' err; then
	not_ok $t "expected the message to say what failed and that rerunning is not safe"
elif ! grep -q '^status: "failed"$' <<<"$note" ||
     ! grep -q '^baseline: "differs"$' <<<"$note" ||
     ! grep -q '^baseline_diff: ".*+b=2' <<<"$note" ||
     ! grep -q '^```diff$' <<<"$note"; then
	not_ok $t "note lacks status failed / baseline differs / the diff"
else
	ok $t
fi

# 3. The apply fails: rolled back as usual, exit 1, no comparison.
t=apply-fails
fresh $t
write_rb
cat >> rb.yml <<'YAML'
  - name: break
    run: exit 7
    rollback: 'true'
YAML
"$RUNBOOK" rehearse rb.yml > out 2> err
rc=$?
note=$(last_note)
if [ $rc != 1 ]; then
	not_ok $t "expected exit 1, found $rc"
elif [ -e a ] || [ -e b ]; then
	not_ok $t "the failed apply was not rolled back"
elif grep -q 'running preflight again' err; then
	not_ok $t "compared a baseline after a failed apply"
elif ! grep -q '^status: "rolled-back"$' <<<"$note"; then
	not_ok $t "expected note status rolled-back"
else
	ok $t
fi

# 4. The rollback fails: exit 3, status rollback-failed, and
#    `runbook rollback` finishes it once the cause is fixed.
t=rollback-fails
fresh $t
write_rb 'test -e fixed && rm -f b'
"$RUNBOOK" rehearse rb.yml > out 2> err
rc=$?
note=$(last_note)
id=$("$RUNBOOK" log -n 1 --json | "$PY" -c 'import json,sys; print(json.loads(sys.stdin.readline())["change"])')
if [ $rc != 3 ]; then
	not_ok $t "expected exit 3, found $rc"
elif ! grep -q '^status: "rollback-failed"$' <<<"$note"; then
	not_ok $t "expected note status rollback-failed"
elif grep -q 'running preflight again' err; then
	not_ok $t "compared a baseline although the rollback failed"
elif ! { touch fixed && "$RUNBOOK" rollback "$id" > out 2> err; }; then
	not_ok $t "runbook rollback $id did not finish it"
elif [ -e a ] || [ -e b ]; then
	not_ok $t "files left after runbook rollback"
elif ! last_note | grep -q '^status: "rolled-back"$'; then
	not_ok $t "expected the final note rolled-back"
else
	ok $t
fi

# 5. A preflight expectation that no longer holds after the rollback is a
#    mismatch (exit 3) naming the preflight, not an apply failure.
t=preflight-expect
fresh $t
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
"$RUNBOOK" rehearse rb.yml > out 2> err
rc=$?
if [ $rc != 3 ]; then
	not_ok $t "expected exit 3, found $rc"
elif ! grep -q "baseline did not come back (diff above): preflight 'no marker yet' on local: expected exit 0, found exit 1" err ||
     ! grep -qx -- '-[[]result] ok, exit 0' err ||
     ! grep -qx -- '+[[]result] failed, exit 1' err; then
	not_ok $t "expected the failing preflight named and its result in the diff"
else
	ok $t
fi

# 6. Secrets printed by the preflight are compared and shown redacted.
t=secret-redacted
fresh $t
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
REH_TOKEN=s3cr3t-canary-4711 "$RUNBOOK" rehearse rb.yml --json > out 2> err
rc=$?
if [ $rc != 3 ]; then
	not_ok $t "expected exit 3, found $rc"
elif grep -rq 's3cr3t-canary-4711' out err .git; then
	not_ok $t "the secret leaked into output or the repository"
elif ! grep -qx -- '+tok=[[]secret:TOKEN]' err; then
	not_ok $t "expected the diff to show [secret:TOKEN]"
elif ! "$PY" -c '
import json, sys
ev = [json.loads(l) for l in open("out")]
r = [e for e in ev if e.get("event") == "rehearse"]
assert len(r) == 1 and r[0]["baseline"] == "differs", r
assert "+tok=[secret:TOKEN]" in r[0]["diff"], r[0]
assert ev[-1]["event"] == "done" and ev[-1]["exit"] == 3, ev[-1]
' 2>> err; then
	not_ok $t "expected a JSON rehearse event with the diff and a done event with exit 3"
else
	ok $t
fi

# 7. A difference past the first MiB of output is still found.
t=big-output
fresh $t
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
"$RUNBOOK" rehearse rb.yml > out 2> err
rc=$?
if [ $rc != 3 ]; then
	not_ok $t "expected exit 3 for a difference after 1 MiB, found $rc"
elif ! grep -q '^-[[]stdout: .* bytes in all, crc32c' err; then
	not_ok $t "expected the length/checksum line in the diff"
else
	ok $t
fi

# 8. The demo runbook rehearses cleanly (it is what the README shows).
t=demo
fresh $t
base=$tmp/$t/demo-base
"$RUNBOOK" rehearse "$SRCDIR/runbooks/demo.yml" --notes "$tmp/$t" \
	-e base_dir="$base" -e release=9.9.9 > out 2> err
rc=$?
if [ $rc != 0 ]; then
	not_ok $t "expected exit 0, found $rc"
elif [ -e "$base" ]; then
	not_ok $t "the demo left $base behind"
else
	ok $t
fi

cd "$tmp"
printf '%d passed, %d failed\n' "$passed" "$failed"
[ "$failed" = 0 ]
