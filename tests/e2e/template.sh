#!/usr/bin/env bash
# End-to-end checks of templates (docs/templates.md): a value never becomes
# shell syntax, and the record form of a command replays the same bytes.
#
#   RUNBOOK=build/runbook SRCDIR=. bash tests/e2e/template.sh
#
# Checks:
#   literal-joins-text     a {{ '<' }} that makes a here-document with the
#                          text around it is refused before anything runs
#   arithmetic-refused     a capture inside [[ ... -lt ... ]] is refused before
#                          anything runs
#   command-from-value     a value that names let cannot feed it another: the
#                          command fails to render, nothing of the value runs
#   record-replays-bytes   a rollback with {{ '{{' }}, a value ending in { or $
#                          next to template text, and a secret: the rollback
#                          apply runs and the one `runbook rollback` replays
#                          from the note write the same bytes, and the escaped
#                          {{ '{{' }} secrets.tok }} is never resolved
# shellcheck source=lib/harness.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/harness.sh"
harness_init template
need_tools git

# hdr NAME: the required top-level keys of a runbook.
hdr() {
	printf 'version: 1\nname: %s\nowner: Test Team <test@example.com>\n' "$1"
	printf 'reason: e2e check of templates\nexpected: the check passes\n'
}

# cid FILE: the change id announced on stderr ("runbook: change ID: ...").
cid() {
	sed -n 's/^runbook: change \([0-9]\{8\}T[0-9]\{6\}Z-[a-z0-9._-]*-[0-9a-f]\{4,\}\): .*/\1/p' "$D/$1" | head -n 1
}

# ------------------------------------------------------------------ 1. literals

begin literal-joins-text
# shellcheck disable=SC1039 # the indented EOF is the runbook's here-document
{ hdr tpl-literal; cat <<'EOF'
vars:
  v: "$(touch PWNED)"
steps:
  - name: first
    run: touch ran
    rollback: none
  - name: heredoc
    run: |
      cat <{{ '<' }}EOF
      {{ v }}
      EOF
    rollback: none
EOF
} >f.yml
rb apply apply f.yml --notes notes.git
expect_rc 5 "apply of a template whose literal opens a here-document"
has apply.err 'f\.yml:15:7: steps\[1\]\.run: .*here-document' "the placeholder in the here-document, located"
check [ ! -e ran ] || bad "expected the first step not to run"
check [ ! -e PWNED ] || bad "the value's \$(touch PWNED) ran"
end

# ------------------------------------------------------------------ 2. arithmetic

begin arithmetic-refused
{ hdr tpl-arith; cat <<'EOF'
steps:
  - name: read
    run: echo 'count=a[$(touch PWNED)]'
    capture: { count: '^count=(.*)$' }
    rollback: none
  - name: compare
    run: if [[ {{ count }} -lt 42 ]]; then echo small; fi
    rollback: none
EOF
} >f.yml
rb apply apply f.yml --notes notes.git
expect_rc 5 "apply with a capture in [[ ... -lt ... ]]"
has apply.err 'f\.yml:12:16: steps\[1\]\.run: expected no placeholder where bash evaluates arithmetic' "the operand of -lt, located"
check [ ! -e PWNED ] || bad "the captured value ran"
end

# ------------------------------------------------------------------ 3. rendered command

begin command-from-value
{ hdr tpl-cmd; cat <<'EOF'
steps:
  - name: read
    run: |
      echo 'cmd=let'
      echo 'val=a[$(touch PWNED)]'
    capture: { cmd: '^cmd=(.*)$', val: '^val=(.*)$' }
    rollback: none
  - name: use
    run: '{{ cmd }} n={{ val }}'
    rollback: none
EOF
} >f.yml
rb apply apply f.yml --notes notes.git
expect_rc 1 "apply whose command word comes from a value"
has apply.err 'cannot render.*arguments of let' "that the rendered command was refused"
check [ ! -e PWNED ] || bad "the value ran as arithmetic"
end

# ------------------------------------------------------------------ 4. record form

begin record-replays-bytes
git init -q --bare notes.git
{ hdr tpl-record; cat <<'EOF'
secrets:
  tok: { env: RB_E2E_TOK }
vars:
  v: "a$"
  w: "{"
  code: "0"
  out: undo
steps:
  - name: change
    run: echo changed
    rollback: |
      printf '%s\n' {{ '{{' }}x '{{ '{{' }} secrets.tok }}' "{{ v }}{x}" '{{ w }}{{ '{{' }}' "{{ w }}{{ secrets.tok }}" > {{ out }}.txt
verify:
  - name: check
    run: exit {{ code }}
EOF
} >f.yml
# shellcheck disable=SC2016 # the bytes the rollback must write
printf '%s\n' '{{x' '{{ secrets.tok }}' 'a${x}' '{{{' '{tokval' >want.txt
export RB_E2E_TOK=tokval
# the rollback apply runs itself, when verify fails
rb failed apply f.yml --notes notes.git -e code=1 -e out=in-apply
expect_rc 1 "apply that fails verify and rolls back"
check cmp -s want.txt in-apply.txt ||
	bad "the rollback apply ran wrote '$(paste -sd'|' in-apply.txt 2>/dev/null)', expected '$(paste -sd'|' want.txt)'"
# the rollback replayed from the note of an applied change
rb apply apply f.yml --notes notes.git -e out=replayed
expect_rc 0 "apply"
id=$(cid apply.err)
check [ -n "$id" ] || bad "no change id in apply.err"
rb show show "${id:-x}" --notes notes.git
has_fixed show.out "{{ '{{' }} secrets.tok }}" "the escaped {{ in the recorded rollback"
hasnt show.out 'tokval' "the secret's value"
rb rollback rollback "${id:-x}" --notes notes.git
expect_rc 0 "runbook rollback"
check cmp -s want.txt replayed.txt ||
	bad "the replayed rollback wrote '$(paste -sd'|' replayed.txt 2>/dev/null)', expected '$(paste -sd'|' want.txt)'"
rb status status --notes notes.git
hasnt status.out 'rollback-failed' "a failed rollback"
unset RB_E2E_TOK
end

finish
