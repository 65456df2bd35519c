#!/usr/bin/env bash
# End-to-end checks of reuse (docs/reuse.md, docs/format.md "Reuse"): YAML
# merge keys and top-level x- anchors give the steps `plan` prints and
# `apply` runs; `include:` splices step lists from other files, locates
# problems inside them, refuses cycles, and the note of an applied change
# keeps the included files, while its rollback needs none of them.
#
#   RUNBOOK=build/runbook bash tests/e2e/reuse.sh
#
# Output (tests/e2e/lib/harness.sh): `ok N - NAME` / `not ok N - NAME: why`
# per check, then `N passed, M failed`.
# shellcheck source=lib/harness.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/harness.sh"
harness_init reuse --operator 'Rita Reuse <rita@example.com>' --repo-per-check
need_tools git "$PY"

head_yml() {
	cat <<YAML
version: 1
name: ${1:-reuse}
owner: Test Team <test@example.com>
reason: e2e check of reuse
expected: the steps run as written once
YAML
}

# ------------------------------------------------------------ merge keys

begin "a merge key and an x- anchor give the expected steps (plan)"
{ head_yml; cat <<'YAML'
x-restart: &restart
  run: echo restart
  rollback: echo restart-back
  timeout: 30s
x-quick: &quick
  timeout: 5s
  retries: 2
steps:
  - name: restart
    <<: *restart
  - name: restart quickly
    <<: [*quick, *restart]
    run: echo explicit
YAML
} > rb.yml
rb plan plan rb.yml
expect_rc 0 "plan"
# plan prints each step, then its settings, run, expect and rollback
"$PY" - "$D/plan.out" > steps.txt <<'PY' || bad "cannot read plan output"
import re, sys
step = None
for line in open(sys.argv[1]):
    m = re.match(r"\s+step\s+(.*\S)", line)
    if m:
        step = m.group(1)
        print(f"step {step}")
        continue
    m = re.match(r"\s+(run|rollback)\s+(.*\S)", line)
    if m and step:
        print(f"  {m.group(1)} {m.group(2)}")
PY
expect_lines steps.txt 'step restart  (timeout 30s)|  run echo restart|  rollback echo restart-back|step restart quickly  (timeout 5s, 2 retries 1s apart)|  run echo explicit|  rollback echo restart-back' "steps of plan"
end

again "the merged steps apply and their rollbacks are recorded"
rb apply apply rb.yml
expect_rc 0 "apply"
id=$("$RUNBOOK" log -n 1 --json | "$PY" -c 'import json,sys; print(json.loads(sys.stdin.readline())["change"])')
git show "runbook-notes:changes/${id:0:4}/${id:4:2}/$id.md" > note.md 2>/dev/null ||
	bad "no note for $id"
has note.md '^    rollback: "echo restart-back"$' "the merged rollback in the note"
has note.md '^    command: "echo explicit"$' "the written run in the note"
has note.md '^    timeout_ms: 5000$' "the earlier merged timeout in the note"
end

begin "a merge of a scalar is refused at its position"
{ head_yml; cat <<'YAML'
x-cmd: &cmd echo restart
steps:
  - name: restart
    <<: *cmd
    run: echo restart
    rollback: none
YAML
} > rb.yml
rb validate validate rb.yml
expect_rc 5 "validate"
has validate.err '^rb\.yml:9:9: <<: expected a mapping to merge' "the located message"
end

# ------------------------------------------------------------ include

# write_parts: a runbook whose steps include parts/web.yml, which includes
# common.yml; each step appends to ./ran, each rollback to ./undone.
write_parts() {
	mkdir -p parts
	{ head_yml; cat <<YAML
steps:
  - name: first
    run: echo first >> ran
    rollback: echo first >> undone
  - include: parts/web.yml
  - name: last
    run: echo last >> ran
    rollback: echo last >> undone
YAML
	} > rb.yml
	cat > parts/web.yml <<YAML
- name: web restart
  run: echo web >> ran
  rollback: echo web >> undone
- include: common.yml
YAML
	cat > parts/common.yml <<YAML
- name: common reload
  run: echo common >> ran
  rollback: echo common >> undone
YAML
}

