#!/usr/bin/env bash
# Faults an operator meets at the worst moment, each survived: a lock file
# deleted by hand under a live runner, a torn journal found by whichever
# command reads it first, the journal hitting the file-size limit, symlinks
# and foreign owners in runbook's own state directories, a stale git lock.
#
#   RUNBOOK=build/runbook SRCDIR=. bash tests/e2e/faults.sh
# shellcheck source=lib/harness.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/harness.sh"
harness_init faults
need_tools git

hdr() {
	printf 'version: 1\nname: %s\nowner: Test Team <test@example.com>\n' "$1"
	printf 'reason: e2e check of faults\nexpected: the check passes\n'
}

cid() {
	sed -n 's/^runbook: change \([0-9]\{8\}T[0-9]\{6\}Z-[a-z0-9._-]*-[0-9a-f]\{8\}\): .*/\1/p' "$D/$1" | head -n 1
}

# repo: a git repository in $D/repo; G is its gitdir.
repo() {
	mkdir -p repo && git -C repo init -q &&
		git -C repo commit -q --allow-empty -m init || bad "git init"
	G=$D/repo/.git
}

# steps NAME N: a runbook of N steps, each appending "s<i>" to $D/log and
# its rollback "undo s<i>".
steps() {
	hdr "$1"
	echo "steps:"
	for ((i = 1; i <= $2; i++)); do
		printf '  - name: s%d\n    run: echo s%d >> %s/log\n    rollback: echo undo s%d >> %s/log\n' \
			"$i" "$i" "$D" "$i" "$D"
	done
}

