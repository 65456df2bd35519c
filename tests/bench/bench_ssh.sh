#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2016 # '$1' is for the sh run by xargs
# Benchmark (prints figures; not a test): `runbook apply` over SSH against
# OpenSSH's client (and ansible-playbook where Debian's ansible is installed),
# all against real OpenSSH sshd daemons on 127.0.0.0/8.
#
#   1. 100 steps of `true` on one host:
#        runbook (one connection, one channel per step)
#        vs 100 sequential `ssh host true` over a ControlMaster that is up
#           before the clock starts                    target: ratio <= 0.5
#        vs one `ssh host` running the 100 commands in one remote shell
#           (the floor; ratio printed, no target)
#   2. 50 hosts (127.0.0.1-50) x 5 steps of `true`, runbook --forks 50
#        vs `xargs -P 50` over the hosts, each running one
#           `ssh host 'true; true; true; true; true'` (one connection per host,
#           5 commands each, as runbook does)            target: ratio <= 1.2
#        also printed, no target: the same xargs with libssh2's key exchange
#           (curve25519-sha256) instead of OpenSSH 9's sntrup761x25519, and
#           runbook at its default --forks 20; with SEQ_CONNS=1 also (one run)
#           xargs -P 50 over hosts each running 5 sequential `ssh host true`
#   3. the same two workloads with ansible-playbook (pipelining on, forks 50),
#      only if `ansible-playbook` is installed; otherwise skipped
#   4. peak RSS of runbook for 200 hosts (127.0.0.1-200) x 3 steps,
#      /usr/bin/time -v, at the default --forks 20 and at --forks 200
#                                                       target: < 100 MB
#
# Timed runs alternate between the tools; each figure is the median of RUNS
# runs (min-max in brackets). The harness sshd (tests/e2e/lib/sshd.sh) serves
# 127.0.0.1-3; further daemons on the same port and host key serve
# 127.0.0.4-200, at most 16 ListenAddress each (OpenSSH's limit).
# Exit 0 unless a run failed (its stderr is printed, exit 1).
#   RUNBOOK=build/runbook [SEQ_CONNS=1] bash tests/bench/bench_ssh.sh [RUNS]
set -euo pipefail
RUNBOOK=$(realpath "${RUNBOOK:-build/runbook}")
RUNS=${1:-5}
ANSIBLE_RUNS=$((RUNS < 3 ? RUNS : 3))
N1=100          # workload 1: steps on one host
H2=50 N2=5      # workload 2: hosts x steps
H4=200 N4=3     # workload 4: hosts x steps
RSS_LIMIT_KB=$((100 * 1024))
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

load0=$(cut -d' ' -f1-3 /proc/loadavg)
work=$(mktemp -d)
export HOME=$work/home
mkdir -p "$HOME"
unset SSH_AUTH_SOCK
extra_pids=()
cm_pid=
cleanup() {
	set +e
	[ -n "$cm_pid" ] && kill "$cm_pid" 2>/dev/null
	local p
	for p in "${extra_pids[@]}"; do
		pkill -KILL -P "$p" 2>/dev/null
		kill "$p" 2>/dev/null
	done
	declare -F sshd_stop >/dev/null && sshd_stop
	for p in "${extra_pids[@]}"; do
		for _ in $(seq 1 50); do
			kill -0 "$p" 2>/dev/null || break
			sleep 0.05
		done
		kill -KILL "$p" 2>/dev/null
	done
	rm -rf "$work"
}
trap cleanup EXIT

# shellcheck source=../e2e/lib/sshd.sh
. "$here/../e2e/lib/sshd.sh"
sshd_start "$work/sshd" || { echo "bench_ssh: sshd did not start" >&2; exit 1; }
PORT=$SSHD_PORT

addr() { echo "127.0.$(($1 / 256)).$(($1 % 256))"; }

