#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2016 # '$1' is for the sh run by xargs
# Benchmark (prints figures; not a test): every figure of issue 17, runbook
# against its yardsticks in A/B pairs (A B A B ..., median of RUNS each),
# against one real OpenSSH sshd that serves every address of 127.0.0.0/8
# (tests/e2e/lib/sshd.sh, SSHD_LISTEN_ALL=1; docs/testing.md). It runs itself
# in a network namespace of its own (`unshare -n`, root), whose only
# interface is lo, so that sshd's 0.0.0.0 is loopback and nothing else.
#
#   1. 100 steps of /bin/true on one host:
#        runbook (one connection, one remote shell)
#        vs 100 x `ssh host /bin/true` over a ControlMaster that is up before
#           the clock starts                                target: <= 0.35
#        vs one `ssh host` running the 100 commands in one remote shell
#           (the floor)                                     target: <= 1.5
#        and the same with 1 step, for what a connection costs and what
#           each further step adds: (T100 - T1) / 99, for runbook, the
#           floor and Ansible
#        also printed: runbook with one channel per command
#           (RUNBOOK_SSH_CHANNELS=1, the transport before issue 17), and
#           with /bin/sh as the remote shell where bash would be used
#           (RUNBOOK_SSH_NOBASH=1, docs/ssh.md)
#   2. 50 hosts x 5 steps, runbook --forks 50
#        vs `xargs -P 50` over the hosts, each `ssh host '/bin/true; x5'`
#                                                           target: <= 1.0
#        and the same 50 hosts from an inventory (inventory.yml beside a
#        runbook without targets), each host with its own vars, the steps
#        `/bin/true {{ weight }} {{ zone }}`: vs the runbook with targets,
#        expected within noise (issue 14)
#   3. 1,000 hosts (127.0.0.1-127.0.3.232) x 5 steps, runbook --forks 100
#        vs `xargs -P 100 ssh host '/bin/true; x5'`          target: <= 1.0
#        (in 2 and 3, an ssh whose connection a loaded sshd refused, exit
#        255, is run once more, as runbook would fail the change instead)
#        runbook's peak RSS (/usr/bin/time -v)              target: < 150 MB
#   4. 100 local steps of /bin/true vs `sh -c /bin/true` x 100
#                                                           target: <= 1.15
#   5. ansible-playbook (Debian's ansible-core) on workloads 1, 2 and 4, only
#      if installed: ratio of whole runs, and of what each step adds on
#      one host (1 task against 100)                       target: >= 100x
#
# The machine's load moves every figure: compare figures of one run, and
# look at the load average printed with them.
#   RUNBOOK=build/runbook bash tests/bench/bench_ssh.sh [RUNS] [RUNS_1000]
#   SKIP_1000=1: leave out workload 3 (1,000 sessions: ~2 GB on the sshd side)
# Exit 0 unless a run failed (its stderr is printed, exit 1).
set -euo pipefail
if [ "$(ip -o link | cut -d: -f2 | tr -d " ")" != lo ]; then
	command -v unshare >/dev/null && unshare -n true 2>/dev/null || {
		echo "bench_ssh: needs unshare -n (util-linux, as root) for its loopback-only sshd" >&2
		exit 1
	}
	exec unshare -n bash -c 'ip link set lo up && exec bash "$0" "$@"' "$0" "$@"
fi
RUNBOOK=$(realpath "${RUNBOOK:-build/runbook}")
RUNS=${1:-5}
RUNS3=${2:-3}
ANSIBLE_RUNS=${ANSIBLE_RUNS:-1}
N1=100          # workload 1: steps on one host
H2=50 N2=5      # workload 2: hosts x steps
H3=1000 N3=5 F3=100     # workload 3: hosts x steps, forks
N4=100          # workload 4: local steps
RSS_LIMIT_KB=$((150 * 1024))
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

load0=$(cut -d' ' -f1-3 /proc/loadavg)
work=$(mktemp -d)
export HOME=$work/home
mkdir -p "$HOME"
unset SSH_AUTH_SOCK RUNBOOK_SSH_CHANNELS
cm_pid=
cleanup() {
	set +e
	[ -n "$cm_pid" ] && kill "$cm_pid" 2>/dev/null
	declare -F sshd_stop >/dev/null && sshd_stop
	rm -rf "$work"
}
trap cleanup EXIT

# One sshd for all of 127.0.0.0/8; 1,000 sessions at once need room.
# shellcheck source=../e2e/lib/sshd.sh
. "$here/../e2e/lib/sshd.sh"
SSHD_LISTEN_ALL=1 SSHD_MAX_STARTUPS=400:30:1000 \
	sshd_start "$work/sshd" || { echo "bench_ssh: sshd did not start" >&2; exit 1; }
