#!/usr/bin/env bash
# `runbook plan`: picks the target, prints every step per host with the
# commands rendered exactly as apply would run them (values shell-quoted,
# secrets masked, captures left as {{ name }}), the rollback order, and runs
# nothing.
#
#   RUNBOOK=build/runbook SRCDIR=. tests/e2e/plan.sh
# shellcheck source=lib/harness.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/harness.sh"
harness_init plan

work=$tmp/work
mkdir "$work" || setup_failed "cannot make $work"
cd "$work" || setup_failed "cannot enter $work"

SECRET_VALUE='s3cr3t-Value-9f8e7d'

# run_clean runs runbook from $work in a clean environment, with the
# secret's variable set.
CLEAN_ENV=(DEPLOY_TOKEN="$SECRET_VALUE")

# stdout_has NAME FIXED-STRING: stdout contains the string.
stdout_has() {
	if grep -qF -- "$2" "$out"; then
		ok "$1"
	else
		not_ok "$1" "stdout has no '$2'"
		show "$out" 10
	fi
}

# ------------------------------------------------------------ fixtures

cat >"$tmp/multi.yml" <<EOF
version: 1
name: plan-multi
owner: Ops <ops@example.com>
reason: Exercise plan
expected: plan shows every command
targets:
  staging:
    hosts: [local]
  production:
    hosts: [deploy@app1.example.com, "deploy@app2.example.com:2222", app3]
    serial: 2
vars:
  version: "2.4.1"
  marker: $tmp/ran
secrets:
  token: { env: DEPLOY_TOKEN }
preflight:
  - name: current version
    run: touch {{ marker }}-preflight; cat /srv/VERSION
    capture: { previous: '^(\S+)$' }
metrics:
  - name: p95
    run: touch {{ marker }}-metric; echo p95=1
    pattern: 'p95=(\d+)'
steps:
  - name: install
    run: touch {{ marker }}; deploy --version {{ version }} --token {{ secrets.token }}
    skip_if: touch {{ marker }}-skip
    rollback: touch {{ marker }}-rollback; deploy --version {{ previous }}
    timeout: 2m
  - name: configure
    run: configure --id {{ change.id }} --host {{ host }} --target {{ target }}
    capture: { config_id: 'id=(\w+)' }
    rollback: unconfigure {{ config_id }}
  - name: notify
    run: logger "{{ runbook.name }} {{ version }} done"
    rollback: none
verify:
  - name: health
    run: touch {{ marker }}-verify; curl -fsS http://localhost/health
EOF

cat >"$tmp/single.yml" <<'EOF'
version: 1
name: plan-single
owner: Ops <ops@example.com>
reason: No targets key
expected: plan needs no -t
vars:
  version: "1.0"
steps:
  - name: one
    run: echo {{ version }}
    rollback: none
EOF

# ------------------------------------------------------------ targets

run_clean plan "$tmp/multi.yml"
if [ "$RC" -eq 2 ] && grep -q 'staging' "$err" && grep -q 'production' "$err" &&
   grep -q -- '--target' "$err" && [ ! -s "$out" ]; then
	ok "several targets and no -t: exit 2, lists the targets"
else
	not_ok "no -t" "exit $RC, expected 2 with staging and production named"
	show "$err"
fi

run_clean plan "$tmp/multi.yml" -t nope
if [ "$RC" -eq 2 ] && grep -q '"nope"' "$err" && grep -q 'staging' "$err" &&
   grep -q 'production' "$err" && [ ! -s "$out" ]; then
	ok "unknown -t: exit 2, names it and lists the targets"
else
	not_ok "unknown -t" "exit $RC, expected 2"
	show "$err"
fi

run_clean plan "$tmp/single.yml"
if [ "$RC" -eq 0 ] && grep -q '^plan: plan-single on local' "$out" &&
   grep -q '^host local$' "$out"; then
	ok "one implicit target: no -t needed, host local"
else
	not_ok "implicit target" "exit $RC"
	show "$err"
fi

run_clean plan "$tmp/single.yml" -t local
if [ "$RC" -eq 0 ]; then
	ok "-t local names the implicit target"
else
	not_ok "-t local" "exit $RC"
fi

run_clean plan "$tmp/single.yml" --target=staging
if [ "$RC" -eq 2 ]; then
	ok "--target=NAME that does not exist: exit 2"
else
	not_ok "--target=staging on a runbook without it" "exit $RC, expected 2"
fi

# ------------------------------------------------------------ text plan

