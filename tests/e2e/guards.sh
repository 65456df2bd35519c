#!/usr/bin/env bash
# End-to-end checks of metric guards (docs/format.md, "Metric guards"):
# max, min, max_increase and max_decrease checked after verify; a breach
# fails the change with the numbers and rolls it back; a guarded metric that
# cannot be measured, or is not a number, is a failure with that reason.
#
#   RUNBOOK=build/runbook bash tests/e2e/guards.sh
#
# Each check runs in its own git repository (tests/e2e/lib/harness.sh).
# shellcheck source=lib/harness.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/harness.sh"
harness_init guards --operator 'Gail Guard <gail@example.com>' --repo-per-check

# write_rb GUARDS NEW: a metric reading `lat` with GUARDS (YAML lines), and a
# step writing NEW into it (its rollback writes 120 back).
write_rb() {
	cat > rb.yml <<YAML
version: 1
name: guarded
owner: Ann Owner <ann@example.com>
reason: prove metric guards
expected: latency stays within bounds
metrics:
  - name: p95_ms
    run: cat lat
    pattern: '^(\S+)\$'
$1
steps:
  - name: change latency
    run: echo '$2' > lat
    rollback: echo 120 > lat
YAML
}

begin rise-past-max-increase
echo 120 > lat
write_rb "    max_increase: 20%" 180
rb plan plan rb.yml
has plan.out 'guards +max_increase 20%' "plan shows the guard"
rb run apply rb.yml
expect_rc 1 "a breached guard fails the change"
has run.err 'metric p95_ms rose from 120 to 180 \(\+50%, limit \+20%\)' "the numbers in the message"
check [ "$(cat lat)" = 120 ] || bad "not rolled back: lat is $(cat lat)"
note=$(last_note)
check grep -q '^status: "rolled-back"$' <<<"$note" || bad "note not rolled-back"
check grep -q 'metric p95_ms rose from 120 to 180 (+50%, limit +20%)' <<<"$note" || bad "the numbers not in the note"
check grep -q '"p95_ms": { before: "120", after: "180", after_rollback: "120" }' <<<"$note" ||
	bad "the metric's before, after and after_rollback not in the note"
end

begin within-limits
echo 120 > lat
write_rb "    max_increase: 60
    max: 200
    min: 100
    max_decrease: 10%" 180
rb run apply rb.yml
expect_rc 0 "+60 against a limit of +60 holds"
check [ "$(cat lat)" = 180 ] || bad "lat is $(cat lat)"
end

begin max-and-min
echo 120 > lat
write_rb "    max: 150" 151
rb run apply rb.yml
expect_rc 1
has run.err 'metric p95_ms is 151, above its max 150' "max breach"
echo 120 > lat
write_rb "    min: 100" 99.5
rb run2 apply rb.yml
expect_rc 1
has run2.err 'metric p95_ms is 99.5, below its min 100' "min breach"
check [ "$(cat lat)" = 120 ] || bad "not rolled back"
end

begin not-measured-or-not-a-number
echo 120 > lat
write_rb "    max: 500" 'n/a now'
rb run apply rb.yml
expect_rc 1 "a guarded metric that does not match after verify"
has run.err 'metric p95_ms has guards and could not be measured after verify: expected stdout to match' "the reason"
check [ "$(cat lat)" = 120 ] || bad "not rolled back"
echo 'n/a' > lat
write_rb "    max: 500" 130
rb run2 apply rb.yml
expect_rc 1 "a guarded metric that is not a number before the change"
has run2.err 'metric p95_ms: expected a number to check its guards, found "n/a"' "the reason"
check [ "$(cat lat)" = n/a ] || bad "the step ran although the metric before was not a number"
end

begin validate-guard-forms
write_rb "    max: 20%" 1
rb run validate rb.yml
expect_rc 5
has run.err 'rb.yml:10:10: metrics\[0\]\.max: expected a number such as 150' "a percentage max refused, located"
write_rb "    max_decrease: -5" 1
rb run2 validate rb.yml
expect_rc 5
has run2.err 'metrics\[0\]\.max_decrease: expected a number of the metric.s units or a percentage' "a negative max_decrease refused"
write_rb "    min: 0x10" 1
rb run3 validate rb.yml
expect_rc 5
has run3.err 'metrics\[0\]\.min: expected a number' "0x10 refused"
end

finish
