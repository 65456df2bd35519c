#!/usr/bin/env bash
# End-to-end checks of `backup: [PATH...]` and `rollback: restore`
# (docs/backup.md), locally and over SSH (tests/e2e/lib/sshd.sh):
#
# - a directory holding a symlink, a 0600 file and a binary file, a 0600
#   file on its own and a path that did not exist are backed up before the
#   step, and a failing verify's rollback restores them byte for byte, with
#   modes, owners and times (stat -c and cmp), and removes the path that did
#   not exist; the note records sizes and SHA-256s, never the content; the
#   backup is 0600 files in 0700 directories;
# - `runbook rollback` after the runbook file was deleted restores from the
#   same backup;
# - a tampered or deleted backup is refused (exit 3), nothing touched;
# - a backup into a full filesystem (a 64 KiB tmpfs as backup_dir) fails the
#   step before its command runs (needs root to mount; skipped otherwise).
#
#   RUNBOOK=build/runbook SRCDIR=. bash tests/e2e/backup.sh
#
# Output (tests/e2e/lib/harness.sh): `ok N - NAME` or `not ok N - NAME: why`
# per check, then `N passed, M failed`.
# shellcheck source=lib/harness.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/harness.sh"
harness_init backup --repo-per-check
need_tools git cmp stat tar sha256sum ssh-keygen /usr/sbin/sshd

# shellcheck source=lib/sshd.sh
. "$E2E_DIR/lib/sshd.sh"
MOUNTS=()
# shellcheck disable=SC2317 # called at exit (on_cleanup)
cleanup() {
	local m
	for m in "${MOUNTS[@]}"; do
		umount "$m" 2>/dev/null
	done
	[ -n "${SSHD_PID:-}" ] && sshd_stop
}
on_cleanup cleanup

mkdir -p "$HOME/.ssh" && chmod 700 "$HOME/.ssh" ||
	setup_failed "cannot make $HOME/.ssh"
if ! sshd_start "$tmp/sshd" >"$tmp/sshd-start.log" 2>&1; then
	setup_failed "sshd did not start: $(tail -n 5 "$tmp/sshd-start.log" | paste -sd' ' -)"
fi
ROOT=
[ "$(id -u)" = 0 ] && ROOT=1
CANARY=S3cr3t-CANARY-$$-$RANDOM

# make_tree DIR: the paths a step changes: DIR/conf (a directory with a
# symlink, a 0600 file, a binary file, a subdirectory), DIR/token (0600, the
# canary), DIR/new (absent)
make_tree() {
	local d=$1
	mkdir -p "$d/conf/sub"
	printf 'listen = 8080\nmax = 100\n' >"$d/conf/app.conf"
	ln -s app.conf "$d/conf/current"
	head -c 70000 /dev/urandom >"$d/conf/blob.bin"
	printf 'key=%s\n' "$CANARY" >"$d/conf/sub/key"
	chmod 0600 "$d/conf/sub/key"
	chmod 0750 "$d/conf/sub"
	printf '%s\n' "$CANARY" >"$d/token"
	chmod 0600 "$d/token"
	[ -n "$ROOT" ] && chown -h 1234:2345 "$d/conf/app.conf" "$d/conf/current"
	touch -d '2021-03-04 05:06:07' "$d/conf/app.conf" "$d/conf/blob.bin" \
		"$d/token" "$d/conf/sub/key" "$d/conf/sub"
	touch -h -d '2020-01-02 03:04:05' "$d/conf/current"
	touch -d '2019-05-06 07:08:09' "$d/conf"
}

# snapshot DIR: every path under DIR with type, mode, owner, size, mtime and
# link target (DIR itself left out: its mtime moves when new comes and goes)
snapshot() {
	(cd "$1" && find . -mindepth 1 | LC_ALL=C sort | while IFS= read -r p; do
		stat -c '%n %F %a %u:%g %s %Y' -- "$p"
		[ -L "$p" ] && printf '  -> %s\n' "$(readlink -- "$p")"
	done)
}

# change_it DIR: what the step does to the tree
change_it() {
	printf '      d=%s\n' "$1"
	cat <<'EOF'
      echo 'max = 999' >> "$d/conf/app.conf"
      rm -f "$d/conf/current"; ln -s blob.bin "$d/conf/current"
      head -c 100 /dev/zero > "$d/conf/blob.bin"
      rm -rf "$d/conf/sub"; mkdir "$d/conf/extra"; touch "$d/conf/extra/x"
      chmod 0644 "$d/token"; echo other > "$d/token"
      mkdir -p "$d/new/deep"; echo made > "$d/new/deep/f"
      touch "$MARK"
EOF
}