run_clean plan "$tmp/multi.yml" -t production
if [ "$RC" -eq 0 ] && [ ! -s "$err" ]; then
	ok "plan -t production: exit 0, nothing on stderr"
else
	not_ok "plan -t production" "exit $RC"
	show "$err"
fi
cp "$out" "$tmp/plan.txt"

stdout_has "header names runbook, target and batches" \
	"plan: plan-multi on production, 3 hosts in 2 batches; nothing is run"
stdout_has "batch 1" "batch 1: deploy@app1.example.com deploy@app2.example.com:2222"
stdout_has "batch 2" "batch 2: app3"
stdout_has "owner shown" "owner:    Ops <ops@example.com>"

for host in deploy@app1.example.com deploy@app2.example.com:2222 app3; do
	# the section of one host: from "host H" to the next "host " line
	awk -v h="host $host" '$0 == h { on = 1; next } /^host / { on = 0 } on' \
		"$tmp/plan.txt" >"$tmp/section"
	why=""
	for step in "preflight current version" "metric    p95" \
	    "step      install" "step      configure" "step      notify" \
	    "verify    health"; do
		grep -qF -- "    $step  (timeout" "$tmp/section" ||
			why="${why:+$why; }no '$step'"
	done
	grep -qF -- "--host $host --target production" "$tmp/section" ||
		why="${why:+$why; }{{ host }}/{{ target }} not rendered"
	grep -qx '    on failure, roll back in this order: notify, configure, install' \
		"$tmp/section" || why="${why:+$why; }no rollback order notify, configure, install"
	if [ -z "$why" ]; then
		ok "host $host: every step, and the rollback order"
	else
		not_ok "host $host" "$why"
	fi
done

stdout_has "vars rendered" "deploy --version 2.4.1"
stdout_has "timeout shown" "step      install  (timeout 2m)"
stdout_has "default timeout shown" "step      configure  (timeout 10m)"
stdout_has "rollback: none shown" "rollback  none (nothing to undo)"
stdout_has "skip_if shown" "skip if   touch $tmp/ran-skip"
stdout_has "captures listed" "captures  config_id"

# secrets: masked, never the value
if grep -qF '[secret:token]' "$out" && ! grep -qF "$SECRET_VALUE" "$out" "$err"; then
	ok "secret shown as [secret:token], its value nowhere (env var set)"
else
	not_ok "secret masking" "expected [secret:token] and no '$SECRET_VALUE'"
	grep -F -e 'secret' -e "$SECRET_VALUE" "$out" | head -n 3 | sed 's/^/#   /'
fi

# captures and change.id are only known at run time
stdout_has "capture from preflight left as {{ previous }}" "deploy --version {{ previous }}"
stdout_has "capture of the step left as {{ config_id }}" "unconfigure {{ config_id }}"
stdout_has "change.id left as {{ change.id }}" "configure --id {{ change.id }}"
stdout_has "runbook.name rendered (inside double quotes)" 'logger "plan-multi 2.4.1 done"'

# ------------------------------------------------------------ --var

# shellcheck disable=SC2016 # the $(...) is the value under test
run_clean plan "$tmp/multi.yml" -t staging -e 'version=x; touch PWNED' -e 'marker=$(touch PWNED2)'
if [ "$RC" -eq 0 ] && grep -qF "deploy --version 'x; touch PWNED'" "$out" &&
   grep -qF "touch '\$(touch PWNED2)';" "$out"; then
	ok "-e values render shell-quoted"
else
	not_ok "-e quoting" "exit $RC"
	grep -F -e 'deploy --version' "$out" | head -n 2 | sed 's/^/#   /'
fi
if [ -z "$(find "$work" -mindepth 1)" ] && [ ! -e "$tmp/PWNED" ]; then
	ok "-e 'version=x; touch PWNED' creates nothing"
else
	not_ok "-e injection" "files appeared: $(find "$work" -mindepth 1 | tr '\n' ' ')"
fi

run_clean plan "$tmp/multi.yml" -t staging -e previous=1.9 -e version=3.0
if [ "$RC" -eq 0 ] && grep -qF 'deploy --version 3.0 ' "$out" &&
   grep -qF 'deploy --version 1.9' "$out"; then
	ok "-e wins over vars and gives captures a value"
else
	not_ok "-e precedence" "exit $RC"
fi

# ------------------------------------------------------------ --json

