#!/usr/bin/env bash
# End-to-end checks of team mode (docs/team.md): two operators, each with
# their own HOME and their own clone, sharing one bare notes repository
# (a local path here; over SSH in the checks named ssh-*).
#
#   RUNBOOK=build/runbook SRCDIR=. bash tests/e2e/team.sh
#
# Env: RUNBOOK (required) the built binary; SRCDIR the repository root;
# RUNBOOK_SANITIZED=1 allows 5x longer time limits.
#
# Checks: a change applied from A's clone is listed, shown and rolled back
# from B's, and A sees B's note after a fetch; the remote named by git
# config, --remote and RUNBOOK_REMOTE; 20 times both operators apply to one
# target at the same instant: exactly one runs, the other exits 4 naming
# the holder; applies to two targets at once, whose note pushes race and
# are rebuilt, never forced (the remote's reflog only fast-forwards, git
# fsck is clean); the remote gone: apply runs nothing (exit 6), rollback
# goes on and queues its note, status lists it, sync pushes it; kill -9 of
# the holder, unlock --force --reason, the running note blocking until it
# is rolled back, and the record of who broke whose lock.
# Output (tests/e2e/lib/harness.sh): TAP lines, then `N passed, M failed`.
# shellcheck source=lib/harness.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/harness.sh"
harness_init team
need_tools git flock "$PY" pgrep ssh-keygen ssh-keyscan ssh-agent ssh-add \
	/usr/sbin/sshd
. "$E2E_DIR/lib/sshd.sh"
# In ASan builds: libgit2 1.5.1's own leaks while it connects over SSH,
# and only those, are suppressed (tests/e2e/lib/lsan-libgit2.supp).
export LSAN_OPTIONS="suppressions=$E2E_DIR/lib/lsan-libgit2.supp:print_suppressions=0${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}fast_unwind_on_malloc=0"
AGENT_PID=
# shellcheck disable=SC2317 # called at exit (on_cleanup)
stop_daemons() {
	sshd_stop
	[ -n "$AGENT_PID" ] && kill -KILL "$AGENT_PID" 2>/dev/null
}
on_cleanup stop_daemons

HOME_A=$tmp/home-a
HOME_B=$tmp/home-b
for h in a b; do
	H=$tmp/home-$h
	mkdir -p "$H/.config"
	HOME=$H XDG_CONFIG_HOME=$H/.config git config --global user.name "Op ${h^^}"
	HOME=$H XDG_CONFIG_HOME=$H/.config git config --global user.email "op-$h@example.com"
	HOME=$H XDG_CONFIG_HOME=$H/.config git config --global init.defaultBranch main
done

# as A|B TAG ARGS...: runbook ARGS as operator A or B (their HOME), from
# their clone ($D/a or $D/b).
as() {
	local who=$1 tag=$2 h
	shift 2
	h=$tmp/home-${who,,}
	cd "$D/${who,,}" || { bad "no clone $D/${who,,}"; return 1; }
	if [ "$who" = A ]; then
		rb_cmd "$tag" env HOME="$h" XDG_CONFIG_HOME="$h/.config" "${A_ENV[@]}" "$RUNBOOK" "$@"
	else
		rb_cmd "$tag" env HOME="$h" XDG_CONFIG_HOME="$h/.config" "$RUNBOOK" "$@"
	fi
	cd "$D" || return 1
}

# bg_as A|B TAG ARGS...: the same in the background, started when the gate
# ($D/gate, held by the test while it starts them) opens; sets BGPID.
bg_as() {
	local who=$1 tag=$2 h
	shift 2
	h=$tmp/home-${who,,}
	_h_errs "$D/$tag.err"
	local extra=()
	[ "$who" = A ] && extra=("${A_ENV[@]}")
	(cd "$D/${who,,}" && exec flock -s "$D/gate" env HOME="$h" \
		XDG_CONFIG_HOME="$h/.config" "${extra[@]}" "$RUNBOOK" "$@" \
		>"$D/$tag.out" 2>"$D/$tag.err") &
	BGPID=$!
	BG+=("$BGPID")
}

# setup [REMOTE_URL]: a bare notes repository $D/remote.git (reflog on),
# and the clones $D/a and $D/b with runbook.remote set to it (or to
# REMOTE_URL), each holding the runbook team.yml.
setup() {
	local url=${1:-$D/remote.git} w
	git init -q --bare "$D/remote.git" &&
		git -C "$D/remote.git" config core.logAllRefUpdates always || return 1
	for w in a b; do
		git init -q "$D/$w" &&
			git -C "$D/$w" config runbook.remote "$url" &&
			printf 'clone %s\n' "$w" >"$D/$w/README" &&
			git -C "$D/$w" add README &&
			git -C "$D/$w" -c user.name=x -c user.email=x@x commit -qm init &&
			write_runbook "$D/$w/team.yml" || return 1
	done
}