PORT=$SSHD_PORT
HMAX=$((H3 > H2 ? H3 : H2))
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((HMAX + 256)) ]; then
	ulimit -n $((HMAX + 256)) 2>/dev/null ||
		echo "bench_ssh: ulimit -n is $(ulimit -n); workload 3 may run out of file descriptors" >&2
fi

addr() { echo "127.0.$(($1 / 256)).$(($1 % 256))"; }

# One known_hosts for every address; one ssh client config.
KNOWN=$work/known_hosts
hostkey=$(cut -d' ' -f1,2 "$SSHD_DIR/host_ed25519.pub")
for ((i = 1; i <= HMAX; i++)); do
	printf '[%s]:%s %s\n' "$(addr "$i")" "$PORT" "$hostkey"
done >"$KNOWN"
SSHCFG=$work/ssh_config
cat >"$SSHCFG" <<CFG
Host *
	Port $PORT
	User $SSH_USER
	IdentityFile $SSH_KEY
	IdentitiesOnly yes
	UserKnownHostsFile $KNOWN
	GlobalKnownHostsFile /dev/null
	StrictHostKeyChecking yes
	BatchMode yes
	ControlPath none
	LogLevel ERROR
CFG
export SSHCFG

# Runbook files: write_runbook FILE HOSTS STEPS (HOSTS 0: the local target)
write_runbook() {
	local i
	{
		printf 'version: 1\nname: bench\nowner: bench <b@example.com>\n'
		printf 'reason: benchmark\nexpected: all true\n'
		if [ "$2" -gt 0 ]; then
			printf 'targets:\n  bench:\n    identity: %s\n    hosts:\n' "$SSH_KEY"
			for ((i = 1; i <= $2; i++)); do
				printf '      - "%s@%s:%s"\n' "$SSH_USER" "$(addr "$i")" "$PORT"
			done
		fi
		printf 'steps:\n'
		for ((i = 0; i < $3; i++)); do
			printf '  - name: s%d\n    run: /bin/true\n    rollback: none\n' "$i"
		done
	} >"$1"
	"$RUNBOOK" validate -q "$1"
}
write_runbook "$work/w1.yml" 1 "$N1"
write_runbook "$work/w1one.yml" 1 1
write_runbook "$work/w2.yml" "$H2" "$N2"
write_runbook "$work/w3.yml" "$H3" "$N3"
write_runbook "$work/w4.yml" 0 "$N4"
# Workload 2 from an inventory with host vars: inv2/inventory.yml + inv2/w2i.yml
mkdir -p "$work/inv2"
{
	printf 'version: 1\ntargets:\n  bench:\n    identity: %s\n' "$SSH_KEY"
	printf '    vars: { zone: none }\n    hosts:\n'
	for ((i = 1; i <= H2; i++)); do
		printf '      - host: "%s@%s:%s"\n        vars: { weight: "%d", zone: z%d }\n' \
			"$SSH_USER" "$(addr "$i")" "$PORT" "$i" $((i % 3))
	done
} >"$work/inv2/inventory.yml"
{
	printf 'version: 1\nname: bench\nowner: bench <b@example.com>\n'
	printf 'reason: benchmark\nexpected: all true\nvars: { weight: "0" }\nsteps:\n'
	for ((i = 0; i < N2; i++)); do
		printf '  - name: s%d\n    run: /bin/true {{ weight }} {{ zone }}\n    rollback: none\n' "$i"
	done
} >"$work/inv2/w2i.yml"
"$RUNBOOK" validate -q "$work/inv2/w2i.yml"
rb_apply() {	# file [options]
	local f=$1
	shift
	"$RUNBOOK" apply -q -t bench --known-hosts "$KNOWN" --notes "$work/notes" "$@" "$f"
}
rb_channels() { RUNBOOK_SSH_CHANNELS=1 rb_apply "$@"; }
rb_nobash() { RUNBOOK_SSH_NOBASH=1 rb_apply "$@"; }
rb_local() { "$RUNBOOK" apply -q --notes "$work/notes-local" "$work/w4.yml"; }

