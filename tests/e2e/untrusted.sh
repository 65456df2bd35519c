#!/usr/bin/env bash
# Notes are untrusted input: they arrive from other clones, and anyone who
# can push to the notes branch can write one. Each check plants a crafted
# note on the branch (git plumbing, as a fetch would bring it) and shows
# that runbook reads it without crashing, never lets its names escape the
# notes directory, never lets it win `--last` from the future, never runs
# its rollbacks unseen, and never lets it drive the terminal.
#
#   RUNBOOK=build/runbook SRCDIR=. bash tests/e2e/untrusted.sh
# shellcheck source=lib/harness.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/harness.sh"
harness_init untrusted
need_tools git script

hdr() {
	printf 'version: 1\nname: %s\nowner: Test Team <test@example.com>\n' "$1"
	printf 'reason: e2e check of untrusted notes\nexpected: the check passes\n'
}

cid() {
	sed -n 's/^runbook: change \([0-9]\{8\}T[0-9]\{6\}Z-[a-z0-9._-]*-[0-9a-f]\{8\}\): .*/\1/p' "$D/$1" | head -n 1
}

note_path() { printf 'changes/%s/%s/%s.md' "${1:0:4}" "${1:4:2}" "$1"; }

# plant GITDIR ID FILE: commits FILE as the note of ID on runbook-notes.
plant() {
	local g=$1 id=$2 blob tree commit idx=$D/plant.idx
	blob=$(git --git-dir="$g" hash-object -w "$3") &&
		GIT_INDEX_FILE=$idx git --git-dir="$g" read-tree runbook-notes &&
		GIT_INDEX_FILE=$idx git --git-dir="$g" update-index --add \
			--cacheinfo "100644,$blob,$(note_path "$id")" &&
		tree=$(GIT_INDEX_FILE=$idx git --git-dir="$g" write-tree) &&
		commit=$(git --git-dir="$g" commit-tree "$tree" -p runbook-notes -m "plant $id") &&
		git --git-dir="$g" update-ref refs/heads/runbook-notes "$commit" ||
		bad "cannot plant the note $id"
	rm -f "$idx"
}

# applied NAME: applies a one-step runbook in $D/repo whose rollback
# appends to $D/rblog, with a secret, env and dir; sets ID and G.
applied() {
	mkdir -p repo && git -C repo init -q &&
		git -C repo commit -q --allow-empty -m init || bad "git init"
	G=$D/repo/.git
	{
		hdr "$1"
		cat <<EOF
secrets:
  tok: { env: RB_E2E_TOK }
steps:
  - name: mark
    run: echo on > $D/state
    env: {MODE: fast}
    dir: $D
    rollback: echo "undo \$MODE {{ secrets.tok }}" >> $D/rblog
EOF
	} >repo/f.yml
	RB_E2E_TOK=tok-3b1e rb apply apply repo/f.yml
	expect_rc 0 "apply"
	ID=$(cid apply.err)
	check [ -n "$ID" ] || bad "no change id in apply.err"
	git --git-dir="$G" show "runbook-notes:$(note_path "$ID")" >good.md 2>/dev/null ||
		bad "no note of $ID"
}

# forge ID FILE SED...: FILE is the good note with its id replaced by ID
# and each sed expression applied.
forge() {
	local id=$1 out=$2
	shift 2
	sed "s/$ID/$id/g" good.md >"$out"
	for e in "$@"; do
		sed -i "$e" "$out"
	done
}

# ---------------------------------------------------------------- wrong types
# A field that should be a string is a list or a map: `log` and `rollback`
# used to dereference NULL (exit 139) for everyone sharing the branch.
begin wrong-types
applied wt
bad_id=${ID%-*}-0badbad0
forge "$bad_id" bad1.md 's/^hosts:$/hosts: [[a]]\nx_hosts:/'
plant "$G" "$bad_id" bad1.md
rb log log --notes "$G"
expect_rc 0 "log with a malformed note on the branch"
has log.out "^$bad_id  \(unreadable note: .*:[0-9]+:[0-9]+: 'hosts' expected a list of strings, found a list" "the malformed note, its line and column"
has log.out "^$ID " "the good change"
RB_E2E_TOK=tok-3b1e rb last rollback --last --notes "$G" --dry-run
expect_rc 0 "rollback --last --dry-run"
has last.out "^local	mark	" "the good change's rollback"
end

# ---------------------------------------------------------------- future ids
# A note dated 2999 won every `rollback --last`.
again future-id
fut=29991231T235959Z-wt-00000000
forge "$fut" fut.md 's/echo \\"undo/id > EXECUTED; echo \\"undo/'
plant "$G" "$fut" fut.md
RB_E2E_TOK=tok-3b1e rb last rollback --last --notes "$G" --dry-run
expect_rc 0 "rollback --last --dry-run"
hasnt last.out "EXECUTED" "the future-dated note's rollback"
has last.out "^# change $ID " "the newest real change"
rb log log --notes "$G"
has log.out "^$fut  \(unreadable note: .*future" "the future-dated note refused"
rb fut rollback "$fut" --notes "$G" --yes
check [ "$RC" != 0 ] || bad "the future-dated change was rolled back"
check [ ! -e EXECUTED ] || bad "the future-dated note's command ran"
end