run_clean plan "$tmp/multi.yml" -t production --json
cp "$out" "$tmp/plan.json"
if [ "$RC" -eq 0 ] && "$PY" - "$tmp/plan.json" "$SECRET_VALUE" 2>"$tmp/py" <<'EOF'
import json, sys
lines = open(sys.argv[1], "rb").read().decode("utf-8").splitlines()
objs = [json.loads(l) for l in lines]
assert objs, "no output"
assert all(isinstance(o, dict) for o in objs)
head = objs[0]
assert head["event"] == "plan", head
assert head["runbook"] == "plan-multi" and head["target"] == "production", head
assert head["batches"] == [["deploy@app1.example.com", "deploy@app2.example.com:2222"], ["app3"]], head["batches"]
cmds = [o for o in objs if o["event"] == "plan-command"]
assert len(cmds) == len(objs) - 1, "unexpected events"
hosts = ["deploy@app1.example.com", "deploy@app2.example.com:2222", "app3"]
names = ["current version", "p95", "install", "configure", "notify", "health"]
# one plan-command per command per host
assert len(cmds) == len(hosts) * len(names), len(cmds)
for h in hosts:
    got = sorted(o["name"] for o in cmds if o["host"] == h)
    assert got == sorted(names), (h, got)
by = {(o["host"], o["name"]): o for o in cmds}
i = by[("app3", "install")]
assert i["phase"] == "step" and i["timeout"] == "2m", i
assert "--token [secret:token]" in i["run"], i["run"]
assert i["rollback"].endswith("deploy --version {{ previous }}"), i["rollback"]
assert "skip_if" in i
assert by[("app3", "notify")]["rollback"] == "none"
assert "rollback" not in by[("app3", "health")]
assert by[("app3", "configure")]["run"] == "configure --id {{ change.id }} --host app3 --target production"
assert by[("app3", "p95")]["phase"] == "metric"
assert by[("app3", "current version")]["phase"] == "preflight"
assert sys.argv[2] not in open(sys.argv[1]).read(), "secret value in output"
EOF
then
	ok "--json: every line parses; one plan-command per command per host"
else
	not_ok "--json" "exit $RC: $(tail -n 1 "$tmp/py")"
	show "$tmp/plan.json" 3
fi

run_clean plan "$tmp/multi.yml" -t staging --json -e 'version=a"b'
if [ "$RC" -eq 0 ] && "$PY" -c '
import json, sys
objs = [json.loads(l) for l in open(sys.argv[1])]
i = [o for o in objs if o.get("name") == "install"][0]
assert "deploy --version '"'"'a\"b'"'"' " in i["run"], i["run"]
' "$out" 2>"$tmp/py"; then
	ok "--json: quotes in values are escaped"
else
	not_ok "--json escaping" "exit $RC: $(tail -n 1 "$tmp/py")"
fi

# ------------------------------------------------------------ env, dir, expect

# A reviewer must see what a command runs with: its env, dir, expect,
# timeout and retries (issue 12), and reason, expected and patterns with
# their {{ }} rendered as apply will.
cat >"$tmp/review.yml" <<'EOF'
version: 1
name: plan-review
owner: Ops <ops@example.com>
reason: Roll out {{ version }} to {{ target }}
expected: "{{ runbook.name }} serves {{ version }} ({{ change.id }})"
vars:
  version: "1.3.0"
  srv: /srv/app
secrets:
  token: { env: DEPLOY_TOKEN }
preflight:
  - name: current
    run: cat VERSION
    capture: { previous: '^(\S+)$' }
steps:
  - name: install
    run: $SRV/run/install
    env: { SRV: "{{ srv }}", MODE: blue green, TOKEN: "{{ secrets.token }}" }
    dir: "{{ srv }}/releases"
    expect:
      exit: [0, 3]
      stdout: 'installed {{ version }}'
      stderr: '^ok'
      not_stdout: 'over {{ previous }}'
      not_stderr: (?i)error
    capture: { build: 'build (\d+)', seen: '{{ version }}-(\w+)' }
    timeout: 2m
    retries: 2
    retry_delay: 5s
    rollback: $SRV/run/uninstall
metrics:
  - name: latency
    run: echo p95=1
    pattern: 'p95 {{ version }}=(\d+)'
EOF
run_clean plan "$tmp/review.yml"
cp "$out" "$tmp/review.txt"
if [ "$RC" -eq 0 ] && [ ! -s "$err" ]; then
	ok "plan of a runbook with env, dir and expect: exit 0"
else
	not_ok "plan review" "exit $RC"
	show "$err"
