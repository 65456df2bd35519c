# A real OpenSSH sshd on loopback for the SSH tests and benchmarks.
# Source it, then:
#
#   sshd_start DIR          host + user keys, known_hosts and an ssh config
#                           in DIR; sshd on a free port of 127.0.0.1-3;
#                           sets SSHD_PORT, SSHD_DIR, SSHD_PID, SSH_USER,
#                           SSH_KEY (user key), SSH_KNOWN (known_hosts with
#                           the host key for 127.0.0.1-3:port)
#   sshd_start_on DIR ADDR...
#                           the same, also listening on each ADDR (of
#                           127.0.0.0/8; SSHD_EXTRA is replaced) and with
#                           known_hosts lines for them
#   sshd_trust_also ADDR... known_hosts lines for more addresses (one that
#                           nothing listens on stands for a host that is down)
#   sshd_stop               stops it by pid (and its session children)
#   sshd_restart            same port, same keys (e.g. after a new host key)
#   sshd_kill_sessions      kill -9 every per-connection sshd, not the daemon
#
# SSHD_LISTEN_ALL=1 (benchmarks): one daemon for every address of
# 127.0.0.0/8 (1,000 hosts and more) instead: it listens on 0.0.0.0 and
# lets the user log in only from 127.0.0.0/8 (AllowUsers USER@127.0.0.0/8),
# with the test's own key; known_hosts still lists 127.0.0.1-3. Only inside
# a network namespace of its own whose one interface is lo (`unshare -n`,
# as tests/bench/bench_ssh.sh runs itself), so 0.0.0.0 is loopback only:
# sshd_start refuses otherwise.
#
# The daemon listens on 127.0.0.1, .2 and .3 only (PRODUCT's three hosts),
# logs to DIR/sshd.log, authenticates the user key from DIR/authorized_keys,
# and has `SetEnv SHLVL=1` so bash skips ~/.bashrc for its sessions (the rc
# file's cost would otherwise be in every remote command, for every tool).

sshd_free_port() {
	/usr/bin/python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

sshd_write_config() {
	local listen
	if [ -n "${SSHD_LISTEN_ALL:-}" ]; then
		if [ "$(ip -o link | cut -d: -f2 | tr -d " ")" != lo ]; then
			echo "sshd.sh: SSHD_LISTEN_ALL needs a network namespace with lo only (unshare -n)" >&2
			return 1
		fi
		listen="ListenAddress 0.0.0.0
AllowUsers $(id -un)@127.0.0.0/8"
	else
		listen="ListenAddress 127.0.0.1
ListenAddress 127.0.0.2
ListenAddress 127.0.0.3"
	fi
	cat > "$SSHD_DIR/sshd_config" <<CFG
Port $SSHD_PORT
$listen
HostKey $SSHD_DIR/host_ed25519
PidFile $SSHD_DIR/sshd.pid
AuthorizedKeysFile $SSHD_DIR/authorized_keys
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin prohibit-password
MaxStartups ${SSHD_MAX_STARTUPS:-200:30:400}
MaxSessions 50
SetEnv ${SSHD_SETENV:-SHLVL=1}
LogLevel ERROR
${SSHD_EXTRA:-}
CFG
}

sshd_start() {
	SSHD_DIR=$1
	mkdir -p "$SSHD_DIR" /run/sshd 2>/dev/null
	chmod 700 "$SSHD_DIR"
	[ -f "$SSHD_DIR/host_ed25519" ] ||
		ssh-keygen -q -t ed25519 -N '' -f "$SSHD_DIR/host_ed25519" -C host || return 1
	[ -f "$SSHD_DIR/id_ed25519" ] ||
		ssh-keygen -q -t ed25519 -N '' -f "$SSHD_DIR/id_ed25519" -C user || return 1
	cp "$SSHD_DIR/id_ed25519.pub" "$SSHD_DIR/authorized_keys"
	SSH_USER=$(id -un)
	SSH_KEY=$SSHD_DIR/id_ed25519
	SSH_KNOWN=$SSHD_DIR/known_hosts
	SSHD_PORT=${SSHD_PORT:-$(sshd_free_port)}
	sshd_write_config
	sshd_trust
	sshd_launch
}

# known_hosts with the current host key for the three addresses
sshd_trust() {
	: > "$SSH_KNOWN"
	sshd_trust_also 127.0.0.1 127.0.0.2 127.0.0.3
}

# known_hosts lines for more addresses, with the current host key
sshd_trust_also() {
	local key a
	key=$(cut -d' ' -f1,2 "$SSHD_DIR/host_ed25519.pub") || return 1
	for a; do
		printf '[%s]:%s %s\n' "$a" "$SSHD_PORT" "$key" >> "$SSH_KNOWN"
	done
}

sshd_start_on() {
	local dir=$1 a
	shift
	SSHD_EXTRA=
	for a; do
		case $a in
		127.0.0.[123]) ;;	# listened on already
		*) SSHD_EXTRA+="ListenAddress $a"$'\n' ;;
		esac
	done
	sshd_start "$dir" && sshd_trust_also "$@"
}

sshd_launch() {
	local i
	rm -f "$SSHD_DIR/sshd.pid"
	/usr/sbin/sshd -f "$SSHD_DIR/sshd_config" -E "$SSHD_DIR/sshd.log" || return 1
	for i in $(seq 1 100); do
		[ -s "$SSHD_DIR/sshd.pid" ] && SSHD_PID=$(cat "$SSHD_DIR/sshd.pid") &&
			ssh-keyscan -p "$SSHD_PORT" 127.0.0.1 >/dev/null 2>&1 && return 0
		sleep 0.05
	done
	echo "sshd did not start; log:" >&2
	cat "$SSHD_DIR/sshd.log" >&2
	return 1
}

sshd_kill_sessions() {
	[ -n "${SSHD_PID:-}" ] && pkill -KILL -P "$SSHD_PID" 2>/dev/null
	return 0
}

# The listener is frozen first, so no session can be accepted between the
# sessions' end and its own: a client that reconnects in that gap must find
# the host gone, as it would be.
sshd_stop() {
	if [ -n "${SSHD_PID:-}" ]; then
		kill -STOP "$SSHD_PID" 2>/dev/null
		pkill -KILL -P "$SSHD_PID" 2>/dev/null
		kill -KILL "$SSHD_PID" 2>/dev/null
		kill -CONT "$SSHD_PID" 2>/dev/null
		for _ in $(seq 1 50); do
			kill -0 "$SSHD_PID" 2>/dev/null || break
			sleep 0.05
		done
	fi
	SSHD_PID=
}

sshd_restart() {
	sshd_stop
	sshd_write_config
	sshd_launch
}