begin "included steps are planned in place, nested includes too"
write_parts
rb plan plan rb.yml
expect_rc 0 "plan"
grep -E '^ +step ' "$D/plan.out" | sed -E 's/^ +step +//; s/  \(.*//' > order.txt
expect_lines order.txt 'first|web restart|common reload|last' "steps in plan order"
end

again "an error inside an included file is located in that file"
sed -i 's/  rollback: echo common/  timeout: soon\n  rollback: echo common/' parts/common.yml
rb bad validate rb.yml
expect_rc 5 "validate"
has bad.err '^parts/common\.yml:3:12: steps\[2\]\.timeout: expected a duration .*found "soon" \(included at parts/web\.yml:4:12, included at rb\.yml:10:14\)$' "the located message with its include chain"
hasnt bad.err '^rb\.yml:' "no message blames the runbook itself"
rb badjson validate --json rb.yml
has badjson.out '"file":"parts/common\.yml","line":3,"column":12' "--json names the included file and its own line"
end

begin "an include cycle is refused with the chain"
write_parts
echo '- include: web.yml' >> parts/common.yml
rb plan plan rb.yml
expect_rc 5 "plan"
has plan.err '^parts/common\.yml:4:12: steps\.include: expected a file not already being included, found a cycle: rb\.yml -> parts/web\.yml -> parts/common\.yml -> parts/web\.yml' "the cycle and its chain"
check [ ! -e ran ] || bad "something ran"
end

begin "a missing included file is an error at the include"
write_parts
rm parts/common.yml
rb apply apply rb.yml
expect_rc 5 "apply"
has apply.err '^parts/web\.yml:4:12: steps\.include: expected a readable file of steps, found "parts/common\.yml": No such file or directory' "the include's position and the path tried"
check [ ! -e ran ] || bad "something ran"
end

begin "the note of an applied change with included steps"
write_parts
rb apply apply rb.yml
expect_rc 0 "apply"
expect_lines ran 'first|web|common|last' "steps ran in order"
id=$("$RUNBOOK" log -n 1 --json | "$PY" -c 'import json,sys; print(json.loads(sys.stdin.readline())["change"])')
dir="changes/${id:0:4}/${id:4:2}"
git show "runbook-notes:$dir/$id.md" > note.md 2>/dev/null || bad "no note for $id"
git show "runbook-notes:$dir/$id.yml" > kept.yml 2>/dev/null || bad "no runbook beside the note"
has note.md '^    name: "common reload"$' "the nested included step in the note"
has note.md '^    rollback: "echo common >> undone"$' "its rollback in the note"
sum=$(sha256sum parts/common.yml | cut -d' ' -f1)
has kept.yml "^# ---- included: parts/common\.yml \(sha256 $sum\) ----$" "the included file, with its SHA-256, beside the note"
has kept.yml '^#   rollback: echo web >> ' "the included file's text, as comments"
check cmp -s <(head -n "$(wc -l < rb.yml)" kept.yml) rb.yml || bad "the kept file does not start with the runbook as written"
end

again "its rollback needs neither the runbook nor the included files"
rm -rf parts rb.yml
rb rollback rollback "$id"
expect_rc 0 "rollback"
expect_lines undone 'last|common|web|first' "every rollback, newest first"
end

begin "rehearse runs included steps, checks and their rollbacks"
write_parts
cat >> rb.yml <<'YAML'
preflight:
  - include: parts/checks.yml
YAML
cat > parts/checks.yml <<'YAML'
- name: state
  run: if [ -e state ]; then cat state; else echo none; fi
YAML
sed -i 's/echo web >> ran/echo web >> ran; echo changed > state/; s/echo web >> undone/echo web >> undone; rm -f state/' parts/web.yml
rb rehearse rehearse rb.yml
expect_rc 0 "rehearse"
expect_lines ran 'first|web|common|last' "steps"
expect_lines undone 'last|common|web|first' "rollbacks"
end

finish
