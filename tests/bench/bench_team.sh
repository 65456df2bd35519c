#!/usr/bin/env bash
# Benchmark (prints figures; not a test): the time a team notes remote over
# loopback SSH adds to a one-step `runbook apply` (docs/team.md), next to the
# git command line doing the same transfers.
#
#   runbook's extra time = apply with runbook.remote set (ssh://) minus the
#       same apply without a remote. The extra work: one fetch (notes and
#       locks), four pushes (lock held, running note, final note, lock
#       released), one SSH connection each.
#   git's time = `git fetch` of the same two refspecs + four `git push`es of
#       one new commit each, in a clone of the same bare repository, over
#       OpenSSH's client (GIT_SSH_COMMAND with the test key and known_hosts).
#       Printed twice: OpenSSH's default key exchange (sntrup761x25519 in
#       OpenSSH 9) and curve25519-sha256, the one libssh2 1.10 uses.
#   target: runbook's extra time <= 1.2x git's (default key exchange).
#
# Each figure is the median of RUNS runs (min-max in brackets), runs
# alternating between the tools. The sshd is the e2e harness's
# (tests/e2e/lib/sshd.sh) on 127.0.0.1.
#   RUNBOOK=build/runbook bash tests/bench/bench_team.sh [RUNS]
# Exit 0 unless a run failed (its stderr is printed, exit 1).
set -euo pipefail
RUNBOOK=$(realpath "${RUNBOOK:-build/runbook}")
RUNS=${1:-7}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

load0=$(cut -d' ' -f1-3 /proc/loadavg)
work=$(mktemp -d)
export HOME=$work/home GIT_CONFIG_NOSYSTEM=1
mkdir -p "$HOME/.ssh"
unset SSH_AUTH_SOCK RUNBOOK_REMOTE RUNBOOK_NOTES
cleanup() {
	set +e
	declare -F sshd_stop >/dev/null && sshd_stop
	rm -rf "$work"
}
trap cleanup EXIT

# shellcheck source=../e2e/lib/sshd.sh
. "$here/../e2e/lib/sshd.sh"
sshd_start "$work/sshd" || { echo "bench_team: sshd did not start" >&2; exit 1; }
cp "$SSH_KEY" "$HOME/.ssh/id_ed25519"
cp "$SSH_KNOWN" "$HOME/.ssh/known_hosts"
git config --global user.name 'Bench Operator'
git config --global user.email bench@example.com
git config --global init.defaultBranch main

git init -q --bare "$work/remote.git"
URL="ssh://$SSH_USER@127.0.0.1:$SSHD_PORT$work/remote.git"

# the runbook clones: one with the remote, one without
for c in team solo; do
	git init -q "$work/$c"
	cat >"$work/$c/one.yml" <<'EOF'
version: 1
name: bench
owner: Bench Owner <owner@example.com>
reason: benchmark of the notes remote
expected: nothing changes
targets:
  t: { hosts: [local] }
steps:
  - name: one
    run: "true"
    rollback: "true"
EOF
done
git -C "$work/team" config runbook.remote "$URL"

# the git clone: one branch that grows by a commit (a small file, as a
# note is) before each push; its pushes go to refs of their own on the same
# remote (refs/bench/lock, refs/bench/notes), each a fast-forward
git init -q "$work/plain"
echo base >"$work/plain/note.md"
git -C "$work/plain" add note.md
git -C "$work/plain" commit -q -m base

fail() {
	echo "bench_team: $1 failed:" >&2
	cat "$work/err" >&2
	exit 1
}

now_ms() { date +%s%3N; }

run_apply() {	# clone
	(cd "$work/$1" && "$RUNBOOK" apply -q one.yml) >/dev/null 2>"$work/err" ||
		fail "runbook apply ($1)"
}

commit_push() {	# message ref
	echo "$1" >>note.md
	git commit -q -am "$1"
	git push -q "$URL" "HEAD:$2"
}

run_git() {	# ssh options...
	export GIT_SSH_COMMAND="ssh -i $SSH_KEY -o UserKnownHostsFile=$SSH_KNOWN -o IdentitiesOnly=yes $*"
	(
		cd "$work/plain"
		git fetch -q "$URL" '+refs/heads/runbook-notes:refs/remotes/team/notes' \
			'+refs/runbook/locks/*:refs/remotes/team/locks/*'
		commit_push 'lock held' refs/bench/lock
		commit_push 'running note' refs/bench/notes
		commit_push 'final note' refs/bench/notes
		commit_push 'lock released' refs/bench/lock
	) >/dev/null 2>"$work/err" || fail "git fetch + push"
	unset GIT_SSH_COMMAND
}

declare -a T_SOLO T_TEAM T_GIT T_GIT25519
for i in $(seq 1 "$RUNS"); do
	t0=$(now_ms); run_apply solo; T_SOLO+=($(($(now_ms) - t0)))
	t0=$(now_ms); run_apply team; T_TEAM+=($(($(now_ms) - t0)))
	t0=$(now_ms); run_git; T_GIT+=($(($(now_ms) - t0)))
	t0=$(now_ms); run_git -o KexAlgorithms=curve25519-sha256; T_GIT25519+=($(($(now_ms) - t0)))
done

median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
minmax() { printf '%s\n' "$@" | sort -n | awk 'NR==1{lo=$1} {hi=$1} END {print lo "-" hi}'; }

solo=$(median "${T_SOLO[@]}")
team=$(median "${T_TEAM[@]}")
g=$(median "${T_GIT[@]}")
g2=$(median "${T_GIT25519[@]}")
extra=$((team - solo))
printf 'bench_team: %d runs each, load before: %s\n' "$RUNS" "$load0"
printf '  runbook apply, no remote            %5d ms  [%s]\n' "$solo" "$(minmax "${T_SOLO[@]}")"
printf '  runbook apply, remote over SSH      %5d ms  [%s]\n' "$team" "$(minmax "${T_TEAM[@]}")"
printf '  runbook extra (fetch, lock, 2 notes, release)  %5d ms\n' "$extra"
printf '  git fetch + 4 git push (OpenSSH default kex)   %5d ms  [%s]\n' "$g" "$(minmax "${T_GIT[@]}")"
printf '  git fetch + 4 git push (curve25519-sha256)     %5d ms  [%s]\n' "$g2" "$(minmax "${T_GIT25519[@]}")"
awk -v e="$extra" -v g="$g" -v g2="$g2" 'BEGIN {
	r = g > 0 ? e / g : 0; r2 = g2 > 0 ? e / g2 : 0
	printf "  ratio runbook extra / git: %.2f (target <= 1.2: %s); vs curve25519 git: %.2f\n",
		r, r <= 1.2 ? "met" : "NOT met", r2 }'