# ---------------------------------------------------------------- lock deleted
# The lock file is removed by hand while a change runs. The kernel lock on
# the change's journal still says it is live: a second apply is refused as
# busy (not "interrupted"), status says running, and rollback refuses to
# become a second writer: no rollback command runs while the first runner
# works, and the first runner finishes and records its change.
begin lock-deleted
repo
{
	hdr ld
	cat <<EOF
steps:
  - name: first
    run: echo first >> $D/log
    rollback: echo undo first >> $D/log
  - name: wait
    run: touch $D/started; while [ ! -e $D/go ]; do sleep 0.05; done
    rollback: echo undo wait >> $D/log
EOF
} >repo/f.yml
start_bg bg apply repo/f.yml
wait_files 20 started || bad "the first runner did not reach its second step"
rm -f "$G"/runbook/locks/*.lock
check [ -z "$(ls "$G/runbook/locks" 2>/dev/null)" ] || bad "the lock file is still there"
id=$(cid bg.err)
rb second apply repo/f.yml
expect_rc 4 "a second apply"
has second.err "running in another runbook process" "that the change is running"
hasnt second.err "interrupted|runbook rollback" "an interrupted change or a rollback to run"
rb st status --notes "$G"
has st.out "^${id:-x}  ld on local: running" "the change as running"
hasnt st.out "finish it with" "a rollback to finish it"
rb rb rollback "${id:-x}" --notes "$G"
expect_rc 4 "rollback of the live change"
has rb.err "still running" "why nothing was run"
expect_lines log 'first' "nothing undone while the runner works"
touch go
wait_bg "$BGPID" 30
expect_rc 0 "the first runner"
expect_lines log 'first' "the first runner's work, once"
check [ -e "$G/runbook/journal/done/${id:-x}.log" ] || bad "the first runner's journal was not retired to done/"
end

# ---------------------------------------------------------------- torn journal
# A crash while the journal's last record was written leaves it torn. The
# first command to read it cuts it, and says so, whichever it is.
torn_setup() {
	repo
	steps tj 2 >repo/f.yml
	RB_SIGKILL_OK=1 RUNBOOK_FAILPOINT=kill-after-record:3 rb killed apply repo/f.yml
	expect_rc 137 "apply killed by the failpoint"
	id=$(cid killed.err)
	j=$G/runbook/journal/${id:-x}.log
	check [ -s "$j" ] || bad "no journal $j"
	printf 'RBJ1\x40\x00\x00\x00garbage' >>"$j"
	size=$(stat -c %s "$j")
}
for first in status "rollback --last" rollback apply; do
	begin "torn-first-${first// /-}"
	torn_setup
	case $first in
	status) rb first status --notes "$G" ;;
	"rollback --last") rb first rollback --last --notes "$G" ;;
	rollback) rb first rollback "${id:-x}" --notes "$G" ;;
	apply) rb first apply repo/f.yml ;;
	esac
	has first.err "journal of ${id:-x} ended in an incomplete record" "the torn record, by $first"
	now=$(stat -c %s "$j" 2>/dev/null || stat -c %s "$G/runbook/journal/done/${id:-x}.log")
	check [ "$now" != "$size" ] || bad "the torn end was not cut"
	end
done

# ---------------------------------------------------------------- file-size limit
# The journal reaches the file-size limit (ulimit -f): runbook used to be
# killed by SIGXFSZ (exit 153) with steps applied and none undone. Now the
# write fails with EFBIG like any write error: nothing new starts,
# everything done is rolled back, and the message says so.
begin file-size-limit
repo
steps eight 8 >repo/f.yml
rb_cmd big bash -c 'ulimit -f 3; exec "$0" apply repo/f.yml' "$RUNBOOK"
expect_rc 1 "apply past the file-size limit"
has big.err "cannot (record the change|write journal).*File too large" "the journal's write error"
has big.err "rolled back" "that everything was rolled back"
applied=$(grep -c '^s' log 2>/dev/null)
undone=$(grep -c '^undo' log 2>/dev/null)
check [ "${applied:-0}" -ge 1 ] && check [ "$applied" = "$undone" ] ||
	bad "expected every applied step undone, found $(paste -sd' ' log 2>/dev/null)"
check [ "$applied" -lt 8 ] || bad "every step ran although the journal failed"
end

# ---------------------------------------------------------------- state dirs
# runbook's journals and locks are trusted by status and rollback, so they
# are never written through a symlink, nor into a directory another user
# owns or can write; each is refused, naming the directory and the fix.
state_case() {	# state_case NAME SETUP: SETUP runs after a first apply
	begin "state-$1"
	repo
	steps "st" 1 >repo/f.yml
	rb first apply repo/f.yml
	expect_rc 0 "the first apply"
	rm -f log
	mkdir -p "$D/elsewhere"
	eval "$2"
	rb second apply repo/f.yml
	expect_rc 2 "apply with $1"
	check [ ! -e log ] || bad "a step ran: $(paste -sd' ' log)"
	check [ -z "$(ls -A "$D/elsewhere")" ] || bad "runbook wrote through the link: $(ls -A "$D/elsewhere")"
	if [ -z "${3:-}" ]; then	# status reads journals, not locks
		rb st status --notes "$G"
		expect_rc 2 "status with $1"
	fi
}
state_case journal-symlink 'rm -rf "$G/runbook/journal" && ln -s "$D/elsewhere" "$G/runbook/journal"'
has second.err "journal' is a symbolic link.*remove the link" "the link and the fix"
end
state_case runbook-symlink 'rm -rf "$G/runbook" && ln -s "$D/elsewhere" "$G/runbook"'
has second.err "runbook' is a symbolic link" "the link"
end
state_case locks-foreign 'chown nobody "$G/runbook/locks"' no-status
has second.err "locks' belongs to nobody, not to you" "the owner"
end
state_case journal-writable 'chmod 777 "$G/runbook/journal"'
has second.err "can be written by other users \(mode 777\).*chmod 700" "the mode and the fix"
end

# A notes repository another user owns: libgit2's own message named only
# the safe.directory setting it had looked for.
begin notes-foreign-owner
repo
steps fo 1 >repo/f.yml
chown -R nobody repo
rb apply apply repo/f.yml
expect_rc 2 "apply in a repository nobody owns"
has apply.err "belongs to nobody, not to you.*safe.directory '$D/repo'" "the owner and the fix"
check [ ! -e log ] || bad "a step ran"
end

# ---------------------------------------------------------------- stale git lock
# A git command that died left refs/heads/runbook-notes.lock: the note's
# commit cannot move the branch. The message used to end "for writing: ;".
# It names the file, says it was left behind and how to remove it; after
# removing it, status commits the pending note.
begin stale-notes-lock
repo
steps sl 1 >repo/f.yml
rb first apply repo/f.yml
expect_rc 0 "the first apply"
: >"$G/refs/heads/runbook-notes.lock"
rb locked apply repo/f.yml
id=$(cid locked.err)
has locked.err "runbook-notes.lock' has been there for [0-9]+s and was never released" "the stale lock file"
has locked.err "rm '$G/refs/heads/runbook-notes.lock'" "how to remove it"
hasnt locked.err "for writing: ;" "libgit2's cut-short message"
rm -f "$G/refs/heads/runbook-notes.lock"
rb st status --notes "$G"
has st.err "committed the pending note of change ${id:-x}" "the note committed by status"
end

finish