# runbook_file NAME DIR BACKUP_DIR VERIFY [HOST]: a runbook changing DIR
# with a backup into BACKUP_DIR; VERIFY "fail" rolls it back
runbook_file() {
	local name=$1 dir=$2 bdir=$3 verify=$4 host=${5:-}
	printf 'version: 1\nname: %s\nowner: Test <test@example.com>\n' "$name"
	printf 'reason: e2e check of backups\nexpected: restored exactly\n'
	if [ -n "$host" ]; then
		printf 'targets:\n  prod:\n    hosts: ["%s"]\n    identity: %s\n' \
			"$host" "$SSH_KEY"
	fi
	printf 'vars:\n  base: %s\n' "$dir"
	printf 'backup_dir: %s\n' "$bdir"
	cat <<EOF
steps:
  - name: Edit the config
    backup: ["{{ base }}/conf", "{{ base }}/token", "{{ base }}/new"]
    env: { MARK: "$D/step-ran" }
    run: |
$(change_it "$dir")
    rollback: restore
EOF
	if [ "$verify" = fail ]; then
		printf 'verify:\n  - name: health\n    run: exit 1\n'
	fi
}

# change_id: the id apply printed on its first line
change_id() {
	sed -n 's/^runbook: change \([^:]*\):.*/\1/p' "$D/$1.err" | head -n 1
}

# expect_restored TAG: the tree is as before, byte for byte
expect_restored() {
	local f
	snapshot "$D/tree" >"$D/after-$1.txt"
	check cmp -s "$D/before.txt" "$D/after-$1.txt" ||
		bad "$1: tree differs from before: $(diff "$D/before.txt" "$D/after-$1.txt" | head -n 8 | paste -sd'|' -)"
	for f in conf/app.conf conf/blob.bin conf/sub/key token; do
		check cmp -s "$D/orig/$f" "$D/tree/$f" || bad "$1: $f differs"
	done
	check [ ! -e "$D/tree/new" ] || bad "$1: new (absent before) is still there"
}

# expect_backup_private BDIR: 0700 directories, 0600 files, no canary in
# the note
expect_backup_private() {
	local bad_modes
	bad_modes=$(find "$1" -mindepth 1 \( -type d ! -perm 0700 \) -o \
		\( -type f ! -perm 0600 \) 2>/dev/null | head -n 3)
	check [ -z "$bad_modes" ] || bad "backup paths not 0700/0600: $bad_modes"
	check [ -n "$(find "$1" -name '*.tar')" ] || bad "no archive under $1"
}

# expect_note ID: the note records each path's size and SHA-256, and
# neither the note nor any git object holds the canary
expect_note() {
	local note
	note=$(git show "runbook-notes:changes/${1:0:4}/${1:4:2}/$1.md" 2>/dev/null)
	check matches "$note" 'backup: "dir [^"]*/01-edit-the-config\\nsum [0-9a-f]{64}\\n1 dir [0-9]+ [0-9a-f]{64} [^"]*/conf\\n2 file [0-9]+ [0-9a-f]{64} [^"]*/token\\n3 missing 0 - [^"]*/new\\n"' ||
		bad "note has no backup manifest: $(printf '%s' "$note" | grep -m1 'backup:')"
	check [ "$(git cat-file --batch-all-objects --batch 2>/dev/null | grep -c -a "$CANARY")" = 0 ] ||
		bad "the canary is in a git object"
}