# timed LABEL CMD...: appends the wall time in microseconds to $work/LABEL.us;
# a failure prints the command's stderr and ends the benchmark with exit 1.
now() { date +%s%N; }
timed() {
	local label=$1 t0 t1 rc=0
	shift
	t0=$(now)
	"$@" </dev/null >"$work/out" 2>"$work/err" || rc=$?
	t1=$(now)
	if [ "$rc" -ne 0 ]; then
		echo "bench_ssh: $label failed (exit $rc): $*" >&2
		tail -n 20 "$work/out" "$work/err" >&2
		exit 1
	fi
	echo $(((t1 - t0) / 1000)) >>"$work/$label.us"
}
# median (min-max) in ms of LABEL's runs
stat() {
	sort -n "$work/$1.us" | awk '{ a[NR] = $1 } END {
		m = NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2
		printf "%9.1f ms  (%.1f-%.1f, %d runs)", m / 1000, a[1] / 1000, a[NR] / 1000, NR }'
}
med() {
	sort -n "$work/$1.us" | awk '{ a[NR] = $1 } END {
		print NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
ratio_of() {	# text a b target(or -) [>=]: a / b, two figures
	awk -v t="$1" -v a="$2" -v b="$3" -v lim="$4" -v ge="${5:-}" 'BEGIN {
		r = (b > 0) ? a / b : 0
		if (lim == "-") printf "   %-64s %6.2f (no target)\n", t, r
		else if (ge != "") printf "   %-64s %6.1f (target >= %s) %s\n", t, r, lim, (r >= lim + 0) ? "PASS" : "MISS"
		else printf "   %-64s %6.2f (target <= %s) %s\n", t, r, lim, (r <= lim + 0) ? "PASS" : "MISS" }'
}
ratio() { ratio_of "$1" "$(med "$2")" "$(med "$3")" "${@:4}"; }	# text A B ...: of medians
# what each step adds, in ms: (median of LABEL100 - median of LABEL1) / (N1 - 1)
per_step() {
	awk -v a="$(med "$1")" -v b="$(med "$2")" -v n="$N1" 'BEGIN { printf "%.3f", (a - b) / (n - 1) / 1000 }'
}
step_line() { printf '   %-64s %9.3f ms\n' "$1" "$(per_step "$2" "$3")"; }
line() { printf '   %-64s %s\n' "$1" "$(stat "$2")"; }
have() { [ -s "$work/$1.us" ]; }

# ---------------------------------------------------------------- 1
H1=$(addr 1)
cm_opts=(-o ControlMaster=auto -o "ControlPath=$work/cm-%C" -o ControlPersist=600)
ssh -F "$SSHCFG" "${cm_opts[@]}" -fN "$H1" 2>"$work/err" || {
	echo "bench_ssh: ControlMaster to $H1 failed:" >&2
	cat "$work/err" >&2
	exit 1
}
cm_pid=$(ssh -F "$SSHCFG" "${cm_opts[@]}" -O check "$H1" 2>&1 | sed -n 's/.*pid=\([0-9]*\).*/\1/p')
ssh_cm_loop() {
	local i
	for ((i = 0; i < N1; i++)); do ssh -F "$SSHCFG" "${cm_opts[@]}" "$H1" /bin/true; done
}
script1=$(for ((i = 0; i < N1; i++)); do echo /bin/true; done)
ssh_one_shell() { ssh -F "$SSHCFG" "$H1" "$script1"; }
ssh_one() { ssh -F "$SSHCFG" "$H1" /bin/true; }

rb_apply "$work/w1.yml" >/dev/null 2>&1 || true	# warm-up (page cache, notes repo)
for ((r = 0; r < RUNS; r++)); do
	timed w1_rb rb_apply "$work/w1.yml"
	timed w1_cm ssh_cm_loop
	timed w1_floor ssh_one_shell
	timed w1_rbch rb_channels "$work/w1.yml"
	timed w1_rbsh rb_nobash "$work/w1.yml"
	timed w1one_rb rb_apply "$work/w1one.yml"
	timed w1one_floor ssh_one
done
ssh -F "$SSHCFG" "${cm_opts[@]}" -O exit "$H1" 2>/dev/null || true
cm_pid=

# ---------------------------------------------------------------- 2, 3
cmds=$(for ((i = 0; i < N2; i++)); do printf '/bin/true; '; done)
export cmds
xargs_ssh() {	# hosts parallel
	local i
	for ((i = 1; i <= $1; i++)); do addr "$i"; done |
		xargs -P "$2" -n 1 sh -c 'ssh -F "$SSHCFG" "$1" "$cmds" && exit 0
			[ $? = 255 ] && exec ssh -F "$SSHCFG" "$1" "$cmds"; exit 1' _
}
rb_apply "$work/w2.yml" --forks "$H2" >/dev/null 2>&1 || true	# warm-up
rb_apply "$work/inv2/w2i.yml" --forks "$H2" >/dev/null 2>&1 || true
for ((r = 0; r < RUNS; r++)); do
	timed w2_rb rb_apply "$work/w2.yml" --forks "$H2"
	timed w2_xargs xargs_ssh "$H2" "$H2"
	timed w2_inv rb_apply "$work/inv2/w2i.yml" --forks "$H2"
