#!/usr/bin/env bash
# Terminal manners: colors and the redrawn progress line only on a
# terminal whose TERM is not dumb (a real pty from script(1)); never when
# stderr is a file or with NO_COLOR; `status --json` always prints an
# object; each command's --help lists only the options it takes; Ctrl-C's
# last line says "interrupted" and what was rolled back.
#
#   RUNBOOK=build/runbook SRCDIR=. tests/e2e/terminal.sh
# shellcheck source=lib/harness.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/harness.sh"
harness_init terminal --repo-per-check
need_tools git "$PY" script

OWNER='Ann Owner <ann@example.com>'

# mk NAME: a runbook whose step "wait" takes 1.2 s (the live line ticks)
# and whose step "boom" fails (a red FAILED), in $D/NAME.yml.
mk() {
	cat >"$D/$1.yml" <<EOF2
version: 1
name: $1
owner: $OWNER
reason: terminal manners
expected: it fails and rolls back
steps:
  - name: wait
    run: sleep 1.2
    rollback: echo undo
  - name: boom
    run: exit 3
    rollback: none
EOF2
}

# on_pty TAG TERM ARGS...: runbook ARGS on a pseudo-terminal with TERM
# (empty: unset); what the terminal got in $D/TAG.tty, the pty's own
# \r before each \n removed.
on_pty() {
	local tag=$1 term=$2 cmd
	shift 2
	printf -v cmd '%q ' "$RUNBOOK" "$@"
	if [ -n "$term" ]; then
		rb_cmd "$tag" env TERM="$term" script -qec "$cmd" /dev/null
	else
		rb_cmd "$tag" env -u TERM script -qec "$cmd" /dev/null
	fi
	sed 's/\r$//' "$D/$tag.out" >"$D/$tag.tty"
}

# fancy FILE: FILE has an escape sequence or a \r redraw.
fancy() { grep -q $'\033\\|\r' "$1"; }

begin "a terminal gets colors and the live line"
mk pretty
on_pty xterm xterm-256color apply pretty.yml
expect_rc 1 "apply"
check fancy xterm.tty || bad "no color nor \\r on a terminal with TERM=xterm-256color (the check below could not fail)"
has xterm.tty 'FAILED' "the failed step"
end

begin "TERM=dumb or no TERM: no colors, no redraws"
mk dumb
on_pty dumb dumb apply dumb.yml
expect_rc 1 "apply with TERM=dumb"
has dumb.tty 'FAILED' "the failed step"
refute fancy dumb.tty || bad "TERM=dumb got escapes or \\r: $(grep -c $'\033\\|\r' dumb.tty) lines"
on_pty unset '' apply dumb.yml
expect_rc 1 "apply without TERM"
has unset.tty 'FAILED' "the failed step"
refute fancy unset.tty || bad "no TERM got escapes or \\r"
end

begin "not a terminal, or NO_COLOR: none either"
mk plain
rb file apply plain.yml
expect_rc 1 "apply, stderr to a file"
has file.err 'FAILED' "the failed step"
refute fancy file.err || bad "a file got escapes or \\r"
rb_cmd nocolor env NO_COLOR=1 TERM=xterm script -qec "$(printf '%q ' "$RUNBOOK" apply plain.yml)" /dev/null
sed 's/\r$//' nocolor.out >nocolor.tty
refute grep -q $'\033\\[[0-9;]*m' nocolor.tty || bad "NO_COLOR=1 got colors"
end

begin "status --json prints an object with nothing open"
rb st status --json
expect_rc 0 "status --json"
expect_lines st.out "{\"event\":\"summary\",\"notes\":\"$D/\",\"unfinished\":0,\"exit\":0}" "status --json"
rb stq status --json -q
expect_rc 0 "status --json -q"
check [ "$(wc -l <stq.out)" = 1 ] || bad "expected one object with -q too"
end

again "and a summary after the unfinished ones"
mk open
RB_SIGKILL_OK=1 rb_cmd killed env RUNBOOK_FAILPOINT=kill-after-record:4 "$RUNBOOK" apply open.yml
rb st2 status --json
expect_rc 0 "status --json"
msg=$("$PY" - "$D/st2.out" <<'EOF2'
import json, sys
evs = [json.loads(l) for l in open(sys.argv[1])]
if [e["event"] for e in evs] != ["status", "summary"]:
    print("expected a status and a summary object, found %r" % [e.get("event") for e in evs])
elif evs[1]["unfinished"] != 1 or evs[0]["status"] != "interrupted":
    print("expected 1 unfinished (interrupted), found %r" % evs)
EOF2
) || msg="not JSON lines: $msg"
check [ -z "$msg" ] || bad "$msg"
end