# run_case WHERE HOST: the whole round locally or over SSH
run_case() {
	local where=$1 host=$2 args=() id
	[ -n "$host" ] && args=(-t prod --known-hosts "$SSH_KNOWN")

	begin "$where-restore-exact"
	make_tree tree && cp -a tree orig && snapshot tree >before.txt
	runbook_file "bk-$where" "$D/tree" "$D/backups" fail "$host" >f.yml
	rb plan plan f.yml ${host:+-t prod}
	expect_rc 0
	has plan.out "^ +backup +$D/tree/conf\$" "the rendered backup paths"
	has plan.out '^ +rollback +restore \(puts the backup back\)$' "the restore"
	rb apply apply f.yml "${args[@]}"
	expect_rc 1
	has apply.err 'ok +rollback .*Edit the config' "the restore as a rollback that passed"
	check [ -e step-ran ] || bad "the step did not run"
	expect_restored apply
	expect_backup_private "$D/backups"
	id=$(change_id apply)
	expect_note "$id"
	hasnt apply.err "$CANARY" "the canary"
	end

	begin "$where-rollback-replays-without-file"
	make_tree tree && cp -a tree orig && snapshot tree >before.txt
	runbook_file "bk-$where" "$D/tree" "$D/backups" pass "$host" >f.yml
	rb apply apply f.yml "${args[@]}"
	expect_rc 0
	check grep -q 'max = 999' tree/conf/app.conf || bad "the step did not change the tree"
	id=$(change_id apply)
	rm -f f.yml
	rb rollback rollback "$id" --known-hosts "$SSH_KNOWN"
	expect_rc 0
	expect_restored rollback
	end

	begin "$where-tampered-backup-refused"
	make_tree tree && cp -a tree orig
	runbook_file "bk-$where" "$D/tree" "$D/backups" pass "$host" >f.yml
	rb apply apply f.yml "${args[@]}"
	expect_rc 0
	id=$(change_id apply)
	snapshot tree >changed.txt
	printf 'x' >>"$D/backups/$id/01-edit-the-config/1.tar"
	rb rollback rollback "$id" --known-hosts "$SSH_KNOWN"
	expect_rc 3
	has rollback.err 'refused: the backup of .*/tree/conf changed since it was taken; nothing was restored' "the refusal naming the path"
	snapshot tree >after.txt
	check cmp -s changed.txt after.txt || bad "a refused restore changed the tree"
	# the backup gone: refused the same way, and again safe to retry
	rm -rf "$D/backups/$id"
	rb again rollback "$id" --known-hosts "$SSH_KNOWN"
	expect_rc 3
	has again.err "refused: the backup .*/01-edit-the-config is gone; nothing was restored" "the refusal naming the backup"
	end
}

run_case local ""
run_case ssh "$SSH_USER@127.0.0.1:$SSHD_PORT"

begin example-config-change-rehearses
# runbooks/config-change.yml on this machine: its backup and restore put
# the config back (rehearse compares the preflight with the baseline)
cp "$SRCDIR/runbooks/config-change.yml" cc.yml
mkdir -p cfg && printf 'listen = 127.0.0.1:8080\nmax_connections = 100\n' >cfg/webapp.conf
chmod 0640 cfg/webapp.conf && touch -d '2022-02-02 02:02:02' cfg/webapp.conf
stat -c '%a %s %Y' cfg/webapp.conf >before.txt && cp -p cfg/webapp.conf orig.conf
rb rehearse rehearse cc.yml -t staging -e conf_dir="$D/cfg"
expect_rc 0
has rehearse.err 'ok +rollback +local set the new value' "the restore of the config"
has rehearse.err 'baseline came back' "the baseline"
check cmp -s orig.conf cfg/webapp.conf || bad "webapp.conf differs after the rehearsal"
stat -c '%a %s %Y' cfg/webapp.conf >after.txt
check cmp -s before.txt after.txt || bad "webapp.conf's mode, size or time differs: $(cat after.txt)"
check [ -n "$(find "$HOME/.runbook/backups" -name 1.tar 2>/dev/null)" ] ||
	bad "no backup under \$HOME/.runbook/backups"
end

begin full-backup-dir-fails-the-step
if [ -z "$ROOT" ]; then
	skip "$CASE" "mounting a tmpfs needs root"
	CASE=
elif ! { mkdir -p small && mount -t tmpfs -o size=64k,mode=0700 tmpfs small; }; then
	skip "$CASE" "mount -t tmpfs failed"
	CASE=
else
	MOUNTS+=("$D/small")
	make_tree tree && snapshot tree >before.txt
	head -c 300000 /dev/urandom >tree/conf/big.bin
	runbook_file bk-full "$D/tree" "$D/small" pass >f.yml
	rb apply apply f.yml
	expect_rc 1
	has apply.err "backup: runbook backup: cannot copy $D/tree/conf: .*; 0 KiB free there" "the backup's failure with its reason"
	check [ ! -e step-ran ] || bad "the step's command ran after its backup failed"
	check grep -q '^max = 100$' tree/conf/app.conf || bad "the tree was changed"
	# the partial backup is removed: the space is free again
	check [ -z "$(find small -name '*.tar')" ] || bad "a partial backup was left in small"
	umount small && MOUNTS=()
	end
fi

finish