# write_runbook FILE: targets t and u on this machine; the step appends to
# $D/state/<target> and sleeps NAP seconds (var nap); its rollback appends
# "undo".
write_runbook() {
	mkdir -p "$D/state"
	cat >"$1" <<EOF
version: 1
name: team
owner: Ann Owner <ann@example.com>
reason: e2e check of team mode
expected: the check passes
targets:
  t: { hosts: [local] }
  u: { hosts: [local] }
vars:
  nap: "0"
steps:
  - name: mark
    run: echo applied >> $D/state/{{ target }} && sleep {{ nap }}
    rollback: echo undo >> $D/state/{{ target }}
EOF
}

# remote_notes: the note files on the remote's runbook-notes.
remote_notes() {
	git --git-dir="$D/remote.git" ls-tree -r --name-only runbook-notes 2>/dev/null |
		grep -c '\.md$'
}

# ff_only: every update in the remote's reflogs is a creation or a
# fast-forward; git fsck is clean.
ff_only() {
	local f old new rest bad_ones=0
	for f in $(cd "$D/remote.git/logs" && find refs -type f); do
		while read -r old new rest; do
			[ "$old" = 0000000000000000000000000000000000000000 ] && continue
			git --git-dir="$D/remote.git" merge-base --is-ancestor "$old" "$new" ||
				bad_ones=$((bad_ones + 1))
		done <"$D/remote.git/logs/$f"
	done
	check [ "$bad_ones" = 0 ] || bad "$bad_ones forced (non fast-forward) updates in the remote's reflogs"
	check git --git-dir="$D/remote.git" fsck --no-progress --strict >"$D/fsck.out" 2>&1 ||
		bad "git fsck of the remote failed: $(head -c 300 "$D/fsck.out")"
	check [ -z "$(git --git-dir="$D/remote.git" rev-list --merges --all)" ] ||
		bad "the remote holds merge commits"
}

# cid TAG: the change id apply announced in TAG.err.
cid() {
	sed -n 's/^runbook: change \([0-9]\{8\}T[0-9]\{6\}Z-[a-z0-9._-]*-[0-9a-f]\{4,\}\): .*/\1/p' "$D/$1.err" | head -n 1
}

# ssh_homes: the sshd of the test up, A logging in with ssh-agent (its
# SSH_AUTH_SOCK in A_ENV), B with ~/.ssh/id_ed25519; both trust the host
# key in their ~/.ssh/known_hosts. SSH_URL is the bare repository of the
# check over SSH.
A_ENV=()
ssh_homes() {
	local h
	if [ -z "${SSHD_PID:-}" ]; then
		sshd_start "$tmp/sshd" >"$tmp/sshd-start.log" 2>&1 || return 1
	fi
	for h in "$HOME_A" "$HOME_B"; do
		mkdir -p "$h/.ssh" && chmod 700 "$h/.ssh" &&
			cp "$SSH_KNOWN" "$h/.ssh/known_hosts" || return 1
	done
	cp "$SSH_KEY" "$HOME_B/.ssh/id_ed25519" && chmod 600 "$HOME_B/.ssh/id_ed25519" || return 1
	if [ -z "$AGENT_PID" ]; then
		eval "$(ssh-agent -s -a "$tmp/agent.sock")" >/dev/null || return 1
		AGENT_PID=$SSH_AGENT_PID
		unset SSH_AUTH_SOCK SSH_AGENT_PID
		SSH_AUTH_SOCK=$tmp/agent.sock ssh-add -q "$SSH_KEY" 2>/dev/null || return 1
	fi
	A_ENV=(SSH_AUTH_SOCK="$tmp/agent.sock")
	SSH_URL="ssh://$SSH_USER@127.0.0.1:$SSHD_PORT$D/remote.git"
}

# ------------------------------------------------------------------ checks