# ---------------------------------------------------------------- names
# The change and target fields name files (journal, lock): a note naming
# "../" made runbook create them outside the notes directory.
begin names
applied nm
t_id=${ID%-*}-0000aaaa
forge "$t_id" t.md 's/^target: .*/target: "..\/..\/..\/escaped"/'
plant "$G" "$t_id" t.md
rb t rollback "$t_id" --notes "$G" --yes
expect_rc 5 "a note whose target is a path"
has t.err "target name" "the target refused"
c_id=${ID%-*}-0000bbbb
forge "$c_id" c.md "s/^change: .*/change: \"..\/..\/..\/escaped-$c_id\"/"
plant "$G" "$c_id" c.md
rb c rollback "$c_id" --notes "$G" --yes
expect_rc 5 "a note whose change field is a path"
has c.err "filed under" "the change field refused"
check [ -z "$(find "$D" -name '*escaped*' 2>/dev/null)" ] ||
	bad "files were created through the note's names: $(find "$D" -name '*escaped*' | head -3)"
check [ ! -e rblog ] || bad "a rollback ran"
end

# ---------------------------------------------------------------- foreign
# A change this machine never journaled (its note came from the branch):
# its rollbacks run only after the full plan was shown and the operator
# said yes; without a terminal that takes --yes.
begin foreign
applied fg
rm -rf "$G/runbook/journal"
RB_E2E_TOK=tok-3b1e rb ask rollback "$ID" --notes "$G" </dev/null
expect_rc 2 "rollback of a change from the branch, no terminal, no --yes"
has ask.err "was not recorded on this machine" "why it asks"
has ask.err "^# secret tok is read from env:RB_E2E_TOK" "the secret's source"
has ask.err "^local	mark	echo \"undo \\\$MODE \[secret:tok\]\"" "the command, masked"
has ask.err "^  env: MODE=fast" "the env"
has ask.err "^  dir: $D$" "the dir"
has ask.err "add --yes" "what to do"
check [ ! -e rblog ] || bad "a rollback ran unconfirmed"
# on a terminal, an answer other than yes runs nothing either
printf 'no\n' | RB_E2E_TOK=tok-3b1e script -qec "$RUNBOOK rollback $ID --notes $G" \
	/dev/null >tty.out 2>&1
has tty.out "type yes to run them" "the question on a terminal"
check [ ! -e rblog ] || bad "a rollback ran without a yes"
RB_E2E_TOK=tok-3b1e rb dry rollback "$ID" --notes "$G" --dry-run
expect_rc 0 "--dry-run"
has dry.out "^  env: MODE=fast" "the env in the dry run"
has dry.out "^  timeout: 10m \(rollbacks are not retried\)" "the timeout in the dry run"
has dry.out "^# secret tok is read from env:RB_E2E_TOK" "the secret source in the dry run"
RB_E2E_TOK=tok-3b1e rb yes rollback "$ID" --notes "$G" --yes
expect_rc 0 "rollback --yes"
expect_lines rblog 'undo fast tok-3b1e' "the rollback ran once"
end

# ---------------------------------------------------------------- terminal
# A note's text is shown, never obeyed: escape sequences in a reason are
# printed as \x1b on a terminal.
begin terminal
applied tm
e_id=${ID%-*}-0000eeee
forge "$e_id" e.md 's/^reason: .*/reason: "\\u001b]0;pwned\\u0007\\u001b[2J"/'
plant "$G" "$e_id" e.md
script -qec "$RUNBOOK log --notes $G" /dev/null </dev/null >tty.out 2>&1
has_fixed tty.out '\x1b]0;pwned\x07\x1b[2J' "the escape sequences shown"
refute grep -q $'\x1b' tty.out || bad "a raw escape character reached the terminal"
printf '\033]0;pwned-body\007\n' >>e.md
plant "$G" "$e_id" e.md
script -qec "$RUNBOOK show $e_id --notes $G" /dev/null </dev/null >show.out 2>&1
has_fixed show.out '\x1b]0;pwned-body\x07' "the body's escape sequence shown"
refute grep -q $'\x1b' show.out || bad "show sent a raw escape character to the terminal"
end

# ---------------------------------------------------------------- secret lines
# A secret of several lines (a file: source) is masked line by line too:
# `head` printing some of its lines, or quoting it in an error message
# ($'line1\nline2'), showed them unmasked.
begin secret-lines
mkdir -p repo && git -C repo init -q && git -C repo commit -q --allow-empty -m init
G=$D/repo/.git
printf 'alpha-7f3e21:x:1\nbravo-9c4d88:y:2\ncharlie-1b6a:z:3\n' >sec.txt
chmod 600 sec.txt
{
	hdr sl
	cat <<EOF
secrets:
  k: { file: $D/sec.txt }
steps:
  - name: partial
    run: printf '%s\\n' "{{ secrets.k }}" | head -n 2
    rollback: none
  - name: quoted
    run: head {{ secrets.k }} || true
    rollback: none
EOF
} >repo/f.yml
rb apply apply repo/f.yml -v
expect_rc 0 "apply"
git --git-dir="$G" log -p runbook-notes >notes.txt 2>/dev/null
for f in apply.out apply.err notes.txt; do
	hasnt "$f" "alpha-7f3e21|bravo-9c4d88|charlie-1b6a" "a line of the secret"
done
has apply.err "\\[secret:k\\]" "the mask"
end

finish
