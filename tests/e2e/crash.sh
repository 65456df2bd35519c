#!/usr/bin/env bash
# End-to-end checks of crash safety (PRODUCT.md §3 "A runner killed at any
# instant ... `runbook rollback CHANGE` finishes it", §4 notes, §5 codes): the
# runner is killed with SIGKILL before the first step, while a step runs,
# while a rollback runs and between the journal and the note commit; every
# time `runbook status` must show what is unfinished, `apply` must refuse with
# 4, and `runbook rollback` must finish the change with nothing lost and a
# final note that tells the truth. A torn last journal record is tolerated; a
# failing fsync stops the runner before the action it could not record.
#
#   RUNBOOK=build/runbook SRCDIR=. bash tests/e2e/crash.sh
#
# Env: RUNBOOK (required) the built binary; SRCDIR the repository root (unused
# beyond a sanity check); RUNBOOK_SANITIZED=1 allows 5x longer waits.
#
# Two ways to kill: an external `kill -9` of the runner, synchronised by a
# marker file the step creates and by the journal record of the step's
# process group (so the orphan it leaves can be found and must be stopped by
# the recovery); and the failpoints of src/failpoint.c
# (RUNBOOK_FAILPOINT=NAME:N: the runner raises SIGKILL on the Nth pass of
# NAME). Records written by an apply of steps only (src/record.c put()):
#   1 open, 2 note (running), then per step: step-begin, pid, step-end; then
#   for each rollback: rollback-begin, pid, rollback-end; then close, note.
# So kill-after-record:3 is "step 1 announced, not started", :6 "step 2
# announced, not started". kill-before-note:1/2 and kill-after-note:1/2 are
# the opening and the closing note commit.
#
# Every scenario runs in its own fresh git repository (the notes repository
# is the one holding the runbook) with its own HOME; steps and rollbacks
# append to events.log, so the exact order of what ran is checked.
# Output (tests/e2e/lib/harness.sh): one `ok N - NAME` or `not ok N - NAME: why`
# per check (followed by a few `#` lines of runbook's stderr on failure), then
# `N passed, M failed`.
# shellcheck source=lib/harness.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/harness.sh"
harness_init crash --operator 'Crash Tester <crash@example.com>' \
	--repo-per-check --home-per-check
[ -f "$SRCDIR/src/journal.c" ] ||
	setup_failed "SRCDIR=$SRCDIR does not look like the runbook sources"
# A runner a failpoint killed exits 137 (timeout(1) passes on 128+9): only
# 124 means it hung.
RB_SIGKILL_OK=1
# How long to wait for a marker or a journal record.
WAIT=$((10 * SLOW))

# slp N: a sleep duration unique to this run and scenario, so `pgrep -fx
# "sleep $(slp N)"` finds exactly the process a killed runner left behind.
slp() { printf '300.%d%02d' "$$" "$1"; }
# orphans N: pids of that sleep.
orphans() { pgrep -fx "sleep $(slp "$1" | sed 's/\./\\./')" 2>/dev/null; }

# sleepers a killed runner left behind and the recovery did not stop: only
# ours (their duration carries this script's pid), by pid
# shellcheck disable=SC2317 # called at exit (on_cleanup)
kill_orphans() {
	local p
	for p in $(pgrep -fx "sleep 300\\.$$[0-9]{2}" 2>/dev/null); do
		kill -KILL "$p" 2>/dev/null
	done
}
on_cleanup kill_orphans

# ------------------------------------------------------------------ helpers

# scenario NAME: a check in a fresh git repository $D with its own HOME
# (harness_init's options), made the working directory. JDIR is where its
# journals live; ID is the change found there (find_id).
scenario() {
	begin "$1"
	ID=
	JDIR=$D/.git/runbook/journal
}

# hdr NAME: the required top-level keys of a runbook.
hdr() {
	printf 'version: 1\nname: %s\nowner: Test Team <test@example.com>\n' "$1"
	printf 'reason: e2e check of crash recovery\nexpected: the check passes\n'
}

# step NAME: a step that logs "do NAME" and whose rollback logs "undo NAME".
step() {
	printf '  - name: %s\n    run: echo "do %s" >> events.log\n' "$1" "$1"
	printf '    rollback: echo "undo %s" >> events.log\n' "$1"
}