# Daemons for 127.0.0.4..H4, same port, host key and authorized_keys as the
# harness daemon, same settings.
start_group() {	# index first last
	local g=$1 first=$2 last=$3 i cfg=$work/sshd/sshd-$1.config
	{
		echo "Port $PORT"
		for ((i = first; i <= last; i++)); do echo "ListenAddress $(addr "$i")"; done
		cat <<CFG
HostKey $SSHD_DIR/host_ed25519
PidFile $SSHD_DIR/sshd-$g.pid
AuthorizedKeysFile $SSHD_DIR/authorized_keys
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin prohibit-password
MaxStartups 200:30:400
MaxSessions 50
SetEnv SHLVL=1
LogLevel ERROR
CFG
	} >"$cfg"
	/usr/sbin/sshd -f "$cfg" -E "$SSHD_DIR/sshd-$g.log" || {
		cat "$SSHD_DIR/sshd-$g.log" >&2
		return 1
	}
	for i in $(seq 1 100); do
		if [ -s "$SSHD_DIR/sshd-$g.pid" ]; then
			extra_pids+=("$(cat "$SSHD_DIR/sshd-$g.pid")")
			break
		fi
		sleep 0.05
	done
	for i in $(seq 1 100); do
		ssh-keyscan -p "$PORT" "$(addr "$first")" >/dev/null 2>&1 && return 0
		sleep 0.05
	done
	echo "bench_ssh: sshd for $(addr "$first")-$(addr "$last") did not start; log:" >&2
	cat "$SSHD_DIR/sshd-$g.log" >&2
	return 1
}
g=0
for ((first = 4; first <= H4; first += 16)); do
	last=$((first + 15 < H4 ? first + 15 : H4))
	start_group "$g" "$first" "$last" || exit 1
	g=$((g + 1))
done

# One known_hosts for every address; one ssh client config.
KNOWN=$work/known_hosts
hostkey=$(cut -d' ' -f1,2 "$SSHD_DIR/host_ed25519.pub")
for ((i = 1; i <= H4; i++)); do
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

# Runbook files.
write_runbook() {	# file hosts steps
	local i
	{
		printf 'version: 1\nname: bench\nowner: bench <b@example.com>\n'
		printf 'reason: benchmark\nexpected: all true\n'
		printf 'targets:\n  bench:\n    identity: %s\n    hosts:\n' "$SSH_KEY"
		for ((i = 1; i <= $2; i++)); do
			printf '      - "%s@%s:%s"\n' "$SSH_USER" "$(addr "$i")" "$PORT"
		done
		printf 'steps:\n'
		for ((i = 0; i < $3; i++)); do
			printf '  - name: s%d\n    run: "true"\n    rollback: none\n' "$i"
		done
	} >"$1"
	"$RUNBOOK" validate -q "$1"
}
write_runbook "$work/w1.yml" 1 "$N1"
write_runbook "$work/w2.yml" "$H2" "$N2"
write_runbook "$work/w4.yml" "$H4" "$N4"
rb_apply() {	# file [options]
	local f=$1
	shift
	"$RUNBOOK" apply -q -t bench --known-hosts "$KNOWN" --notes "$work/notes" "$@" "$f"
}

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
		cat "$work/out" "$work/err" >&2
		exit 1
	fi
	echo $(((t1 - t0) / 1000)) >>"$work/$label.us"
}
# median (min-max) in ms of LABEL's runs
stat() {
	sort -n "$work/$1.us" | awk '{ a[NR] = $1 } END {
		m = NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2
		printf "%8.1f ms  (%.1f-%.1f, %d runs)", m / 1000, a[1] / 1000, a[NR] / 1000, NR }'
}
med() {
	sort -n "$work/$1.us" | awk '{ a[NR] = $1 } END {
		print NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
ratio() {	# text a b target(or -)
	awk -v t="$1" -v a="$(med "$2")" -v b="$(med "$3")" -v lim="$4" 'BEGIN {
		r = a / b
		if (lim == "-") printf "   %-62s %5.2f (no target)\n", t, r
		else printf "   %-62s %5.2f (target <= %s) %s\n", t, r, lim, r <= lim + 0 ? "PASS" : "MISS" }'
}
line() { printf '   %-62s %s\n' "$1" "$(stat "$2")"; }

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
	for ((i = 0; i < N1; i++)); do ssh -F "$SSHCFG" "${cm_opts[@]}" "$H1" true; done
}
script1=$(for ((i = 0; i < N1; i++)); do echo true; done)
ssh_one_shell() { ssh -F "$SSHCFG" "$H1" "$script1"; }