begin two-clones
setup || bad "setup failed"
as A apply-a apply team.yml -t t
expect_rc 0 "A's apply"
id=$(cid apply-a)
check [ -n "$id" ] || bad "no change id in apply-a.err"
check [ "$(remote_notes)" = 1 ] || bad "expected 1 note on the remote, found $(remote_notes)"
as B log-b log
expect_rc 0 "B's log"
has log-b.out "$id  applied" "A's change, applied"
as B show-b show "$id"
expect_rc 0 "B's show"
has show-b.out '^status: "?applied' "the note's status"
as B rollback-b rollback "$id" --yes --reason 'undone from the other clone'
expect_rc 0 "B's rollback"
expect_lines "$D/state/t" 'applied|undo' "what ran on the target"
as A log-a log
has log-a.out "$id  rolled-back" "B's rollback note, after a fetch"
git --git-dir="$D/remote.git" log --format=%s runbook-notes >"$D/remote-log.out"
has remote-log.out 'team: rolled-back on t' "the rollback note on the remote"
has remote-log.out 'team: running on t' "the running note on the remote"
ff_only
end

begin remote-named-three-ways
setup || bad "setup failed"
as A apply-a apply team.yml -t t
expect_rc 0 "A's apply"
git init -q "$D/c" && git -C "$D/c" remote add team "$D/remote.git"
# a remote of the repository, by name
cd "$D/c" && rb by-name log --remote team
expect_rc 0 "log --remote team"
has by-name.out 'applied' "the change, fetched through remote 'team'"
rb_cmd by-env env RUNBOOK_REMOTE="file://$D/remote.git" "$RUNBOOK" log
expect_rc 0 "log with RUNBOOK_REMOTE=file://"
has by-env.out 'applied' "the change, fetched from a file:// URL"
rb nowhere log --remote "$D/nothing-here.git"
expect_rc 0 "log with a remote that is not there"
has nowhere.err "warning: notes remote '$D/nothing-here.git': cannot fetch: no git repository at" "a warning naming the remote"
cd "$D" || bad "cd"
end

# race ROUNDS NAP: ROUNDS times A and B apply to target t at the same
# instant; exactly one runs and the other exits 4 naming the holder.
race() {
	local rounds=$1 nap=$2 i pa pb ra rbc wins_a=0 wins_b=0 fails=0
	for i in $(seq 1 "$rounds"); do
		exec 9>"$D/gate"
		flock 9
		bg_as A "ra$i" apply team.yml -t t -e nap="$nap"
		pa=$BGPID
		bg_as B "rb$i" apply team.yml -t t -e nap="$nap"
		pb=$BGPID
		sleep 0.2
		flock -u 9
		exec 9>&-
		wait_bg "$pa" $((60 * SLOW)); ra=$RC
		wait_bg "$pb" $((60 * SLOW)); rbc=$RC
		if [ "$ra" = 0 ] && [ "$rbc" = 4 ] &&
			grep -q 'locked on the notes remote .* by Op A <op-a@example.com> on machine .* (pid [0-9]*), change 2.*, since 2' "$D/rb$i.err"; then
			wins_a=$((wins_a + 1))
		elif [ "$rbc" = 0 ] && [ "$ra" = 4 ] &&
			grep -q 'locked on the notes remote .* by Op B <op-b@example.com> on machine .* (pid [0-9]*), change 2.*, since 2' "$D/ra$i.err"; then
			wins_b=$((wins_b + 1))
		else
			fails=$((fails + 1))
			diag "round $i: A exit $ra, B exit $rbc"
			show "$D/ra$i.err" 3
			show "$D/rb$i.err" 3
		fi
	done
	diag "A won $wins_a times, B $wins_b times"
	check [ "$fails" = 0 ] || bad "$fails of $rounds rounds did not end with one run and one exit 4 naming the holder"
	check [ "$(grep -c applied "$D/state/t")" = "$rounds" ] ||
		bad "expected $rounds runs of the step, found $(grep -c applied "$D/state/t")"
	check [ "$(remote_notes)" = "$rounds" ] ||
		bad "expected $rounds notes on the remote, found $(remote_notes)"
	ff_only
}

begin race-one-target-20-times
setup || bad "setup failed"
race 20 1
end

begin race-two-targets-rebuilds
setup || bad "setup failed"
for i in $(seq 1 10); do
	exec 9>"$D/gate"
	flock 9
	bg_as A "ta$i" apply team.yml -t t
	pa=$BGPID
	bg_as B "tb$i" apply team.yml -t u
	pb=$BGPID
	sleep 0.1
	flock -u 9
	exec 9>&-
	wait_bg "$pa" $((30 * SLOW)); ra=$RC
	wait_bg "$pb" $((30 * SLOW)); rbc=$RC
	check [ "$ra:$rbc" = 0:0 ] || bad "round $i: expected both to apply, found A $ra, B $rbc"
