#!/usr/bin/env bash
# End-to-end checks of notify (docs/format.md, "Notify"): local commands
# run on start and on the final status with RUNBOOK_* in their
# environment; one failing and one hanging notify are bounded, recorded in
# the note and leave the exit code alone; secrets stay out of their
# environment unless asked for, and out of every record.
#
#   RUNBOOK=build/runbook bash tests/e2e/notify.sh
#
# Output (tests/e2e/lib/harness.sh): `ok N - NAME` / `not ok N - NAME: why`
# per check, then `N passed, M failed`.
# shellcheck source=lib/harness.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/harness.sh"
harness_init notify --operator 'Nora Notify <nora@example.com>' --repo-per-check
need_tools git "$PY"

SECRET=tok-5f3a9c1e77
export NOTIFY_TOKEN=$SECRET

# write_rb [FAIL]: a runbook whose second step fails when FAIL is 1. The
# notify "log" writes every variable it sees to notify.log (one line per
# event); "fails" exits 3 printing the secret it asked for; "hangs" sleeps
# far past its 1s timeout, its child too.
write_rb() {
	cat > rb.yml <<YAML
version: 1
name: ntf
owner: Test Team <test@example.com>
reason: e2e check of notify
expected: every notify sees the right status
secrets:
  token: { env: NOTIFY_TOKEN }
notify:
  - name: log
    run: |
      printf '%s|%s|%s|%s|%s|%s|%s|%s|%s\n' "\$RUNBOOK_EVENT" "\$RUNBOOK_STATUS" \
        "\$RUNBOOK_CHANGE" "\$RUNBOOK_TARGET" "\$RUNBOOK_COMMIT" "\$RUNBOOK_EXIT_CODE" \
        "\$RUNBOOK_RUNBOOK" "\${NOTIFY_TOKEN:-no-token}" "\$RUNBOOK_SUMMARY" >> notify.log
  - name: fails
    when: [applied, rolled-back]
    run: echo "sent with \$CHAT_TOKEN"; exit 3
    env: { CHAT_TOKEN: "{{ secrets.token }}" }
  - name: hangs
    when: rolled-back
    run: (sleep 60; echo late > late.txt) & sleep 60
    timeout: 1s
steps:
  - name: one
    run: echo one
    rollback: echo undo-one >> undone
  - name: two
    run: echo "using {{ secrets.token }}"; exit ${1:-0}
    rollback: none
YAML
}

begin "an applied change: start and applied, with its id, target and note commit"
write_rb 0
rb apply apply rb.yml
expect_rc 0 "apply (the failing notify does not change it)"
check [ "$(wc -l < notify.log)" = 2 ] || bad "expected 2 notify lines, found $(wc -l < notify.log)"
id=$("$RUNBOOK" log -n 1 --json | "$PY" -c 'import json,sys; print(json.loads(sys.stdin.readline())["change"])')
IFS='|' read -r ev st ch tg cm ec nm tok sum < <(sed -n 1p notify.log)
check [ "$ev|$st|$ch|$tg|$ec|$nm|$tok" = "start|running|$id|local||ntf|no-token" ] ||
	bad "start saw '$ev|$st|$ch|$tg|$ec|$nm|$tok'"
check git cat-file -e "$cm^{commit}" || bad "RUNBOOK_COMMIT '$cm' of start is not a commit"
check [ "$(git show -s --format=%s "$cm")" = "ntf: running on local" ] || bad "start's commit is not the running note"
IFS='|' read -r ev st ch tg cm ec nm tok sum < <(sed -n 2p notify.log)
check [ "$ev|$st|$ch|$tg|$ec|$tok" = "applied|applied|$id|local|0|no-token" ] ||
	bad "applied saw '$ev|$st|$ch|$tg|$ec|$tok'"
check [ "$(git show -s --format=%s "$cm")" = "ntf: applied on local" ] || bad "applied's commit is not the final note"
check [ "$sum" = "ntf applied on local" ] || bad "summary '$sum'"
has apply.err "^runbook: warning: notify fails \(applied\) exited 3: sent with \[secret:token\]; recorded in the note" "the failing notify as a warning"
last_note > note.md
has note.md '^  - \{ event: notify, host: "", phase: step, name: "fails \(applied\)", result: "failed", attempt: 0, exit: 3, duration_ms: [0-9]+, message: "exited 3: sent with \[secret:token\]" \}$' "the failure in the note's timeline"
has note.md 'name: "log \(start\)", result: "ok"' "the start notify in the note"
refute grep -rq "$SECRET" notify.log note.md apply.err apply.out || bad "the secret was written somewhere"
git log -p --all > git.log 2>&1
check [ -s git.log ] || bad "git log printed nothing"
refute grep -q "$SECRET" git.log || bad "the secret is in git"
end

begin "a failed and rolled-back change: one notify fails, one hangs, exit 1 stands"
write_rb 1
t0=$(now_ms)
rb apply apply rb.yml
elapsed=$(($(now_ms) - t0))
expect_rc 1 "apply (failed and rolled back)"
check [ -s undone ] || bad "step one was not rolled back"
IFS='|' read -r ev st ch tg cm ec nm tok sum < <(sed -n 2p notify.log)
check [ "$ev|$st|$tg|$ec" = "rolled-back|rolled-back|local|1" ] || bad "final notify saw '$ev|$st|$tg|$ec'"
check matches "$sum" "^ntf rolled-back on local: .*step 'two' on local: expected exit 0, found exit 1" || bad "summary '$sum'"
check matches "$sum" '\[secret:token\]' || bad "the summary does not show the secret masked: '$sum'"
check [ "$elapsed" -lt $((15000 * SLOW)) ] || bad "the hanging notify held the run for ${elapsed}ms"
has apply.err '^runbook: warning: notify hangs \(rolled-back\) timed out after 1s; its process group was killed' "the hang as a warning"
last_note > note.md
has note.md 'name: "hangs \(rolled-back\)", result: "timeout", attempt: 0, duration_ms: [0-9]+, message: "timed out after 1s; its process group was killed"' "the hang in the note"
has note.md 'name: "fails \(rolled-back\)", result: "failed", attempt: 0, exit: 3' "the failure in the note"
has note.md '^status: "rolled-back"$' "the change's status is unchanged"
refute grep -rq "$SECRET" notify.log note.md apply.err || bad "the secret was written somewhere"
end

begin "the hanging notify's process group is gone"
# every process of the group that held 'sleep 60' was killed at the timeout
write_rb 1
rb apply apply rb.yml
expect_rc 1 "apply"
sleep 2
check [ ! -e late.txt ] || bad "the hanging notify's child lived on"
left=$(pgrep -f '^sleep 60$' 2>/dev/null | while read -r p; do
	[ "$(readlink "/proc/$p/cwd" 2>/dev/null)" = "$D" ] && echo "$p"; done)
check [ -z "$left" ] || bad "sleep 60 still runs in $D: $left"
end

begin "a notify that cannot run its shell command does not stop the change"
write_rb 0
sed -i 's|^    run: echo "sent with.*|    run: /nonexistent/notify-tool|' rb.yml
rb apply apply rb.yml
expect_rc 0 "apply"
has apply.err '^runbook: warning: notify fails \(applied\) exited 127' "the exit 127 as a warning"
end

finish
