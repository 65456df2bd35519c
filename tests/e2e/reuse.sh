#!/usr/bin/env bash
# End-to-end checks of reuse (docs/reuse.md, docs/format.md "Reuse"): YAML
# merge keys and top-level x- anchors give the steps `plan` prints and
# `apply` runs.
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

finish