done
check [ "$(remote_notes)" = 20 ] || bad "expected 20 notes on the remote, found $(remote_notes)"
# every final note made it: none is left running
n=$(git --git-dir="$D/remote.git" log --format=%s runbook-notes | grep -c ': applied on ')
check [ "$n" = 20 ] || bad "expected 20 applied notes in the remote's history, found $n"
as A status-a status
check [ "$(grep -c 'not on the notes remote' "$D/status-a.out")" = 0 ] ||
	bad "A has notes left unpushed"
ff_only
end

begin remote-down
setup || bad "setup failed"
as A apply-1 apply team.yml -t t
expect_rc 0 "the first apply"
id=$(cid apply-1)
mv "$D/remote.git" "$D/remote.away"
as A apply-down apply team.yml -t t
expect_rc 6 "apply with the remote gone"
has apply-down.err "notes remote '$D/remote.git'" "the remote's name"
has apply-down.err 'nothing was run' "that nothing ran"
expect_lines "$D/state/t" 'applied' "the step ran once, before"
as A rollback-down rollback "$id" --reason 'remote is down'
expect_rc 0 "rollback with the remote gone"
has rollback-down.err "warning: notes remote .*the team cannot see" "the warning"
has rollback-down.err "runbook sync" "how to push later"
expect_lines "$D/state/t" 'applied|undo' "the rollback ran"
as A status-down status
has status-down.out 'not on the notes remote yet' "status listing unpushed notes"
has status-down.out 'team: rolled-back on t' "the queued rollback note"
as A sync-down sync
expect_rc 6 "sync with the remote gone"
mv "$D/remote.away" "$D/remote.git"
as A sync-up sync
expect_rc 0 "sync once the remote is back"
has sync-up.err 'pushed .* team: rolled-back on t' "the note pushed"
as B log-b log
has log-b.out "$id  rolled-back" "B sees the queued note"
as A status-up status
hasnt status-up.out 'not on the notes remote' "unpushed notes after sync"
ff_only
end

begin kill-holder-unlock
setup || bad "setup failed"
nap=600.$$
exec 9>"$D/gate"
bg_as A hold apply team.yml -t t -e nap=$nap
exec 9>&-
# the lock and the running note reach the remote before the step runs
for _ in $(seq 1 $((200 * SLOW))); do
	[ -s "$D/state/t" ] && break
	sleep 0.05
done
check [ -s "$D/state/t" ] || bad "A's step never started"
subj=$(git --git-dir="$D/remote.git" log -1 --format=%s refs/runbook/locks/t 2>/dev/null)
check [ "$subj" = 'runbook lock: held t' ] || bad "expected the remote lock held, found '$subj'"
n=$(git --git-dir="$D/remote.git" log --format=%s runbook-notes 2>/dev/null | grep -c 'running on t')
check [ "$n" = 1 ] || bad "expected the running note on the remote, found $n"
# kill -9 of the runbook process (BGPID is the flock that started it:
# env, then runbook, is its one child)
holder=$(pgrep -P "$BGPID" | head -n 1)
check [ -n "$holder" ] || bad "A's runbook process not found"
kill -KILL "$holder" 2>/dev/null
wait_bg "$BGPID" 10
pkill -KILL -f -- "sleep $nap" 2>/dev/null
as B busy apply team.yml -t t
expect_rc 4 "B's apply while A's lock stands"
has busy.err 'locked on the notes remote .* by Op A <op-a@example.com>' "the holder"
has busy.err 'runbook unlock t --force --reason' "how to break it"
as B status-b status
has status-b.out 'target t is locked on the notes remote .* by Op A' "status showing the remote lock"
as B no-reason unlock t --force
expect_rc 2 "unlock without --reason"
as B unlock unlock t --force --reason "A's laptop died"
expect_rc 0 "unlock --force --reason"
has unlock.err 'broke the lock of target t .* held by Op A' "what was broken"
git --git-dir="$D/remote.git" log -1 --format=%B runbook-notes >"$D/record.out"
has record.out '^unlock: lock of target t broken by Op B' "who broke it, in the notes"
has record.out '^holder was: Op A <op-a@example.com>' "whose lock"
has record.out "^reason: A's laptop died" "why"
git --git-dir="$D/remote.git" log -1 --format=%B refs/runbook/locks/t >"$D/lockref.out"
has lockref.out '^broken_by: Op B' "the breaker, on the lock ref"
as B blocked apply team.yml -t t
expect_rc 4 "apply while A's change still reads running"
id=$(cid hold)
has blocked.err "change $id still running according to its note" "the running note"
has blocked.err "runbook rollback $id" "how to finish it"
as B finish rollback "$id" --yes --reason 'A is gone'
check [ "$RC" = 0 ] || [ "$RC" = 3 ] || bad "rollback of A's change: expected exit 0 or 3, found $RC"
as B apply-b apply team.yml -t t
expect_rc 0 "B's apply once A's change is finished"
ff_only
end