done

rss_apply() {	# label file [options]: rb_apply under /usr/bin/time -v
	local label=$1
	shift
	/usr/bin/time -v -o "$work/time.$label" "$RUNBOOK" apply -q -t bench \
		--known-hosts "$KNOWN" --notes "$work/notes" "$@"
	sed -n 's/.*Maximum resident set size (kbytes): *//p' "$work/time.$label" >>"$work/$label.rss"
}
if [ "${SKIP_1000:-0}" != 1 ]; then
	for ((r = 0; r < RUNS3; r++)); do
		timed w3_rb rss_apply w3 "$work/w3.yml" --forks "$F3"
		timed w3_xargs xargs_ssh "$H3" "$F3"
	done
fi

# ---------------------------------------------------------------- 4
sh_loop() {
	local i
	for ((i = 0; i < N4; i++)); do sh -c /bin/true; done
}
rb_local >/dev/null 2>&1 || true
for ((r = 0; r < RUNS; r++)); do
	timed w4_rb rb_local
	timed w4_sh sh_loop
done

# ---------------------------------------------------------------- 5
have_ansible=false
if command -v ansible-playbook >/dev/null 2>&1; then
	have_ansible=true
	ad=$work/ansible
	mkdir -p "$ad/cp"
	inv() {	# hosts
		local i
		echo "[bench]"
		for ((i = 1; i <= $1; i++)); do addr "$i"; done
		cat <<INV
[bench:vars]
ansible_port=$PORT
ansible_user=$SSH_USER
ansible_ssh_private_key_file=$SSH_KEY
ansible_ssh_common_args=-o UserKnownHostsFile=$KNOWN -o GlobalKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes -o IdentitiesOnly=yes
ansible_python_interpreter=/usr/bin/python3
INV
	}
	play() {	# tasks [hosts]
		local i
		printf -- '- hosts: %s\n  gather_facts: false\n  tasks:\n' "${2:-bench}"
		for ((i = 0; i < $1; i++)); do
			printf '    - name: s%d\n      ansible.builtin.command: /bin/true\n' "$i"
		done
	}
	inv 1 >"$ad/inv1"
	inv "$H2" >"$ad/inv2"
	printf 'localhost ansible_connection=local ansible_python_interpreter=/usr/bin/python3\n' >"$ad/invl"
	play "$N1" >"$ad/play1.yml"
	play 1 >"$ad/play1one.yml"
	play "$N2" >"$ad/play2.yml"
	play "$N4" localhost >"$ad/playl.yml"
	# Ansible's usual connection reuse (ControlPersist), with a fresh control
	# path per run so no run starts warm; its masters are closed after a run.
	export ANSIBLE_PIPELINING=True ANSIBLE_HOST_KEY_CHECKING=True \
		ANSIBLE_FORKS=$H2 ANSIBLE_NOCOLOR=1 ANSIBLE_RETRY_FILES_ENABLED=False \
		ANSIBLE_LOCAL_TEMP=$ad/tmp ANSIBLE_SSH_ARGS="-o ControlMaster=auto -o ControlPersist=60s"
	arun=0
	ansible_run() {	# inventory playbook
		local rc=0 sock cp=$ad/cp/$arun
		arun=$((arun + 1))
		mkdir -p "$cp"
		ANSIBLE_SSH_CONTROL_PATH_DIR=$cp ansible-playbook -i "$1" "$2" || rc=$?
		for sock in "$cp"/*; do
			[ -S "$sock" ] || continue
			ssh -F "$SSHCFG" -o "ControlPath=$sock" -O exit "$(addr 1)" >/dev/null 2>&1 || true
		done
		return "$rc"
	}
	for ((r = 0; r < ANSIBLE_RUNS; r++)); do
		timed a1 ansible_run "$ad/inv1" "$ad/play1.yml"
		timed a1one ansible_run "$ad/inv1" "$ad/play1one.yml"
		timed a2 ansible_run "$ad/inv2" "$ad/play2.yml"
		timed a4 ansible_run "$ad/invl" "$ad/playl.yml"
	done
fi

# ---------------------------------------------------------------- report
echo "runbook: $("$RUNBOOK" --version | head -1) ($("$RUNBOOK" --version | grep -o 'libssh2 [0-9.]*')); $(ssh -V 2>&1 | cut -d, -f1); $(nproc) cores"
echo "one sshd on 0.0.0.0:$PORT for 127.0.0.0/8; times: median (min-max), tools interleaved"
echo "load average at start: $load0, at the end: $(cut -d' ' -f1-3 /proc/loadavg) (figures mean little on a loaded machine)"
echo
echo "1. $N1 steps of /bin/true on one host ($H1)"
line "runbook apply (1 connection, 1 remote shell)" w1_rb
line "runbook apply, RUNBOOK_SSH_CHANNELS=1 (1 channel per step)" w1_rbch
line "runbook apply, RUNBOOK_SSH_NOBASH=1 (/bin/sh as remote shell)" w1_rbsh
line "ssh ControlMaster: $N1 x 'ssh host /bin/true' (master up first)" w1_cm
line "one ssh, $N1 x /bin/true in one remote shell (floor)" w1_floor
line "runbook apply, 1 step (connection, shell, step, note)" w1one_rb
line "one ssh running /bin/true once" w1one_floor
step_line "each further step, runbook: (100 steps - 1 step) / $((N1 - 1))" w1_rb w1one_rb
step_line "each further step, one-shell floor" w1_floor w1one_floor
ratio "ratio runbook / ControlMaster" w1_rb w1_cm 0.35
ratio "ratio runbook / one-shell floor" w1_rb w1_floor 1.5
ratio "ratio runbook, channel per step / one-shell floor" w1_rbch w1_floor -
ratio "ratio runbook, /bin/sh as remote shell / one-shell floor" w1_rbsh w1_floor -
echo
echo "2. $H2 hosts x $N2 steps of /bin/true"
line "runbook apply --forks $H2" w2_rb
line "xargs -P $H2 ssh host '/bin/true; x$N2'" w2_xargs
ratio "ratio runbook / xargs ssh" w2_rb w2_xargs 1.0
line "runbook apply --forks $H2, inventory with host vars" w2_inv
ratio "ratio inventory with host vars / targets in the runbook" w2_inv w2_rb -
ratio "ratio runbook (inventory) / xargs ssh" w2_inv w2_xargs 1.0
echo
if have w3_rb; then
	echo "3. $H3 hosts x $N3 steps of /bin/true ($(addr 1)-$(addr "$H3"))"
	line "runbook apply --forks $F3" w3_rb
	line "xargs -P $F3 ssh host '/bin/true; x$N3'" w3_xargs
	ratio "ratio runbook / xargs ssh" w3_rb w3_xargs 1.0
	sort -n "$work/w3.rss" | tail -n 1 | awk -v lim="$RSS_LIMIT_KB" '{
		printf "   %-64s %6.1f MB (target < 150 MB) %s\n", "runbook peak RSS (largest of the runs)", $1 / 1024, $1 < lim ? "PASS" : "MISS" }'
else
	echo "3. $H3 hosts: skipped (SKIP_1000=1)"
fi
echo
echo "4. $N4 local steps of /bin/true"
line "runbook apply (local)" w4_rb
line "sh -c /bin/true x $N4" w4_sh
ratio "ratio runbook / sh -c loop" w4_rb w4_sh 1.15
echo
if $have_ansible; then
	echo "5. ansible-playbook $(ansible-playbook --version 2>/dev/null | sed -n '1s/[^0-9]*\([0-9][0-9.]*\).*/\1/p') (pipelining, ControlPersist, forks $H2), $ANSIBLE_RUNS run(s)"
	line "ansible-playbook: $N1 tasks on 1 host" a1
	line "ansible-playbook: 1 task on 1 host" a1one
	step_line "each further task, ansible: (100 tasks - 1 task) / $((N1 - 1))" a1 a1one
	line "ansible-playbook: $H2 hosts x $N2 tasks" a2
	line "ansible-playbook: $N4 local tasks" a4
	ratio "ansible / runbook, $N1 steps on 1 host (x faster)" a1 w1_rb 100 ge
	ratio_of "ansible / runbook, each further step on 1 host (x faster)" \
		"$(per_step a1 a1one)" "$(per_step w1_rb w1one_rb)" 100 ge
	ratio "ansible / runbook, $H2 hosts x $N2 (x faster)" a2 w2_rb 100 ge
	ratio "ansible / runbook, $N4 local steps (x faster)" a4 w4_rb 100 ge
else
	echo "5. ansible-playbook: skipped (not installed; Debian: apt-get install ansible-core)"
fi
