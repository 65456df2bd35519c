#!/usr/bin/env bash
# End-to-end checks of watch (docs/watch.md): read-only checks repeated after
# verify; a service that starts failing 3 s after verify is caught by a 10 s
# watch and rolled back, the note naming the round; metric guards judged at
# every round; --no-watch recorded; SIGINT during watch rolls back.
#
#   RUNBOOK=build/runbook bash tests/e2e/watch.sh
#
# Each check runs in its own git repository (tests/e2e/lib/harness.sh).
# shellcheck source=lib/harness.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/harness.sh"
harness_init watch --operator 'Walt Watch <walt@example.com>' --repo-per-check

# write_rb FAIL_AFTER DURATION: a "service" (a file with its start time)
# that is healthy for FAIL_AFTER seconds, watched every second for DURATION.
write_rb() {
	cat > rb.yml <<YAML
version: 1
name: watched
owner: Ann Owner <ann@example.com>
reason: prove watch
expected: the service stays healthy
metrics:
  - name: errors
    run: cat errors
    pattern: '^(\d+)\$'
    max_increase: 5
steps:
  - name: start service
    run: date +%s > started
    rollback: rm -f started
verify:
  - name: healthy
    run: test -e started
watch:
  duration: $2
  interval: 1s
  steps:
    - name: still healthy
      run: test \$(( \$(date +%s) - \$(cat started) )) -lt $1
YAML
}

begin failing-after-3s-caught
echo 0 > errors
write_rb 3 10s
rb run apply rb.yml
expect_rc 1 "a watch check failing 3 s after verify"
check [ ! -e started ] || bad "not rolled back"
check [ "$MS" -lt 9000 ] || bad "the failure was noticed only after ${MS} ms (the watch should stop at the failing round)"
has run.err '^watch: round 1, every 1s, 10s left' "progress shows the time left"
note=$(last_note)
check grep -q '^watch: "10s, every 1s"$' <<<"$note" || bad "the note lacks watch"
check grep -Eq '^  - \{ event: step, host: "local", phase: watch, name: "still healthy", result: "failed", .*message: "watch round [3-5], [2-4]s after verify: expected exit 0' <<<"$note" ||
	bad "the note does not show the failing round"
check [ "$(grep -c 'phase: watch, name: "still healthy", result: "ok"' <<<"$note")" -ge 2 ] ||
	bad "the note does not show the rounds that passed"
end

begin healthy-for-the-whole-watch
echo 0 > errors
write_rb 100 3s
rb run apply rb.yml
expect_rc 0
check [ -e started ] || bad "the change is not in place"
check [ "$MS" -ge 3000 ] || bad "the watch took only ${MS} ms of its 3 s"
check [ "$(grep -c '^watch: round' run.err)" -eq 4 ] || bad "expected rounds at 0, 1, 2 and 3 s, found $(grep -c '^watch: round' run.err)"
end

begin guard-breach-during-watch
echo 0 > errors
write_rb 100 10s
# errors: 0 for the service's first 2 s, then 3 a second: +6 breaks +5
sed -i "s|run: cat errors|run: 'e=0; [ -e started ] \&\& e=\$(( \$(date +%s) - \$(cat started) )); [ \$e -lt 2 ] \&\& e=0; echo \$((e * 3))'|" rb.yml
rb run apply rb.yml
expect_rc 1 "a guard broken during watch"
has run.err 'watch round [0-9]+, [0-9]+s after verify: metric errors rose from 0 to ([6-9]|[1-9][0-9]) \(\+[0-9]+, limit \+5\)' "the guard's numbers and the round"
check [ ! -e started ] || bad "not rolled back"
end

begin no-watch
echo 0 > errors
write_rb 0 10s
rb run apply rb.yml --no-watch
expect_rc 0 "--no-watch skips a watch that would fail"
hasnt run.err '^watch: round' "a watch round ran"
note=$(last_note)
check grep -q '^watch: "skipped (--no-watch)"$' <<<"$note" || bad "the note does not say the watch was skipped"
end

begin sigint-during-watch
echo 0 > errors
write_rb 100 30s
start_bg run apply rb.yml
for _ in $(seq 1 $((100 * SLOW))); do
	grep -q '^watch: round 2' "$D/run.err" 2>/dev/null && break
	sleep 0.1
done
kill -INT "$BGPID"
wait_bg "$BGPID" $((10 * SLOW)) || bad "runbook still ran 10 s after SIGINT"
expect_rc 130
check [ ! -e started ] || bad "not rolled back after SIGINT during watch"
note=$(last_note)
check grep -q '^status: "interrupted"$' <<<"$note" || bad "the note is not interrupted"
end

begin validate-watch
write_rb 3 10s
sed -i 's/  interval: 1s/  interval: 1m/' rb.yml
rb run validate rb.yml
expect_rc 5
has run.err 'rb.yml:[0-9]+:[0-9]+: watch.interval: expected a duration no longer than watch.duration' "interval over duration"
write_rb 3 10s
cat >> rb.yml <<'YAML'
      rollback: 'true'
YAML
rb run2 validate rb.yml
expect_rc 5
has run2.err 'watch.steps\[0\].rollback: expected no rollback in watch.steps' "a rollback in watch refused"
end

finish