begin "each command's --help lists only the options it takes"
while read -r cmd want; do
	rb "h-$cmd" "$cmd" --help
	got=$(grep -oE '^ +(-[a-zA-Z], )?--?[a-zA-Z][a-zA-Z-]*' "h-$cmd.out" |
		sed 's/^ *//; s/^-[a-zA-Z], //' | sort | paste -sd,)
	want=$(tr ',' '\n' <<<"$want" | sort | paste -sd,)
	check [ "$got" = "$want" ] || bad "$cmd --help: expected $want, found $got"
done <<'EOF2'
validate --help,--var,--json,--no-color,--quiet,--inventory
plan --help,--target,--limit,--var,--json,--no-color,--inventory,--serial
apply --help,--target,--limit,--var,--notes,--remote,--json,--no-color,--quiet,--verbose,--forks,--known-hosts,--accept-new-host-keys,--no-watch,--yes,--inventory,--serial,--wait
rehearse --help,--target,--limit,--var,--notes,--remote,--json,--no-color,--quiet,--verbose,--forks,--known-hosts,--accept-new-host-keys,--no-watch,--yes,--inventory,--serial,--wait
rollback --help,--target,--notes,--remote,--json,--no-color,--quiet,--verbose,--forks,--known-hosts,--accept-new-host-keys,--dry-run,--last,--yes,--force,--reason,--by-hand
status --help,--target,--notes,--remote,--json,--no-color,--quiet
log --help,--notes,--remote,--json,--no-color,--quiet,-n
show --help,--notes,--remote,--json,--no-color
new --help,--quiet
completion --help
EOF2
rb vv validate --verbose x.yml
expect_rc 2 "validate --verbose"
has_fixed vv.err "found --verbose" "that validate does not take it"
rb pq plan -q x.yml
expect_rc 2 "plan -q"
has_fixed pq.err "found -q" "that plan does not take it"
end

# interrupt TAG ARGS...: runbook ARGS in the background, SIGINT once its
# step "slow" has started; waits for it.
interrupt() {
	local tag=$1 i
	shift
	start_bg "$tag" "$@"
	for ((i = 0; i < 200; i++)); do
		grep -q "started" "$D/slow.mark" 2>/dev/null && break
		sleep 0.05
	done
	kill -INT "$BGPID"
	wait_bg "$BGPID" $((20 * SLOW))
}

# mkslow NAME: steps first, second, then slow (which marks that it started).
mkslow() {
	cat >"$D/$1.yml" <<EOF2
version: 1
name: $1
owner: $OWNER
reason: Ctrl-C
expected: interrupted and rolled back
steps:
  - name: first
    run: echo one
    rollback: echo undo-first
  - name: second
    run: echo two
    rollback: echo undo-second
  - name: slow
    run: |
      echo started > '$D/slow.mark'; sleep 30
    rollback: echo undo-slow
EOF2
}

begin "Ctrl-C: the last line says interrupted and what was rolled back"
mkslow intr
interrupt ci apply intr.yml
expect_rc 130 "apply after SIGINT"
last=$(tail -n 1 ci.err)
check [ "$last" = "runbook: intr interrupted (step 'slow' on local: interrupted by a signal; stopped it); rolled back: 'slow' on local, 'second' on local, 'first' on local; safe to run again" ] ||
	bad "last line: $last"
end

again "Ctrl-C during rehearse"
rm -f slow.mark
interrupt cr rehearse intr.yml
expect_rc 130 "rehearse after SIGINT"
last=$(tail -n 1 cr.err)
check matches "$last" "^runbook: intr interrupted .*; rolled back: 'slow' on local, 'second' on local, 'first' on local; safe to run again$" ||
	bad "last line: $last"
end

begin "Ctrl-C before anything changed"
cat >pre.yml <<EOF2
version: 1
name: pre
owner: $OWNER
reason: Ctrl-C in preflight
expected: nothing changed
preflight:
  - name: slow
    run: |
      echo started > '$D/slow.mark'; sleep 30
steps:
  - name: one
    run: echo one
    rollback: echo undo
EOF2
interrupt cp apply pre.yml
expect_rc 130 "apply after SIGINT in preflight"
last=$(tail -n 1 cp.err)
check matches "$last" "^runbook: pre interrupted .*; rolled back: nothing had changed; safe to run again$" ||
	bad "last line: $last"
end

finish