rb_apply "$work/w1.yml" >/dev/null 2>&1 || true	# warm-up (page cache, notes repo)
for ((r = 0; r < RUNS; r++)); do
	timed w1_rb rb_apply "$work/w1.yml"
	timed w1_cm ssh_cm_loop
	timed w1_floor ssh_one_shell
done
ssh -F "$SSHCFG" "${cm_opts[@]}" -O exit "$H1" 2>/dev/null || true
cm_pid=

# ---------------------------------------------------------------- 2
hosts2=$(for ((i = 1; i <= H2; i++)); do addr "$i"; done)
cmds2=$(for ((i = 0; i < N2; i++)); do printf 'true; '; done)
export N2 cmds2
xargs_one_conn() {
	xargs -P "$H2" -n 1 sh -c 'exec ssh -F "$SSHCFG" "$1" "$cmds2"' _ <<<"$hosts2"
}
# The same with the key exchange libssh2 negotiates (curve25519-sha256):
# OpenSSH 9.x defaults to sntrup761x25519-sha512, which costs the client
# and the server far more CPU per connection.
xargs_one_conn_x25519() {
	xargs -P "$H2" -n 1 sh -c 'exec ssh -F "$SSHCFG" -o KexAlgorithms=curve25519-sha256 "$1" "$cmds2"' _ <<<"$hosts2"
}
xargs_seq_conns() {
	xargs -P "$H2" -n 1 sh -c 'i=0; while [ $i -lt "$N2" ]; do
		ssh -F "$SSHCFG" "$1" true || exit 1; i=$((i + 1)); done' _ <<<"$hosts2"
}
rb_apply "$work/w2.yml" --forks "$H2" >/dev/null 2>&1 || true	# warm-up
for ((r = 0; r < RUNS; r++)); do
	timed w2_rb rb_apply "$work/w2.yml" --forks "$H2"
	timed w2_xargs xargs_one_conn
	timed w2_rb20 rb_apply "$work/w2.yml"
	timed w2_xargs_x xargs_one_conn_x25519
done
# 250 connections take ~30 s on 2 cores: one run, only when asked
if [ "${SEQ_CONNS:-0}" = 1 ]; then timed w2_xargs5 xargs_seq_conns; fi

# ---------------------------------------------------------------- 3
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
	play() {	# tasks
		local i
		printf -- '- hosts: bench\n  gather_facts: false\n  tasks:\n'
		for ((i = 0; i < $1; i++)); do
			printf '    - name: s%d\n      ansible.builtin.command: "true"\n' "$i"
		done
	}
	inv 1 >"$ad/inv1"
	inv "$H2" >"$ad/inv2"
	play "$N1" >"$ad/play1.yml"
	play "$N2" >"$ad/play2.yml"
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
		timed a2 ansible_run "$ad/inv2" "$ad/play2.yml"
	done
fi

