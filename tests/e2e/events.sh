#!/usr/bin/env bash
# One event stream: the journal, the note's front matter and the --json
# stream of a run list the same outcomes in the same order, for every
# outcome a step or a rollback can have: ok, failed, timeout, skipped,
# retried (each failed attempt), rolled back, rollback failed, rollback
# that cannot be rendered, `rollback: none`, and interrupted.
#
#   RUNBOOK=build/runbook SRCDIR=. bash tests/e2e/events.sh
#
# Each run writes its change into its own bare notes repository; the
# journal is read with its framing (RBJ1 | len | crc | JSON | \n), the
# note with PyYAML from `git show runbook-notes:...`.
# shellcheck source=lib/harness.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/harness.sh"
harness_init events
need_tools git

hdr() {
	printf 'version: 1\nname: %s\nowner: Test Team <test@example.com>\n' "$1"
	printf 'reason: e2e check of the event stream\nexpected: the check passes\n'
}

cat >"$tmp/streams.py" <<'EOF'
# streams.py NOTES_GIT JSON_FILE WANT: compares the outcomes of one change
# as the journal, the note and the JSON stream list them. WANT: the
# results that must appear (kind:result, comma separated).
import glob, json, struct, subprocess, sys, zlib
import yaml

notes, json_path, want = sys.argv[1], sys.argv[2], sys.argv[3]
problems = []

events = [json.loads(l) for l in open(json_path, encoding="utf-8") if l.strip()]
ids = {e["change"] for e in events}
if len(ids) != 1:
    sys.exit("expected one change id in the JSON stream, found %s" % sorted(ids))
cid = ids.pop()

def from_json():
    out = []
    for e in events:
        kind = e.get("event")
        if kind == "step":
            out.append(("step", e["host"], e["phase"], e["name"], e["result"]))
        elif kind == "attempt":
            out.append(("attempt", e["host"], e["phase"], e["name"], e["result"]))
        elif kind == "rollback":
            out.append(("rollback", e["host"], "step", e["name"], e["result"]))
    return out

def from_journal():
    paths = glob.glob("%s/runbook/journal/%s.log" % (notes, cid)) + \
            glob.glob("%s/runbook/journal/done/%s.log" % (notes, cid))
    if len(paths) != 1:
        sys.exit("expected one journal of %s, found %s" % (cid, paths))
    data = open(paths[0], "rb").read()
    out, off = [], 0
    while off < len(data):
        if data[off:off + 4] != b"RBJ1":
            sys.exit("journal: no record header at byte %d" % off)
        n, _crc = struct.unpack("<II", data[off + 4:off + 12])
        rec = json.loads(data[off + 12:off + 12 + n].decode("utf-8"))
        off += 12 + n + 1
        t = rec.get("t")
        if t == "step-end":
            out.append(("step", rec["host"], rec["phase"], rec["name"], rec["result"]))
        elif t == "attempt":
            out.append(("attempt", rec["host"], rec["phase"], rec["name"], rec["result"]))
        elif t == "rollback-end":
            res = "none" if rec.get("none") else rec["result"]
            out.append(("rollback", rec["host"], rec["phase"], rec["name"], res))
    return out

def from_note():
    path = "changes/%s/%s/%s.md" % (cid[0:4], cid[4:6], cid)
    text = subprocess.run(["git", "--git-dir", notes, "show",
                           "runbook-notes:" + path], check=True,
                          capture_output=True, text=True).stdout
    front = yaml.safe_load(text.split("\n---\n")[0][4:])
    return [(e["event"], e["host"], e["phase"], e["name"], e["result"])
            for e in front.get("events") or []]

j, n, s = from_journal(), from_note(), from_json()
if not j:
    problems.append("the journal lists no outcome")
if j != n:
    problems.append("journal %s != note %s" % (j, n))
if j != s:
    problems.append("journal %s != json %s" % (j, s))
have = {"%s:%s" % (k, r) for k, _h, _p, _n, r in j}
for w in filter(None, want.split(",")):
    if w not in have:
        problems.append("expected an outcome %s, found %s" % (w, sorted(have)))
for p in problems:
    print(p)
sys.exit(1 if problems else 0)
EOF

# streams NAME WANT: the three streams of run NAME agree and hold WANT.
streams() {
	local msg rc
	msg=$("$PY" "$tmp/streams.py" notes.git "$1.out" "$2" 2>&1)
	rc=$?
	check [ "$rc" = 0 ] ||
		bad "$1: $(printf '%s' "$msg" | head -n 5 | paste -sd';' -)"
}

# ------------------------------------------------------------------ runs

begin ok-skipped-retried-failed-none
{ hdr ev-a; cat <<'EOF'
preflight:
  - name: look
    run: echo ready
steps:
  - name: first
    run: echo 1 >> log
    rollback: echo undo-1 >> log
  - name: nothing to undo
    run: echo 2 >> log
    rollback: none
  - name: flaky
    run: 'n=$(cat count 2>/dev/null || echo 0); echo $((n + 1)) > count; [ "$n" -ge 2 ]'
    retries: 3
    retry_delay: 10ms
    rollback: echo undo-flaky >> log
  - name: done already
    skip_if: 'true'
    run: echo never >> log
    rollback: echo never-undo >> log
verify:
  - name: check
    run: echo nope
    expect: { stdout: 'never' }
EOF
} >a.yml
rb a apply a.yml --notes notes.git --json
expect_rc 1
streams a "step:ok,step:skipped,attempt:failed,step:failed,rollback:rolled-back,rollback:none"
# two failed attempts, then the third succeeds
n=$(grep -c '"event":"attempt"' a.out)
check test "$n" = 2 || bad "expected 2 attempt events for 'flaky', found $n"
end

begin timeout-and-rollback-failed
{ hdr ev-b; cat <<'EOF'
steps:
  - name: sticky
    run: echo 1 >> log
    rollback: exit 3
  - name: slow
    run: sleep 30
    timeout: 1s
    rollback: echo undo-slow >> log
EOF
} >b.yml
rb b apply b.yml --notes notes.git --json
expect_rc 3
streams b "step:ok,step:timeout,rollback:rolled-back,rollback:rollback-failed"
end

begin rollback-unrenderable
{ hdr ev-c; cat <<'EOF'
steps:
  - name: makes an id
    run: echo no id here; exit 1
    capture: { made: '^id=(\S+)$' }
    rollback: remove-id {{ made }}
EOF
} >c.yml
rb c apply c.yml --notes notes.git --json
expect_rc 3
streams c "step:failed,rollback:rollback-failed"
has c.err "made" "the rollback's missing value named in the output"
end

begin interrupted
{ hdr ev-d; cat <<'EOF'
steps:
  - name: quick
    run: echo 1 >> log
    rollback: echo undo-quick >> log
  - name: long
    run: echo started > started; sleep 30
    rollback: echo undo-long >> log
EOF
} >d.yml
"$RUNBOOK" apply d.yml --notes notes.git --json >d.out 2>d.err &
pid=$!
for _ in $(seq 1 200); do [ -e started ] && break; sleep 0.05; done
check test -e started || bad "the long step never started"
kill -INT "$pid"
wait "$pid"
RC=$?
expect_rc 130
streams d "step:ok,step:failed,rollback:rolled-back"
has d.out '"status":"interrupted"' "the done event says interrupted"
end

finish