fi
stdout_has "reason rendered" "reason:   Roll out 1.3.0 to local"
stdout_has "expected rendered, change.id left for run time" "expected: plan-review serves 1.3.0 ({{ change.id }})"
stdout_has "timeout and retries" "step      install  (timeout 2m, 2 retries 5s apart)"
stdout_has "dir rendered" "dir       /srv/app/releases"
stdout_has "env shown" "env       SRV=/srv/app"
stdout_has "every env variable shown" "                MODE=blue green"
stdout_has "a secret in env masked" "                TOKEN=[secret:token]"
stdout_has "exit codes shown" "expect    exit 0 or 3"
stdout_has "stdout pattern, value matched literally" "                stdout matches 'installed 1\.3\.0'"
stdout_has "stderr pattern" "                stderr matches '^ok'"
stdout_has "not_stdout pattern, capture left for run time" "                stdout must not match 'over {{ previous }}'"
stdout_has "not_stderr pattern" "                stderr must not match '(?i)error'"
stdout_has "capture patterns" "captures  build from 'build (\d+)'"
stdout_has "capture pattern with a value" "                seen from '1\.3\.0-(\w+)'"
stdout_has "metric pattern" "pattern   'p95 1\.3\.0=(\d+)'"
stdout_has "default expect shown for a check" "expect    exit 0"
if grep -qF "$SECRET_VALUE" "$out"; then
	not_ok "secret value in env" "the plan shows the secret's value"
else
	ok "the secret's value is nowhere in the plan"
fi

run_clean plan "$tmp/review.yml" -e version=2.0 --json
if [ "$RC" -eq 0 ] && "$PY" - "$out" 2>"$tmp/py" <<'EOF'
import json, sys
objs = [json.loads(l) for l in open(sys.argv[1], "rb").read().decode("utf-8").splitlines()]
head = objs[0]
assert head["reason"] == "Roll out 2.0 to local", head
assert head["expected"] == "plan-review serves 2.0 ({{ change.id }})", head
by = {o["name"]: o for o in objs if o["event"] == "plan-command"}
i = by["install"]
assert i["env"] == {"SRV": "/srv/app", "MODE": "blue green", "TOKEN": "[secret:token]"}, i["env"]
assert i["dir"] == "/srv/app/releases", i
assert i["expect"] == {"exit": [0, 3], "stdout": "installed 2\\.0", "stderr": "^ok",
                       "not_stdout": "over {{ previous }}", "not_stderr": "(?i)error"}, i["expect"]
assert i["capture"] == {"build": "build (\\d+)", "seen": "2\\.0-(\\w+)"}, i["capture"]
assert i["timeout"] == "2m" and i["retries"] == 2 and i["retry_delay"] == "5s", i
c = by["current"]
assert c["expect"] == {"exit": [0]}, c
assert "env" not in c and "dir" not in c, c
m = by["latency"]
assert m["pattern"] == "p95 2\\.0=(\\d+)", m
assert "expect" not in m, m
EOF
then
	ok "--json: env, dir, expect, captures, pattern, timeout, retries and rendered reason"
else
	not_ok "--json review" "exit $RC: $(tail -n 1 "$tmp/py")"
	show "$out" 3
fi

# ------------------------------------------------------------ runs nothing

if [ -z "$(find "$tmp" -maxdepth 1 -name 'ran*')" ]; then
	ok "plan ran no command (no marker file from run, skip_if, rollback, preflight, metrics, verify)"
else
	not_ok "plan runs nothing" "found: $(find "$tmp" -maxdepth 1 -name 'ran*' | tr '\n' ' ')"
fi

# ------------------------------------------------------------ errors

cp "$SRCDIR/tests/data/invalid/six_mistakes.yml" "$tmp/six.yml"
run_clean plan "$tmp/six.yml"
if [ "$RC" -eq 5 ] && [ ! -s "$out" ] &&
   [ "$(grep -c "^$tmp/six.yml:[0-9]*:[0-9]*: " "$err")" -eq 6 ] &&
   [ "$(tail -n 1 "$err")" = 'nothing was run; fix the file and run again' ]; then
	ok "plan of an invalid runbook: exit 5, every problem, no plan"
else
	not_ok "plan invalid" "exit $RC"
	show "$err" 8
fi

run_clean plan "$tmp/missing.yml"
if [ "$RC" -eq 5 ] && grep -qF "$tmp/missing.yml" "$err" && [ ! -s "$out" ]; then
	ok "plan of a missing file: exit 5, names it"
else
	not_ok "plan missing" "exit $RC"
fi

run_clean plan "$tmp/single.yml" -e 'noequals'
if [ "$RC" -eq 2 ]; then
	ok "plan -e without '=': exit 2"
else
	not_ok "plan -e noequals" "exit $RC, expected 2"
fi

finish