cat >"$tmp/journal.py" <<'EOF'
# journal.py list FILE: one line per valid record of a runbook journal:
#   open | note:STATUS | step-begin:PHASE:INDEX | pid:PHASE:INDEX:rb=BOOL |
#   step-end:PHASE:INDEX:RESULT | rollback-begin:PHASE:INDEX |
#   rollback-end:PHASE:INDEX:RESULT | close:STATUS
# then "torn@OFFSET" if the file does not end on a record boundary.
# journal.py tear FILE: cuts the last record in half; prints where it began.
# journal.py flip FILE N: changes one payload byte of record N (1-based).
# Record: "RBJ1" | u32 LE length | u32 LE CRC-32C | JSON | "\n" (src/journal.h)
import json, struct, sys

T = []
for i in range(256):
    c = i
    for _ in range(8):
        c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
    T.append(c)

def crc32c(b):
    c = 0xFFFFFFFF
    for x in b:
        c = T[(c ^ x) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF

assert crc32c(b"123456789") == 0xE3069283

def records(data):
    off, out = 0, []
    while off < len(data):
        if len(data) - off < 12 or data[off:off + 4] != b"RBJ1":
            return out, off
        ln, crc = struct.unpack("<II", data[off + 4:off + 12])
        end = off + 12 + ln
        if end + 1 > len(data) or data[end:end + 1] != b"\n" or crc32c(data[off + 12:end]) != crc:
            return out, off
        out.append((off, json.loads(data[off + 12:end].decode())))
        off = end + 1
    return out, off

mode, path = sys.argv[1], sys.argv[2]
data = bytearray(open(path, "rb").read())
recs, off = records(bytes(data))
if mode == "list":
    for _, r in recs:
        t = r.get("t")
        key = "%s:%s" % (r.get("phase"), r.get("index"))
        if t == "open":
            print("open")
        elif t in ("note", "close"):
            print("%s:%s" % (t, r.get("status")))
        elif t == "pid":
            print("pid:%s:rb=%s" % (key, "true" if r.get("rollback") else "false"))
        elif t in ("step-end", "rollback-end"):
            print("%s:%s:%s" % (t, key, r.get("result")))
        else:
            print("%s:%s" % (t, key))
    if off != len(data):
        print("torn@%d" % off)
elif mode == "tear":
    start, r = recs[-1]
    size = len(data) - start
    open(path, "wb").write(bytes(data[:start + size // 2]))
    print(start)
elif mode == "flip":
    start, _ = recs[int(sys.argv[3]) - 1]
    data[start + 14] ^= 0x20
    open(path, "wb").write(bytes(data))
EOF

cat >"$tmp/note.py" <<'EOF'
# note.py FILE: line 1 the front matter's status; line 2, for each recorded
# step, PHASE:NAME=RESULT[+interrupted][/ROLLBACK_RESULT], space separated.
import sys
lines = open(sys.argv[1], encoding="utf-8").read().split("\n")
if not lines or lines[0] != "---" or "---" not in lines[1:]:
    print("no front matter")
    sys.exit(1)
fm = lines[1:lines.index("---", 1)]
def unq(v):
    v = v.strip()
    return v[1:-1] if len(v) >= 2 and v[0] == v[-1] == '"' else v
status, steps, cur, in_steps = None, [], None, False
for l in fm:
    if l.startswith("status:"):
        status = unq(l[7:])
    if l == "steps:":
        in_steps = True
        continue
    if in_steps:
        if l.startswith("  - "):
            cur = {}
            steps.append(cur)
            l = "    " + l[4:]
        if l.startswith("    ") and not l.startswith("     "):
            k, _, v = l[4:].partition(":")
            cur[k] = unq(v)
        elif not l.startswith(" "):
            in_steps = False
out = []
for s in steps:
    d = "%s:%s=%s" % (s.get("phase"), s.get("name"), s.get("result"))
    if s.get("interrupted") == "true":
        d += "+interrupted"
    if "rollback_result" in s:
        d += "/" + s["rollback_result"]
    out.append(d)
print(status)
print(" ".join(out))
EOF

# jrecs: the records of the live journal of $ID, one per line (journal.py).
jrecs() { "$PY" "$tmp/journal.py" list "$JDIR/$ID.log" 2>&1; }

# wait_rec LINE SECONDS: until the live journal of $ID has that record.
wait_rec() {
	local i n=$(($2 * 20))
	for ((i = 0; i < n; i++)); do
		[ -n "$ID" ] && jrecs | grep -qxF -- "$1" && return 0
		[ -z "$ID" ] && find_id quiet
		sleep 0.05
	done
	return 1
}

# find_id [quiet]: $ID from the one live journal.
find_id() {
	local f n
	n=$(find "$JDIR" -maxdepth 1 -name '*.log' 2>/dev/null | wc -l)
	if [ "$n" != 1 ]; then
		[ -z "${1:-}" ] && bad "expected one live journal in $JDIR, found $n"
		return 1
	fi
	f=$(find "$JDIR" -maxdepth 1 -name '*.log')
	f=${f##*/}
	ID=${f%.log}
}

# last_rec WANT: the last record of the live journal (where the kill hit).
last_rec() {
	local got
	got=$(jrecs | tail -n 1)
	check [ "$got" = "$1" ] || bad "expected the journal to end with '$1', found '$got' (records: $(jrecs | paste -sd' ' -))"
}

note_path() { printf 'changes/%s/%s/%s.md' "${ID:0:4}" "${ID:4:2}" "$ID"; }

# expect_note TAG STATUS 'STEPS': the note of $ID on runbook-notes (note.py).
expect_note() {
	local got
	if ! git show "runbook-notes:$(note_path)" >"$D/$1.md" 2>/dev/null; then
		bad "$1: expected a note $(note_path) on branch runbook-notes, found none"
		return
	fi
	got=$("$PY" "$tmp/note.py" "$D/$1.md" 2>&1)
	check [ "$(sed -n 1p <<<"$got")" = "$2" ] ||
		bad "$1: expected note status '$2', found '$(sed -n 1p <<<"$got")'"
	check [ "$(sed -n 2p <<<"$got")" = "$3" ] ||
		bad "$1: expected note steps '$3', found '$(sed -n 2p <<<"$got")'"
}

# expect_subjects 'a|b': the commit subjects of runbook-notes, newest first.
expect_subjects() {
	local got
	got=$(git log --format=%s runbook-notes 2>/dev/null | paste -sd'|' -)
	check [ "$got" = "$1" ] || bad "expected notes commits '$1', found '$got'"
}

# expect_status TAG NAME STATE APPLIED RUNNING: `runbook status` (text and
# --json) shows $ID as STATE with exactly these applied and running steps
# ("" for none) and the command that finishes it (src/main.c cmd_status).
expect_status() {
	local tag=$1 name=$2 state=$3 applied=$4 running=$5 msg
	rb "$tag" status
	expect_rc 0 "status"
	check grep -qxF "$ID  $name on local: $state" "$tag.out" ||
		bad "$tag: expected the line '$ID  $name on local: $state', found '$(head -n 1 "$tag.out")'"
	if [ "$applied" = '*' ]; then
		:
	elif [ -n "$applied" ]; then
		check grep -qxF "  applied, not undone: $applied" "$tag.out" ||
			bad "$tag: expected 'applied, not undone: $applied', found '$(grep applied "$tag.out")'"
	else
		hasnt "$tag.out" '^  applied' "applied steps"
	fi
	if [ -n "$running" ]; then
		check grep -qxF "  was running when it stopped (may be half-applied): $running" "$tag.out" ||
			bad "$tag: expected 'was running when it stopped (may be half-applied): $running', found '$(grep running "$tag.out")'"
	else
		hasnt "$tag.out" '^  was running' "a running step"
	fi
	check grep -qxF "  finish it with: runbook rollback $ID" "$tag.out" ||
		bad "$tag: expected 'finish it with: runbook rollback $ID'"
	hasnt "$tag.out" 'lock held' "a held lock (the runner is dead)"
	rb "$tag-json" status --json
	expect_rc 0 "status --json"
	msg=$("$PY" - "$tag-json.out" "$ID" "$state" "$applied" "$running" <<'EOF'
import json, sys
path, cid, state, applied, running = sys.argv[1:]
evs = [json.loads(l) for l in open(path) if l.strip()]
mine = [e for e in evs if e.get("change") == cid]
if len(mine) != 1:
    print("expected one status event for %s, found %d" % (cid, len(mine)))
else:
    e = mine[0]
    for k, want in (("event", "status"), ("status", state), ("applied", applied), ("running", running)):
        if want != "*" and e.get(k) != want:
            print("%s: expected %r, found %r" % (k, want, e.get(k)))
EOF
	) || msg="status --json did not parse: $msg"
	check [ -z "$msg" ] || bad "$tag-json: $(paste -sd';' - <<<"$msg")"
}

# expect_refused TAG: apply on the target refuses with 4, names the change
# and the command that finishes it, and runs nothing.
expect_refused() {
	cp events.log "$D/events.before" 2>/dev/null || : >"$D/events.before"
	rb "$1" apply f.yml
	expect_rc 4 "apply on a target with an unfinished change"
	check grep -qF "unfinished change $ID" "$1.err" || bad "$1: expected the refusal to name change $ID"
	check grep -qF "runbook rollback $ID" "$1.err" || bad "$1: expected the refusal to name 'runbook rollback $ID'"
	cmp -s "$D/events.before" <(cat events.log 2>/dev/null) || bad "$1: the refused apply ran something"
}

# expect_finished: the journal of $ID moved to done/, status shows nothing
# unfinished, and a new apply of f.yml works (events.log: WANT).
expect_finished() {
	check [ ! -e "$JDIR/$ID.log" ] || bad "expected the journal of $ID to leave journal/"
	check [ -e "$JDIR/done/$ID.log" ] || bad "expected the journal of $ID in journal/done/"
	rb status-after status
	expect_rc 0 "status after recovery"
	has status-after.out '^no unfinished changes' "no unfinished changes"
	mv events.log "$D/events.crash" 2>/dev/null
	rb reapply apply f.yml
	expect_rc 0 "a new apply after recovery"
	expect_lines events.log "$1" "new apply"
}

# ------------------------------------------------------------------ 1. before the first step

# Killed while preflight runs: nothing was changed. The recovery rollback
# runs no rollback command and closes the change as rolled-back (that is what
# cmd_rollback records when nothing is left: status rolled-back, the
# preflight step shown as interrupted).
scenario kill-before-first-step
{ hdr crash-pre; cat <<EOF
preflight:
  - name: check
    run: |
      echo "preflight" >> events.log
      if [ ! -e pre-started ]; then touch pre-started; sleep $(slp 1); fi
steps:
EOF
step one; step two; } >f.yml
start_bg apply apply f.yml
wait_files "$WAIT" pre-started || bad "the preflight never started"
wait_rec 'pid:preflight:0:rb=false' "$WAIT" || bad "no pid record of the preflight in the journal"
pre_orphans=$(orphans 1)
check [ -n "$pre_orphans" ] || bad "the preflight's sleep is not running before the kill"
kill_bg
expect_rc 137 "the killed apply"
find_id
expect_lines events.log 'preflight' "after the kill"
last_rec 'pid:preflight:0:rb=false'
expect_status status crash-pre interrupted '' ''
expect_refused refused
rb rollback rollback "$ID"
expect_rc 0 "runbook rollback"
has rollback.err 'nothing left to roll back' "that nothing was left to roll back"
expect_lines events.log 'preflight' "after the rollback (no rollback may run)"
expect_note note rolled-back 'preflight:check=not-run+interrupted'
expect_subjects 'crash-pre: rolled-back on local|crash-pre: running on local'
expect_finished 'preflight|do one|do two'
end

# The preflight's process group is in the journal (a pid record), just as a
# step's; recovery must stop it like an orphaned step (a hung read-only
# check would otherwise run forever with nobody to enforce its timeout).
again kill-before-first-step-orphan-stopped
check [ -n "$pre_orphans" ] || bad "no orphaned preflight process was found to check"
# shellcheck disable=SC2086
[ -n "$pre_orphans" ] && expect_dead 2 "the preflight's orphaned 'sleep $(slp 1)' (pid $pre_orphans)" $pre_orphans
end

# ------------------------------------------------------------------ 2. step 1 announced, not done

# kill-after-record:3: "step-begin one" is durable, the step did not start.
# The runner cannot know that, so the rollback of one must run (PRODUCT §3).
scenario kill-announcing-first-step
{ hdr crash-first; echo 'steps:'; step one; step two; } >f.yml
RUNBOOK_FAILPOINT=kill-after-record:3 rb apply apply f.yml
expect_rc 137 "the killed apply"
find_id
last_rec 'step-begin:step:0'
check [ ! -e events.log ] || bad "expected no step to run, found events.log '$(paste -sd'|' events.log)'"
expect_status status crash-first interrupted '' "'one' on local"
expect_refused refused
rb rollback rollback "$ID"
expect_rc 0 "runbook rollback"
expect_lines events.log 'undo one' "after the rollback"
expect_note note rolled-back 'step:one=not-run+interrupted/rolled-back'
expect_subjects 'crash-first: rolled-back on local|crash-first: running on local'
expect_finished 'do one|do two'
end

# ------------------------------------------------------------------ 3. mid-step

# External kill -9 while step two sleeps: two may be half-applied, so the
# recovery rolls back two then one, and stops two's orphaned process group.
scenario kill-mid-step
{ hdr crash-mid; echo 'steps:'; step one; cat <<EOF
  - name: two
    run: |
      echo "do two" >> events.log
      if [ ! -e started-two ]; then touch started-two; sleep $(slp 3); fi
    rollback: echo "undo two" >> events.log
EOF
step three; } >f.yml
start_bg apply apply f.yml
wait_files "$WAIT" started-two || bad "step two never started"
wait_rec 'pid:step:1:rb=false' "$WAIT" || bad "no pid record of step two in the journal"
mid_orphans=$(orphans 3)
check [ -n "$mid_orphans" ] || bad "step two's sleep is not running before the kill"
kill_bg
expect_rc 137 "the killed apply"
find_id
expect_lines events.log 'do one|do two' "after the kill"
last_rec 'pid:step:1:rb=false'
# shellcheck disable=SC2086
[ -n "$mid_orphans" ] && ! alive $mid_orphans && bad "step two's sleep died with the runner (nothing left to check)"
expect_status status crash-mid interrupted "'one' on local" "'two' on local"
expect_refused refused
rb rollback rollback "$ID"
expect_rc 0 "runbook rollback"
expect_lines events.log 'do one|do two|undo two|undo one' "after the rollback"
has rollback.err "stopped process group" "the orphaned process group it stopped"
# shellcheck disable=SC2086
[ -n "$mid_orphans" ] && expect_dead 2 "step two's orphaned 'sleep $(slp 3)'" $mid_orphans
expect_note note rolled-back 'step:one=ok/rolled-back step:two=not-run+interrupted/rolled-back'
check grep -q '| local | step | two | interrupted |' note.md 2>/dev/null ||
	bad "expected the note's table to show step two as interrupted"
expect_subjects 'crash-mid: rolled-back on local|crash-mid: running on local'
expect_finished 'do one|do two|do three'
end

# ------------------------------------------------------------------ 4. mid-rollback

# Step three fails, the automatic rollback undoes three, then is killed while
# undoing two. Semantics of rollback_replay (src/apply.c, change_pending in
# src/change.c): a step whose rollback ended `rolled-back` in the journal is
# never undone again; one whose rollback began but did not end is undone
# again from the start (it may have half-run). So the recovery runs "undo
# two" a second time, then "undo one", and never "undo three" again.
scenario kill-mid-rollback
{ hdr crash-rb; echo 'steps:'; step one; cat <<EOF
  - name: two
    run: echo "do two" >> events.log
    rollback: |
      echo "undo two" >> events.log
      if [ ! -e rb-two ]; then touch rb-two; sleep $(slp 4); fi
  - name: three
    run: |
      echo "do three" >> events.log
      test -e rb-two
    rollback: echo "undo three" >> events.log
EOF
} >f.yml
start_bg apply apply f.yml
wait_files "$WAIT" rb-two || bad "the rollback of two never started"
wait_rec 'pid:step:1:rb=true' "$WAIT" || bad "no pid record of two's rollback in the journal"
rb_orphans=$(orphans 4)
check [ -n "$rb_orphans" ] || bad "the rollback's sleep is not running before the kill"
kill_bg
expect_rc 137 "the killed apply"
find_id
expect_lines events.log 'do one|do two|do three|undo three|undo two' "after the kill"
last_rec 'pid:step:1:rb=true'
expect_status status crash-rb interrupted "'one' on local, 'two' on local" ''
expect_refused refused
rb rollback rollback "$ID"
expect_rc 0 "runbook rollback"
expect_lines events.log 'do one|do two|do three|undo three|undo two|undo two|undo one' "after the rollback"
# shellcheck disable=SC2086
[ -n "$rb_orphans" ] && expect_dead 2 "the rollback's orphaned 'sleep $(slp 4)'" $rb_orphans
expect_note note rolled-back 'step:one=ok/rolled-back step:two=ok/rolled-back step:three=failed/rolled-back'
expect_subjects 'crash-rb: rolled-back on local|crash-rb: running on local'
expect_finished 'do one|do two|do three'
end

# ------------------------------------------------------------------ 5. between journal and note

# kill-before-note:2: the apply succeeded and its close record is durable,
# the final note is not committed. The change is not unfinished: `runbook
# status` commits the pending note (status applied) and nothing is rolled back.
scenario kill-before-final-note
{ hdr crash-note; echo 'steps:'; step one; step two; } >f.yml
RUNBOOK_FAILPOINT=kill-before-note:2 rb apply apply f.yml
expect_rc 137 "the killed apply"
find_id
last_rec 'close:applied'
expect_lines events.log 'do one|do two' "after the kill"
expect_note before running ''
rb status status
expect_rc 0 "status"
has status.err "committed the pending note of change $ID \\(applied\\)" "the pending note it committed"
has status.out '^no unfinished changes' "no unfinished changes"
expect_lines events.log 'do one|do two' "after status (nothing may be rolled back)"
expect_note note applied 'step:one=ok/not-run step:two=ok/not-run'
expect_subjects 'crash-note: applied on local|crash-note: running on local'
expect_finished 'do one|do two'
end

# The same, settled by the next apply instead of status.
scenario kill-before-final-note-apply-settles
{ hdr crash-note2; echo 'steps:'; step one; step two; } >f.yml
RUNBOOK_FAILPOINT=kill-before-note:2 rb apply apply f.yml
expect_rc 137 "the killed apply"
find_id
rb next apply f.yml
expect_rc 0 "the next apply"
has next.err "committed the pending note of change $ID \\(applied\\)" "the pending note it committed"
expect_lines events.log 'do one|do two|do one|do two'
expect_note note applied 'step:one=ok/not-run step:two=ok/not-run'
if [ -e "$JDIR/$ID.log" ] || [ ! -e "$JDIR/done/$ID.log" ]; then
	bad "expected the journal of $ID in journal/done/"
fi
end

# kill-before-note:2 after a failed apply that rolled itself back: the
# pending note says rolled-back.
scenario kill-before-final-note-after-rollback
{ hdr crash-note3; echo 'steps:'; step one; cat <<'EOF'
  - name: two
    run: |
      echo "do two" >> events.log
      test -e fixed
    rollback: echo "undo two" >> events.log
EOF
} >f.yml
RUNBOOK_FAILPOINT=kill-before-note:2 rb apply apply f.yml
expect_rc 137 "the killed apply"
find_id
last_rec 'close:rolled-back'
expect_lines events.log 'do one|do two|undo two|undo one' "after the kill"
rb status status
expect_rc 0 "status"
has status.err "committed the pending note of change $ID \\(rolled-back\\)" "the pending note it committed"
has status.out '^no unfinished changes' "no unfinished changes"
expect_lines events.log 'do one|do two|undo two|undo one' "after status (no rollback may run again)"
expect_note note rolled-back 'step:one=ok/rolled-back step:two=failed/rolled-back'
expect_subjects 'crash-note3: rolled-back on local|crash-note3: running on local'
touch fixed
expect_finished 'do one|do two'
end

# kill-before-note:1: the journal has the open record, no note exists yet.
# The change is unfinished; rollback (which finds it by its journal) closes
# it and commits the first and final note.
scenario kill-before-opening-note
{ hdr crash-open; echo 'steps:'; step one; } >f.yml
RUNBOOK_FAILPOINT=kill-before-note:1 rb apply apply f.yml
expect_rc 137 "the killed apply"
find_id
last_rec 'open'
git rev-parse -q --verify refs/heads/runbook-notes >/dev/null &&
	bad "expected no notes branch before the first note, found one"
check [ ! -e events.log ] || bad "expected no step to run, found events.log"
expect_status status crash-open interrupted '' ''
expect_refused refused
rb rollback rollback "${ID:0:22}"
expect_rc 0 "runbook rollback (by a prefix of the id)"
check [ ! -e events.log ] || bad "expected no rollback to run, found events.log '$(paste -sd'|' events.log)'"
expect_note note rolled-back ''
expect_subjects 'crash-open: rolled-back on local'
expect_finished 'do one'
end

# kill-after-note:1: the opening note is committed, its journal record is
# not. Unfinished; rollback finishes it.
scenario kill-after-opening-note
{ hdr crash-open2; echo 'steps:'; step one; } >f.yml
RUNBOOK_FAILPOINT=kill-after-note:1 rb apply apply f.yml
expect_rc 137 "the killed apply"
find_id
last_rec 'open'
expect_note before running ''
expect_status status crash-open2 interrupted '' ''
expect_refused refused
rb rollback rollback "$ID"
expect_rc 0 "runbook rollback"
check [ ! -e events.log ] || bad "expected no rollback to run, found events.log"
expect_note note rolled-back ''
expect_subjects 'crash-open2: rolled-back on local|crash-open2: running on local'
expect_finished 'do one'
end

# ------------------------------------------------------------------ 6. after the note, before the journal knows

# kill-after-note:2: the final note (applied) is committed, the journal has
# no record of it and is still live. `runbook status` settles it: the note is
# unchanged, the journal moves to done/, nothing is unfinished. What the code
# does today: settle_journals commits the same note once more (an extra
# commit with an identical tree); that is allowed here, but the extra commit
# must not change the note.
scenario kill-after-final-note
{ hdr crash-after; echo 'steps:'; step one; step two; } >f.yml
RUNBOOK_FAILPOINT=kill-after-note:2 rb apply apply f.yml
expect_rc 137 "the killed apply"
find_id
last_rec 'close:applied'
expect_note before applied 'step:one=ok/not-run step:two=ok/not-run'
tip_before=$(git rev-parse -q --verify runbook-notes)
rb status status
expect_rc 0 "status"
has status.out '^no unfinished changes' "no unfinished changes"
expect_lines events.log 'do one|do two' "after status (nothing may be rolled back)"
expect_note note applied 'step:one=ok/not-run step:two=ok/not-run'
cmp -s before.md note.md || bad "expected status to leave the committed note unchanged"
subjects=$(git log --format=%s runbook-notes | paste -sd'|' -)
case $subjects in
'crash-after: applied on local|crash-after: running on local') ;;
'crash-after: applied on local|crash-after: applied on local|crash-after: running on local')
	check [ "$(git rev-parse "runbook-notes^{tree}")" = "$(git rev-parse "$tip_before^{tree}")" ] ||
		bad "expected the repeated note commit to change nothing"
	diag 'kill-after-final-note: status committed the final note a second time (same tree)'
	;;
*) bad "expected notes commits 'applied|running' (or one repeat of applied), found '$subjects'" ;;
esac
rb log log
expect_rc 0 "log"
check [ "$(grep -c "^$ID " log.out)" = 1 ] || bad "expected runbook log to list $ID once"
expect_finished 'do one|do two'
end

# ------------------------------------------------------------------ 7. torn last record

# After a kill, the last record is cut in half (a crash while writing it).
# The torn record is treated as not written: here it was "step-begin two",
# so two never started and only one is undone. status repairs the file (cuts
# the torn tail) and still works.
scenario torn-last-record
{ hdr crash-torn; echo 'steps:'; step one; step two; } >f.yml
RUNBOOK_FAILPOINT=kill-after-record:6 rb apply apply f.yml
expect_rc 137 "the killed apply"
find_id
last_rec 'step-begin:step:1'
cut_at=$("$PY" "$tmp/journal.py" tear "$JDIR/$ID.log" 2>&1)
last_rec "torn@$cut_at"
expect_status status crash-torn interrupted "'one' on local" ''
check [ "$(stat -c %s "$JDIR/$ID.log" 2>/dev/null)" = "$cut_at" ] ||
	bad "expected status to cut the journal to $cut_at bytes, found $(stat -c %s "$JDIR/$ID.log" 2>/dev/null)"
expect_refused refused
rb rollback rollback "$ID"
expect_rc 0 "runbook rollback"
expect_lines events.log 'do one|undo one' "after the rollback"
expect_note note rolled-back 'step:one=ok/rolled-back'
expect_finished 'do one|do two'
end

# Garbage after the last record (a header whose length runs past the end),
# straight to rollback: it warns about the torn record and cuts it off; the
# running step two (its step-begin is durable) and one are undone.
scenario torn-garbage-tail
{ hdr crash-garbage; echo 'steps:'; step one; step two; } >f.yml
RUNBOOK_FAILPOINT=kill-after-record:6 rb apply apply f.yml
expect_rc 137 "the killed apply"
find_id
printf 'RBJ1\377\377\000\000\001\002' >>"$JDIR/$ID.log"
last_rec "torn@$(($(stat -c %s "$JDIR/$ID.log") - 10))"
rb rollback rollback "$ID"
expect_rc 0 "runbook rollback"
has rollback.err 'ended in an incomplete record' "the torn record"
expect_lines events.log 'do one|undo two|undo one' "after the rollback"
got=$("$PY" "$tmp/journal.py" list "$JDIR/done/$ID.log" 2>&1 | grep torn)
check [ -z "$got" ] || bad "expected the finished journal without the torn tail, found $got"
expect_note note rolled-back 'step:one=ok/rolled-back step:two=not-run+interrupted/rolled-back'
expect_finished 'do one|do two'
end

# A bad record that is not the last is corruption, not a torn tail: nothing
# may guess. status and rollback fail with 3 naming the file, and apply on
# that target must not run (the message itself says "do not run apply on
# this target"), nor may status claim there is nothing unfinished.
scenario corrupt-record-refused
{ hdr crash-corrupt; echo 'steps:'; step one; step two; } >f.yml
RUNBOOK_FAILPOINT=kill-after-record:6 rb apply apply f.yml
expect_rc 137 "the killed apply"
find_id
"$PY" "$tmp/journal.py" flip "$JDIR/$ID.log" 3
rb status status
expect_rc 3 "status on a corrupt journal"
has status.err "journal '$JDIR/$ID.log' is corrupt" "the corrupt journal"
hasnt status.out '^no unfinished changes' "'no unfinished changes'"
rb rollback rollback "$ID"
expect_rc 3 "rollback of a corrupt journal"
expect_lines events.log 'do one' "after the refused rollback"
rb refused apply f.yml
check [ "$RC" != 0 ] || bad "expected apply to refuse while the target has a corrupt unfinished change, found exit 0"
expect_lines events.log 'do one' "after apply on a target with a corrupt unfinished change"
end

# ------------------------------------------------------------------ 8. fsync fails

# journal-fsync:4: the fsync of "step-begin two" fails (EIO): the synced
# records are open, the note record of the opening commit, step-begin one and
# step-begin two (ends and pids are flushed with the next begin). The journal is
# broken for good, so step two must not run; the runner stops and rolls back
# what it did (one), and apply exits 1 naming the failed flush (cmd_apply:
# the hook failure fails the change; rollback_all succeeds -> RB_ERR_FAILED).
scenario journal-fsync-fails
{ hdr crash-fsync; echo 'steps:'; step one; step two; } >f.yml
RUNBOOK_FAILPOINT=journal-fsync:4 rb apply apply f.yml
expect_rc 1 "apply whose journal fsync failed"
has apply.err "cannot flush journal .*Input/output error" "the failed flush"
expect_lines events.log 'do one|undo one'
f=$(find "$JDIR/done" -maxdepth 1 -name '*.broken' 2>/dev/null)
f=${f##*/}
ID=${f%.broken}
check [ -n "$ID" ] || bad "expected the journal set aside in $JDIR/done as ID.broken"
end

# What that apply leaves: the journal cannot be trusted after a failed flush,
# so the runner keeps following what happens in memory (the rollback of one
# ran), commits the final note from there and sets the journal aside as
# done/ID.broken, where no reader looks. The note is the record: it says
# rolled-back, one rolled back, two never begun; nothing is left unfinished,
# a rollback finds nothing to do, and the next apply runs.
again journal-fsync-recovery
check [ -n "$ID" ] || bad "no change id from the fsync scenario"
expect_note note rolled-back 'step:one=ok/rolled-back'
check [ -e "$JDIR/done/$ID.broken" ] || bad "expected the journal set aside as done/$ID.broken"
check [ ! -e "$JDIR/$ID.log" ] || bad "expected no live journal of $ID"
check [ ! -e "$JDIR/done/$ID.log" ] || bad "expected no done/$ID.log (it would be read as the record)"
rb rollback rollback "$ID"
expect_rc 0 "runbook rollback of a finished change"
has rollback.err "nothing left to roll back" "that nothing is left"
expect_lines events.log 'do one|undo one' "after the rollback (nothing may run again)"
rb status-after status
expect_rc 0 "status"
has status-after.out '^no unfinished changes' "no unfinished changes"
mv events.log "$D/events.crash" 2>/dev/null
rb reapply apply f.yml
expect_rc 0 "a new apply"
expect_lines events.log 'do one|do two' "new apply"
end

finish
