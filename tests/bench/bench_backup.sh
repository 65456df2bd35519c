#!/usr/bin/env bash
# shellcheck disable=SC2016 # the sh -c text is for the sh it runs
# Benchmark (prints figures; not a test): what `backup: [DIR]` adds to a step
# (docs/backup.md), DIR a 100 MB directory of many files of mixed sizes,
#   locally           next to `cp -a DIR DEST`                  target <= 1.3
#   over loopback SSH next to `tar -cf - DIR | ssh HOST tar -xf -`  <= 1.3
# (tests/e2e/lib/sshd.sh; its sshd has `SetEnv SHLVL=1`, so bash skips
# ~/.bashrc for every tool alike).
#
# The cost of the backup is the wall time of `runbook apply` of one step
# `true` with the backup, minus the same apply without it (A/B pairs, median
# of RUNS each); cp -a and tar | ssh tar are timed in the same rounds. The
# page cache is warm for all of them (DIR is read once first); every copy is
# removed between runs, outside the clock.
#
#   RUNBOOK=build/runbook bash tests/bench/bench_backup.sh [RUNS] [MB]
set -euo pipefail
RUNBOOK=$(realpath "${RUNBOOK:-build/runbook}")
RUNS=${1:-5}
MB=${2:-100}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
load0=$(cut -d' ' -f1-3 /proc/loadavg)
work=$(mktemp -d)
export HOME=$work/home
mkdir -p "$HOME/.ssh" && chmod 700 "$HOME/.ssh"
unset SSH_AUTH_SOCK
cleanup() {
	set +e
	declare -F sshd_stop >/dev/null && sshd_stop
	rm -rf "$work"
}
trap cleanup EXIT
# shellcheck source=../e2e/lib/sshd.sh
. "$here/../e2e/lib/sshd.sh"
sshd_start "$work/sshd" >/dev/null || { echo "bench_backup: sshd did not start" >&2; exit 1; }
HOST=$SSH_USER@127.0.0.1:$SSHD_PORT
ssh_opts=(-o BatchMode=yes -o UserKnownHostsFile="$SSH_KNOWN" -i "$SSH_KEY" -p "$SSHD_PORT")

# DIR: MB of files: 1/2 in 5 MB files, 1/4 in 256 KiB files, 1/4 in files
# of 1-16 KiB, in subdirectories of 100 files, with a few symlinks
src=$work/src
python3 - "$src" "$MB" <<'EOF'
import os, random, sys
root, mb = sys.argv[1], int(sys.argv[2])
random.seed(7)
total, n = mb << 20, 0
def put(size):
    global n
    d = os.path.join(root, "d%03d" % (n // 100))
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "f%05d" % n), "wb") as f:
        f.write(os.urandom(size))
    n += 1
left = total // 2
while left > 0: put(min(5 << 20, left)); left -= 5 << 20
left = total // 4
while left > 0: put(256 << 10); left -= 256 << 10
left = total // 4
while left > 0:
    s = random.randint(1 << 10, 16 << 10); put(s); left -= s
for i in range(10):
    os.symlink("f%05d" % i, os.path.join(root, "d000", "link%d" % i))
print("bench_backup: %d files, %d MB in %s" % (n, mb, root), file=sys.stderr)
EOF
tar -cf - -C "$src" . | cat >/dev/null	# warm the page cache

git init -q "$work/notes"
cd "$work/notes"
# runbook_file NAME BACKUP HOST: one step `true`, with a backup of src or not
runbook_file() {
	printf 'version: 1\nname: %s\nowner: Bench <bench@example.com>\n' "$1"
	printf 'reason: benchmark\nexpected: it runs\nbackup_dir: %s\n' "$work/bk"
	if [ -n "$3" ]; then
		printf 'targets:\n  prod:\n    hosts: ["%s"]\n    identity: %s\n' "$3" "$SSH_KEY"
	fi
	printf 'steps:\n  - name: step\n    run: "true"\n'
	if [ "$2" = yes ]; then
		printf '    backup: [%s]\n    rollback: restore\n' "$src"
	else
		printf '    rollback: none\n'
	fi
}
runbook_file local-bk yes "" >local-bk.yml
runbook_file local-none no "" >local-none.yml
runbook_file ssh-bk yes "$HOST" >ssh-bk.yml
runbook_file ssh-none no "$HOST" >ssh-none.yml

# t CMD...: wall ms of CMD (its output to $work/last.*; a failure stops)
t() {
	local t0 t1
	t0=$(date +%s%N)
	if ! "$@" >"$work/last.out" 2>"$work/last.err"; then
		echo "bench_backup: failed: $*" >&2
		tail -n 5 "$work/last.err" >&2
		exit 1
	fi
	t1=$(date +%s%N)
	echo $(((t1 - t0) / 1000000))
}
median() { sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
clean() { rm -rf "$work/bk" "$work/cp" "$work/tarssh"; sync; }

declare -A ms
for k in local_bk local_none cp ssh_bk ssh_none tarssh; do ms[$k]=; done
for _ in $(seq 1 "$RUNS"); do
	clean; ms[local_bk]+="$(t "$RUNBOOK" apply local-bk.yml) "
	clean; ms[local_none]+="$(t "$RUNBOOK" apply local-none.yml) "
	clean; ms[cp]+="$(t cp -a "$src" "$work/cp") "
	clean; ms[ssh_bk]+="$(t "$RUNBOOK" apply ssh-bk.yml -t prod --known-hosts "$SSH_KNOWN") "
	clean; ms[ssh_none]+="$(t "$RUNBOOK" apply ssh-none.yml -t prod --known-hosts "$SSH_KNOWN") "
	clean; mkdir -p "$work/tarssh"
	ms[tarssh]+="$(t sh -c 's=$1 d=$2; shift 2; tar -C "$s" -cf - . | ssh "$@" tar -C "$d" -xpf -' _ \
		"$src" "$work/tarssh" "${ssh_opts[@]}" "$SSH_USER@127.0.0.1") "
done
clean
declare -A med
for k in "${!ms[@]}"; do
	med[$k]=$(printf '%s\n' ${ms[$k]} | median)
done
bk_local=$((med[local_bk] - med[local_none]))
bk_ssh=$((med[ssh_bk] - med[ssh_none]))
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
echo "bench_backup: ${MB} MB directory, median of $RUNS runs, load before $load0, after $(cut -d' ' -f1-3 /proc/loadavg)"
printf '  local: apply with backup %5d ms, without %4d ms: backup %5d ms; cp -a %5d ms; ratio %s (target <= 1.3)\n' \
	"${med[local_bk]}" "${med[local_none]}" "$bk_local" "${med[cp]}" "$(ratio "$bk_local" "${med[cp]}")"
printf '  ssh:   apply with backup %5d ms, without %4d ms: backup %5d ms; tar | ssh tar %5d ms; ratio %s (target <= 1.3)\n' \
	"${med[ssh_bk]}" "${med[ssh_none]}" "$bk_ssh" "${med[tarssh]}" "$(ratio "$bk_ssh" "${med[tarssh]}")"
