#!/usr/bin/env bash
# Rollback order across changes, with a real HTTP server behind a `current`
# symlink (releases A then B of one service):
#  - `runbook rollback A` while B still stands is refused (exit 4), naming B
#    and the command that rolls it back first; nothing changes and the
#    service keeps serving B;
#  - the right order (B, then A) serves the original release;
#  - `--force` rolls A back anyway and the note records whom it passed over,
#    who rolled back, when and why, without rewriting `finished`;
#  - `rollback --last` takes the newest change that still has something to
#    undo (not an apply that rolled itself back), and says which.
#
#   RUNBOOK=build/runbook SRCDIR=. bash tests/e2e/order.sh
# shellcheck source=lib/harness.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/harness.sh"
harness_init order
need_tools git python3

cid() {
	sed -n 's/^runbook: change \([0-9]\{8\}T[0-9]\{6\}Z-[a-z0-9._-]*-[0-9a-f]\{8\}\): .*/\1/p' "$D/$1" | head -n 1
}
note_path() { printf 'changes/%s/%s/%s.md' "${1:0:4}" "${1:4:2}" "$1"; }

# serve: an HTTP server on 127.0.0.1 for $D/srv/current (resolved per
# request, so it follows the symlink); sets PORT.
serve() {
	python3 - "$D/srv/current" "$D/port" <<'EOF' >/dev/null 2>&1 &
import functools, http.server, sys
class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *a):
        pass
h = functools.partial(Quiet, directory=sys.argv[1])
s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), h)
open(sys.argv[2], "w").write(str(s.server_address[1]))
s.serve_forever()
EOF
	BG+=("$!")	# killed when the script ends
	disown "$!"	# (quietly)
	wait_files 10 "$D/port" || bad "the HTTP server did not start"
	sleep 0.2
	PORT=$(cat "$D/port")
}

# served: what the service answers now.
served() {
	python3 -c 'import sys, urllib.request
try:
    print(urllib.request.urlopen("http://127.0.0.1:%s/" % sys.argv[1], timeout=5).read().decode().strip())
except Exception as e:
    print("error: %s" % e)' "$PORT"
}

# release.yml: unpack releases/<version>, point current at it (the previous
# target captured for the rollback), verify over HTTP.
setup() {
	mkdir -p repo srv/releases/v0 && git -C repo init -q &&
		git -C repo commit -q --allow-empty -m init || bad "git init"
	G=$D/repo/.git
	echo v0 >srv/releases/v0/index.html
	ln -s releases/v0 srv/current
	cat >repo/release.yml <<EOF
version: 1
name: release
owner: Web Team <web@example.com>
reason: release a version
expected: the service serves it
vars:
  version: v0
  port: "0"
steps:
  - name: unpack
    run: mkdir $D/srv/releases/{{ version }} && echo {{ version }} > $D/srv/releases/{{ version }}/index.html
    rollback: rm -rf $D/srv/releases/{{ version }}
  - name: switch
    run: echo "prev=\$(readlink $D/srv/current)"; ln -sfn releases/{{ version }} $D/srv/current
    capture: { previous: '^prev=(\S+)$' }
    rollback: ln -sfn {{ previous }} $D/srv/current
verify:
  - name: serves the version
    run: python3 -c 'import urllib.request,sys; print(urllib.request.urlopen(sys.argv[1]).read().decode())' http://127.0.0.1:{{ port }}/ | grep -qx {{ version }}
EOF
	serve
}

# ---------------------------------------------------------------- order
begin order
setup
rb a apply repo/release.yml -e version=A -e port="$PORT"
expect_rc 0 "apply A"
A=$(cid a.err)
rb b apply repo/release.yml -e version=B -e port="$PORT"
expect_rc 0 "apply B"
B=$(cid b.err)
check [ "$(served)" = B ] || bad "expected B served after both applies, found '$(served)'"
rb early rollback "${A:-x}" --notes "$G"
expect_rc 4 "rollback A while B stands"
has early.err "later changes still applied.*${B:-x} \(runbook rollback ${B:-x}\)" "B and the command that rolls it back"
has early.err "nothing was run" "that nothing ran"
check [ "$(served)" = B ] || bad "the refused rollback changed the service: '$(served)'"
check [ -d srv/releases/A ] || bad "the refused rollback removed release A"
rb rbb rollback "${B:-x}" --notes "$G"
expect_rc 0 "rollback B"
check [ "$(served)" = A ] || bad "expected A served after B's rollback, found '$(served)'"
rb rba rollback "${A:-x}" --notes "$G"
expect_rc 0 "rollback A after B"
check [ "$(served)" = v0 ] || bad "expected the original release v0 served, found '$(served)'"
check [ ! -d srv/releases/A ] && check [ ! -d srv/releases/B ] || bad "a release directory was left"
end