# ---------------------------------------------------------------- 4
rss() {	# label [options]
	local label=$1 rc=0
	shift
	/usr/bin/time -v -o "$work/time.$label" "$RUNBOOK" apply -q -t bench \
		--known-hosts "$KNOWN" --notes "$work/notes" "$@" "$work/w4.yml" \
		>"$work/out" 2>"$work/err" || rc=$?
	if [ "$rc" -ne 0 ]; then
		echo "bench_ssh: runbook apply of $H4 hosts x $N4 steps $* failed (exit $rc)" >&2
		cat "$work/out" "$work/err" "$work/time.$label" >&2
		exit 1
	fi
	sed -n 's/.*Maximum resident set size (kbytes): *//p' "$work/time.$label"
}
rss20=$(rss f20)
rss200=$(rss f200 --forks "$H4")
wall() { sed -n 's/.*Elapsed (wall clock) time (h:mm:ss or m:ss): *//p' "$work/time.$1"; }

# ---------------------------------------------------------------- report
echo "runbook over SSH: $("$RUNBOOK" --version | head -1) ($("$RUNBOOK" --version | grep -o 'libssh2 [0-9.]*')); $(ssh -V 2>&1 | cut -d, -f1); $(nproc) cores"
echo "sshd on 127.0.0.1-$H4:$PORT; times: median (min-max) of the runs, tools interleaved"
echo "load average at start: $load0 (figures are only meaningful on an otherwise idle machine)"
echo
echo "1. $N1 steps of true on one host ($H1)"
line "runbook apply (1 connection, $N1 channels)" w1_rb
line "ssh ControlMaster: $N1 x 'ssh host true' (master up first)" w1_cm
line "one ssh, $N1 x true in one remote shell (floor)" w1_floor
ratio "ratio runbook / ControlMaster" w1_rb w1_cm 0.5
ratio "ratio runbook / one-shell floor" w1_rb w1_floor -
echo
echo "2. $H2 hosts x $N2 steps of true (127.0.0.1-$H2)"
line "runbook apply --forks $H2 (1 connection/host, $N2 channels)" w2_rb
line "runbook apply (default --forks 20)" w2_rb20
line "xargs -P $H2 ssh: 1 ssh/host running 'true; x$N2' (default kex)" w2_xargs
line "  same, -o KexAlgorithms=curve25519-sha256 (libssh2's kex)" w2_xargs_x
[ -s "$work/w2_xargs5.us" ] &&
	line "xargs -P $H2: $N2 sequential 'ssh host true'/host (info)" w2_xargs5
ratio "ratio runbook --forks $H2 / xargs ssh (default kex)" w2_rb w2_xargs 1.2
ratio "ratio runbook --forks $H2 / xargs ssh (curve25519, same kex)" w2_rb w2_xargs_x 1.2
[ -s "$work/w2_xargs5.us" ] &&
	ratio "ratio runbook --forks $H2 / xargs, $N2 connections per host" w2_rb w2_xargs5 -
echo
if $have_ansible; then
	echo "3. ansible-playbook $(ansible-playbook --version | head -1 | grep -o '[0-9][0-9.]*' | head -1) (pipelining on, ControlPersist, forks $H2)"
	line "ansible-playbook: $N1 tasks on 1 host" a1
	line "ansible-playbook: $H2 hosts x $N2 tasks" a2
	ratio "ratio runbook / ansible ($N1 steps, 1 host)" w1_rb a1 -
	ratio "ratio runbook --forks $H2 / ansible ($H2 x $N2)" w2_rb a2 -
else
	echo "3. ansible-playbook: skipped (not installed)"
fi
echo
echo "4. peak RSS of runbook apply, $H4 hosts x $N4 steps (127.0.0.1-$H4)"
awk -v a="$rss20" -v b="$rss200" -v lim="$RSS_LIMIT_KB" -v wa="$(wall f20)" -v wb="$(wall f200)" -v h="$H4" 'BEGIN {
	printf "   %-62s %6.1f MB  wall %s  (target < 100 MB) %s\n", "--forks 20 (default)", a / 1024, wa, a < lim ? "PASS" : "MISS"
	printf "   %-62s %6.1f MB  wall %s  (target < 100 MB) %s\n", "--forks " h, b / 1024, wb, b < lim ? "PASS" : "MISS"
}'