# ------------------------------------------------------------------ over SSH

begin ssh-two-clones
if ! ssh_homes; then
	bad "sshd or ssh-agent did not start: $(tail -n 3 "$tmp/sshd-start.log" | paste -sd' ' -)"
else
	setup "$SSH_URL" || bad "setup failed"
	as A apply-a apply team.yml -t t
	expect_rc 0 "A's apply over SSH (ssh-agent)"
	id=$(cid apply-a)
	check [ "$(remote_notes)" = 1 ] || bad "expected 1 note on the remote, found $(remote_notes)"
	as B log-b log
	has log-b.out "$id  applied" "A's change, fetched over SSH with B's key file"
	as B show-b show "$id"
	has show-b.out '^status: "?applied' "the note's status"
	as B rollback-b rollback "$id" --yes --reason 'undone from the other clone'
	expect_rc 0 "B's rollback over SSH"
	expect_lines "$D/state/t" 'applied|undo' "what ran on the target"
	as A log-a log
	has log-a.out "$id  rolled-back" "B's rollback note, after a fetch"
	ff_only
fi
end

begin ssh-race-one-target-20-times
if ! ssh_homes; then
	bad "sshd did not start"
else
	setup "$SSH_URL" || bad "setup failed"
	race 20 $((2 + SLOW / 5))
fi
end

begin ssh-down-mid-change
if ! ssh_homes; then
	bad "sshd did not start"
else
	setup "$SSH_URL" || bad "setup failed"
	exec 9>"$D/gate"
	bg_as A mid apply team.yml -t t -e nap=$((3 * SLOW))
	exec 9>&-
	pa=$BGPID
	for _ in $(seq 1 $((200 * SLOW))); do
		[ -s "$D/state/t" ] && break
		sleep 0.05
	done
	check [ -s "$D/state/t" ] || bad "A's step never started"
	sshd_stop
	wait_bg "$pa" $((60 * SLOW))
	expect_rc 0 "the change ends with the remote down"
	has mid.err 'warning: .*not on the notes remote .* yet' "the queued note"
	has mid.err "runbook sync" "how to push it"
	as A status-down status
	has status-down.out 'team: applied on t' "status listing the unpushed note"
	sshd_launch >"$D/sshd-again.log" 2>&1 || bad "sshd did not start again"
	as A sync sync
	expect_rc 0 "sync once sshd is back"
	has sync.err 'pushed .* team: applied on t' "the final note pushed"
	has sync.err 'released the lock of target t' "the lock left held, released"
	n=$(git --git-dir="$D/remote.git" log --format=%s runbook-notes | grep -c 'applied on t')
	check [ "$n" = 1 ] || bad "expected the applied note on the remote, found $n"
	as B apply-b apply team.yml -t t
	expect_rc 0 "B's apply after the sync"
	ff_only
fi
end

begin ssh-host-key-refused
if ! ssh_homes; then
	bad "sshd did not start"
else
	setup "$SSH_URL" || bad "setup failed"
	fp=$(ssh-keygen -lf "$SSHD_DIR/host_ed25519.pub" | cut -d' ' -f2)
	: >"$HOME_B/.ssh/known_hosts"
	as B unknown apply team.yml -t t
	expect_rc 6 "apply with an unknown host key"
	has_fixed unknown.err "$fp" "the host key's fingerprint"
	has unknown.err "notes remote '$SSH_URL'.*is not known" "the refusal naming the remote"
	check [ ! -e "$D/state/t" ] || bad "the step ran"
	ssh-keygen -q -t ed25519 -N '' -f "$D/other" -C other
	printf '[127.0.0.1]:%s %s\n' "$SSHD_PORT" "$(cut -d' ' -f1,2 "$D/other.pub")" >"$HOME_B/.ssh/known_hosts"
	as B changed apply team.yml -t t --accept-new-host-keys
	expect_rc 6 "apply with a changed host key, even with --accept-new-host-keys"
	has changed.err 'HOST KEY OF .* HAS CHANGED' "the changed key"
	has_fixed changed.err "$fp" "the new key's fingerprint"
	as B log-changed log
	has log-changed.err 'warning: .*HAS CHANGED' "log warning, going on with local notes"
	check [ ! -e "$D/state/t" ] || bad "the step ran"
	cp "$SSH_KNOWN" "$HOME_B/.ssh/known_hosts"
fi
end

finish