# ---------------------------------------------------------------- force
begin force
setup
rb a apply repo/release.yml -e version=A -e port="$PORT"
A=$(cid a.err)
rb b apply repo/release.yml -e version=B -e port="$PORT"
B=$(cid b.err)
git --git-dir="$G" show "runbook-notes:$(note_path "${A:-x}")" >before.md 2>/dev/null
rb forced rollback "${A:-x}" --notes "$G" --force --reason "A corrupts sessions"
expect_rc 0 "rollback A --force"
has forced.err "warning: --force: rolling back ${A:-x} under later changes.*${B:-x}" "the warning naming B"
git --git-dir="$G" show "runbook-notes:$(note_path "${A:-x}")" >after.md 2>/dev/null
has after.md '^status: "rolled-back"$' "status rolled-back"
has after.md "^rollback_forced:$" "the forced list"
has after.md "^  - \"${B:-x}\"$" "B in the forced list"
has after.md '^rollback_reason: "A corrupts sessions"$' "the reason"
has after.md '^rolled_back_by: ".+"$' "who rolled back"
has after.md '^rolled_back_at: "[0-9]{4}-' "when"
check [ "$(grep '^finished:' before.md)" = "$(grep '^finished:' after.md)" ] ||
	bad "finished was rewritten: $(grep '^finished:' before.md) -> $(grep '^finished:' after.md)"
check [ "$(grep '^started:' before.md)" = "$(grep '^started:' after.md)" ] || bad "started was rewritten"
end

# ---------------------------------------------------------------- last
# An apply whose verify failed rolled itself back: --last must not pick it
# ("nothing left to roll back", exit 0, the live release left in place) but
# the newest change that still has something to undo, and say which.
begin last
setup
rb a apply repo/release.yml -e version=A -e port="$PORT"
A=$(cid a.err)
rb bad apply repo/release.yml -e version=C -e port=1
expect_rc 1 "apply C whose verify fails"
C=$(cid bad.err)
# the note of C says how it ended and why, first, and lists its rollbacks
git --git-dir="$G" show "runbook-notes:$(note_path "${C:-x}")" >c.md 2>/dev/null
has c.md '^mode: "apply"$' "the mode"
has c.md '^\*\*Why it stopped:\*\* verify `serves the version` on local failed: expected exit 0, found exit 1' "why it stopped, first"
has c.md '^\*\*Rollback:\*\* automatic, by the run itself' "that the rollback was automatic"
has c.md '^  - \{ event: rollback, host: "local", phase: step, name: "switch", result: "rolled-back", exit: 0, duration_ms: [0-9]+ \}$' "the rollback's exit and duration"
has c.md '^\| local \| switch \| rolled-back \| 0 \|' "the rollback table"
has c.md '^Nothing is left to undo\.$' "that nothing is left to undo"
hasnt c.md '^runbook rollback ' "an undo command for an undone change"
# the runbook file as applied, beside the note, in the same commit
git --git-dir="$G" show "runbook-notes:$(note_path "${C:-x}" | sed 's/\.md$/.yml/')" >c.yml 2>/dev/null
check cmp -s c.yml repo/release.yml || bad "expected the runbook file as applied beside the note"
check [ "$(served)" = A ] || bad "expected A served after C rolled itself back, found '$(served)'"
rb last rollback --last --notes "$G"
expect_rc 0 "rollback --last"
has last.err "^runbook: --last is change ${A:-x} " "which change --last took"
check [ "$(served)" = v0 ] || bad "expected v0 served after rollback --last, found '$(served)'"
rb again rollback --last --notes "$G"
expect_rc 0 "rollback --last with nothing left"
has again.err "nothing left to roll back: no change has anything left to undo" "that nothing is left"
end

# ---------------------------------------------------------------- where
# From the parent of the runbook's repository: apply writes its note into
# that repository and says so (path and commit); log from the same place
# says where it looked and what to pass; the hex part of an id names it.
begin where
mkdir -p ops && git -C ops init -q && git -C ops commit -q --allow-empty -m init
cat >ops/quick.yml <<EOF
version: 1
name: quick
owner: Ops <ops@example.com>
reason: a quick change
expected: it is quick
steps:
  - name: one
    run: "true"
    rollback: "true"
EOF
rb a apply ops/quick.yml
expect_rc 0 "apply ops/quick.yml from the parent directory"
id=$(cid a.err)
has a.err "^runbook: note of ${id:-x} committed to $D/ops/ \(branch runbook-notes, commit [0-9a-f]{12}\)" "where the note went"
rb log log
expect_rc 2 "log from the parent directory"
has log.err "no notes repository found: looked for a git repository around $D \(none\) and for $D/.runbook-notes \(none\).*--notes PATH" "where it looked and what to pass"
rb show show "${id##*-}" --notes ops
expect_rc 0 "show by the hex part of the id"
has show.out "^change: \"${id:-x}\"$" "the change named by its hex part"
end

finish
