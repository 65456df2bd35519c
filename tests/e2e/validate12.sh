#!/usr/bin/env bash
# End-to-end checks of issue 12's input points with a real apply: a --var
# the runbook neither declares nor uses is refused before anything runs,
# naming the closest known name; {{ }} in expect is matched literally and
# reason is rendered in the note.
#
#   RUNBOOK=build/runbook SRCDIR=. bash tests/e2e/validate12.sh
#
# Checks:
#   var-typo-apply        apply -e verison=1.3.0: exit 5, "did you mean
#                         version?", no command ran, no note
#   var-typo-commands     validate, plan and rehearse refuse it the same way
#   var-known-names       a declared var, a capture and a name only a template
#                         uses are accepted; a built-in is refused
#   expect-literal        expect stdout '{{ version }}' matches the rendered
#                         value, and matches it literally (1x3y0 fails)
#   reason-in-note        reason and expected rendered in the note and the
#                         commit message, no braces left
# shellcheck source=lib/harness.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/harness.sh"
harness_init validate12
need_tools git

# cid FILE: the change id announced on stderr ("runbook: change ID: ...").
cid() {
	sed -n 's/^runbook: change \([0-9]\{8\}T[0-9]\{6\}Z-[a-z0-9._-]*-[0-9a-f]\{4,\}\): .*/\1/p' "$D/$1" | head -n 1
}

# note_path ID: changes/YYYY/MM/ID.md
note_path() { printf 'changes/%s/%s/%s.md' "${1:0:4}" "${1:4:2}" "$1"; }

# hello: the runbook of the issue, writing what it installs to installed.txt.
hello() {
	cat <<'EOF'
version: 1
name: hello
owner: Test Team <test@example.com>
reason: Roll out {{ version }} to {{ target }}
expected: "{{ runbook.name }} {{ version }} is installed ({{ change.id }})"
vars:
  version: 1.2.0
  out: installed.txt
preflight:
  - name: current
    run: echo current=1.1.0
    capture: { previous: '^current=(\S+)$' }
steps:
  - name: install
    run: echo {{ version }} > {{ out }}; echo "installed $(cat {{ out }})"
    expect: { stdout: '^installed {{ version }}$' }
    rollback: rm -f {{ out }}
EOF
}

# ------------------------------------------------------------------ 1. --var

begin var-typo-apply
git init -q --bare notes.git
hello >hello.yml
rb apply apply hello.yml --notes notes.git -e verison=1.3.0
expect_rc 5 "apply with -e verison=1.3.0"
has apply.err '^hello\.yml:1:1: --var verison: .*found unknown "verison"' "the --var, located at the file"
has apply.err 'did you mean version\?' "the closest known name"
has apply.err '^nothing was run' "that nothing ran"
check [ ! -e installed.txt ] || bad "the step ran: installed.txt holds '$(cat installed.txt)'"
check [ -z "$(git --git-dir=notes.git for-each-ref refs/heads/runbook-notes)" ] ||
	bad "a note was committed for a refused apply"
check [ ! -d notes.git/journal ] || check [ -z "$(ls -A notes.git/journal)" ] ||
	bad "a journal was written for a refused apply"
end

again var-typo-commands
for cmd in validate plan rehearse; do
	notes=()
	[ "$cmd" = rehearse ] && notes=(--notes notes.git)
	rb "$cmd" "$cmd" hello.yml "${notes[@]}" -e verison=1.3.0
	expect_rc 5 "$cmd with -e verison=1.3.0"
	has "$cmd.err" 'did you mean version\?' "$cmd: the closest known name"
	check [ ! -s "$cmd.out" ] || bad "$cmd printed on stdout: $(head -c 200 "$cmd.out")"
done
check [ ! -e installed.txt ] || bad "rehearse ran the step"
# several unknown names: each reported, once
rb twice validate hello.yml -e verison=1 -e verison=2 -e zzz_unrelated=3
expect_rc 5 "validate with two unknown names"
check [ "$(grep -c -- '--var verison:' twice.err)" = 1 ] || bad "expected verison reported once"
has twice.err -- '--var zzz_unrelated: .*known names: out, previous, version' "the known names when none is close"
end

begin var-known-names
git init -q --bare notes.git
# (without the expect of {{ version }}: expect-literal checks that)
{ hello | grep -v '^    expect:'; cat <<'EOF'
  - name: only-template
    run: echo {{ extra }} > extra.txt
    rollback: rm -f extra.txt
EOF
} >hello.yml
rb ok apply hello.yml --notes notes.git -e version=1.3.0 -e extra=x -e previous=1.0 -e out=out.txt
expect_rc 0 "apply with a declared var, a template-only name and a capture"
check [ "$(cat out.txt 2>/dev/null)" = 1.3.0 ] || bad "expected out.txt to hold 1.3.0, found '$(cat out.txt 2>/dev/null)'"
rb builtin validate hello.yml -e extra=x -e target=prod
expect_rc 5 "validate -e target=prod"
has builtin.err -- '--var target: .*built in' "that target is a built-in"
end

# ------------------------------------------------------------------ 5. {{ }} in expect and reason

begin expect-literal
git init -q --bare notes.git
hello >hello.yml
rb ok apply hello.yml --notes notes.git -e version=1.3.0
expect_rc 0 "apply whose expect names {{ version }}"
check [ "$(cat installed.txt 2>/dev/null)" = 1.3.0 ] || bad "expected installed.txt to hold 1.3.0"
id=$(cid ok.err)
check [ -n "$id" ] || bad "no change id in ok.err"
# the value is matched literally: 1x3y0 does not match 1.3.0
# shellcheck disable=SC2016 # the $(...) is the runbook's text
sed 's/echo "installed $(cat {{ out }})"/echo "installed 1x3y0"/' hello.yml >lit.yml
rb lit apply lit.yml --notes notes.git -e version=1.3.0 -e out=lit.txt
expect_rc 1 "apply whose output matches only if . were any character"
has lit.err 'installed 1\\\.3\\\.0' "the pattern with the value escaped"
check [ ! -e lit.txt ] || bad "the failed step was not rolled back"
end

again reason-in-note
note=$(git --git-dir=notes.git show "runbook-notes:$(note_path "${id:-x}")" 2>/dev/null)
check [ -n "$note" ] || bad "no note $(note_path "${id:-x}") on runbook-notes"
check grep -q 'Roll out 1\.3\.0 to local' <<<"$note" || bad "the note has no rendered reason 'Roll out 1.3.0 to local'"
check grep -qF "hello 1.3.0 is installed ($id)" <<<"$note" || bad "the note has no rendered expected with the change id"
refute grep -qF '{{' <<<"$note" || bad "the note still has braces: $(grep -F '{{' <<<"$note" | head -n 2)"
msgs=$(git --git-dir=notes.git log --format=%B runbook-notes)
refute grep -qF '{{' <<<"$msgs" || bad "a commit message has braces: $(grep -F '{{' <<<"$msgs" | head -n 1)"
rb log log --notes notes.git
refute grep -qF '{{' log.out || bad "runbook log shows braces"
end

finish
