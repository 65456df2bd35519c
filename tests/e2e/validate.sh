#!/usr/bin/env bash
# `runbook validate`: the shipped runbooks and tests/data/valid pass; every
# invalid file exits 5 with located messages; tests/data/invalid/<case>.err
# files are the exact expected stderr (golden files); --json is JSON.
#
#   RUNBOOK=build/runbook SRCDIR=. tests/e2e/validate.sh
#
# Golden files: a case runs from SRCDIR as
#   runbook validate tests/data/invalid/<case>.yml
# so paths in messages are stable, and stderr must equal <case>.err byte for
# byte. To add a case, write the .yml, run that command with 2><case>.err, and
# read the .err: every line:col, key path, expected and found must be right
# before it is committed.
#
# Known bugs: a case whose .yml has a line "# known-bug: TEXT" holds in its
# .err what the output should be, not what it is. A mismatch prints
# "not ok ...: known bug: TEXT" and counts as a failure; a match says the mark
# can go. Checks of known bugs in this script work the same way.
# shellcheck source=lib/harness.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/harness.sh"
harness_init validate

FINAL_LINE='nothing was run; fix the file and run again'

# known_bug NAME WHAT: a check that fails because of a reported bug (a test
# must be able to fail: it counts as a failure).
known_bug() { not_ok "$1" "known bug: $2"; }

# located FILE OUTPUT: number of lines of OUTPUT that start "FILE:LINE:COL: ",
# or "DIR/include/NAME:LINE:COL: " for a file FILE includes (the include_*
# cases keep their included files in tests/data/invalid/include/).
located() {
	P="$1" awk '
		BEGIN { p = ENVIRON["P"] ":"; n = 0
			inc = ENVIRON["P"]; sub(/[^\/]*$/, "include/", inc) }
		index($0, p) == 1 && substr($0, length(p) + 1) ~ /^[0-9]+:[0-9]+: [^ ]/ { n++; next }
		index($0, inc) == 1 && substr($0, length(inc) + 1) ~ /^[^:]+:[0-9]+:[0-9]+: [^ ]/ { n++ }
		END { print n }' "$2"
}

last_line() { tail -n 1 -- "$1"; }

# check_invalid NAME FILE: exit 5, located problems, the final hint, no
# other kind of line, nothing on stdout.
check_invalid() {
	local name=$1 file=$2 n total why=""

	run_clean validate "$file"
	n=$(located "$file" "$err")
	total=$(wc -l <"$err")
	[ "$RC" -eq 5 ] || why="exit $RC, expected 5"
	[ "$n" -ge 1 ] || why="${why:+$why; }no line starting '$file:LINE:COL: '"
	[ "$(last_line "$err")" = "$FINAL_LINE" ] ||
		why="${why:+$why; }last stderr line is not the hint"
	[ "$total" -eq $((n + 1)) ] ||
		why="${why:+$why; }$((total - n - 1)) stderr line(s) neither located nor the hint"
	[ ! -s "$out" ] || why="${why:+$why; }stdout is not empty"
	if [ -z "$why" ]; then
		ok "$name"
	else
		not_ok "$name" "$why"
		show "$err"
	fi
}

cd "$SRCDIR" || setup_failed "cannot cd to $SRCDIR"

# ------------------------------------------------------------ valid files

shopt -s nullglob
runbooks=(runbooks/*.yml)
if [ "${#runbooks[@]}" -eq 0 ]; then
	not_ok "runbooks" "no runbooks/*.yml"
else
	run_clean validate "${runbooks[@]}"
	if [ "$RC" -eq 0 ] && [ ! -s "$err" ] &&
	   [ "$(grep -c ': ok (' "$out")" -eq "${#runbooks[@]}" ]; then
		ok "runbooks/*.yml validate together (${#runbooks[@]} files)"
	else
		not_ok "runbooks/*.yml" "exit $RC, expected 0 and one ok line per file"
		show "$err" 10
	fi
fi

# runbooks in folders of their own with an inventory beside (docs/fleets.md)
nested=()
for f in runbooks/*/*.yml; do
	[ "$(basename "$f")" = inventory.yml ] || nested+=("$f")
done
if [ "${#nested[@]}" -eq 0 ]; then
	not_ok "runbooks/*/" "no runbook in a folder of runbooks/"
else
	run_clean validate "${nested[@]}"
	if [ "$RC" -eq 0 ] && [ ! -s "$err" ] &&
	   [ "$(grep -c ': ok (' "$out")" -eq "${#nested[@]}" ]; then
		ok "runbooks/*/*.yml validate with their inventories (${#nested[@]} files)"
	else
		not_ok "runbooks/*/*.yml" "exit $RC, expected 0 and one ok line per file"
		show "$err" 10
	fi
fi
run_clean plan runbooks/fleet/nginx-tuning.yml -t production
if [ "$RC" -eq 0 ] && grep -q '6 hosts in 3 batches' "$out" &&
   grep -q 'max_fail: 1 ' "$out"; then
	ok "docs/fleets.md's example plans six hosts in a canary and two waves"
else
	not_ok "plan runbooks/fleet/nginx-tuning.yml" "exit $RC, expected 6 hosts in 3 batches and max_fail 1"
	show "$out" 10
fi

valid=(tests/data/valid/*.yml)
[ "${#valid[@]}" -gt 0 ] || not_ok "valid" "no tests/data/valid/*.yml"
for f in "${valid[@]}"; do
	run_clean validate "$f"
	if [ "$RC" -eq 0 ] && [ ! -s "$err" ] && grep -q "^$f: ok (" "$out"; then
		ok "valid: $f"
	else
		not_ok "valid: $f" "exit $RC, expected 0 with '$f: ok (...)' on stdout"
		show "$err"
	fi
done

run_clean validate -q "${runbooks[0]}"
if [ "$RC" -eq 0 ] && [ ! -s "$out" ] && [ ! -s "$err" ]; then
	ok "validate -q prints nothing for a valid file"
else
	not_ok "validate -q" "exit $RC, stdout $(wc -c <"$out") bytes, stderr $(wc -c <"$err") bytes"
fi

# ------------------------------------------------------------ invalid files

schema=(tests/data/invalid-schema/*.yml)
[ "${#schema[@]}" -gt 0 ] || not_ok "invalid-schema" "no tests/data/invalid-schema/*.yml"
for f in "${schema[@]}"; do
	check_invalid "invalid-schema: $f" "$f"
done

invalid=(tests/data/invalid/*.yml)
[ "${#invalid[@]}" -ge 9 ] || not_ok "invalid" "only ${#invalid[@]} cases in tests/data/invalid"
for f in "${invalid[@]}"; do
	check_invalid "invalid: $f" "$f"
done

# ------------------------------------------------------------ golden files

goldens=0
for f in "${invalid[@]}"; do
	golden=${f%.yml}.err
	[ -f "$golden" ] || continue
	goldens=$((goldens + 1))
	bug=$(sed -n 's/^# known-bug: //p' "$f" | head -n 1)
	run_clean validate "$f"
	if [ "$RC" -eq 5 ] && cmp -s "$golden" "$err"; then
		if [ -n "$bug" ]; then
			ok "golden: $f (known bug fixed? remove its '# known-bug' line)"
		else
			ok "golden: $f"
		fi
	elif [ -n "$bug" ]; then
		known_bug "golden: $f" "$bug"
	else
		not_ok "golden: $f" "exit $RC; stderr differs from $golden"
		diff -u "$golden" "$err" | head -n 20 | sed 's/^/#   /'
	fi
done
[ "$goldens" -ge 9 ] || not_ok "golden" "only $goldens .err files in tests/data/invalid"

# six mistakes: exactly six located lines, then the hint
f=tests/data/invalid/six_mistakes.yml
run_clean validate "$f"
n=$(located "$f" "$err")
if [ "$RC" -eq 5 ] && [ "$n" -eq 6 ] && [ "$(wc -l <"$err")" -eq 7 ] &&
   [ "$(last_line "$err")" = "$FINAL_LINE" ]; then
	ok "six_mistakes.yml: six located problems in one run"
else
	not_ok "six_mistakes.yml" "exit $RC, $n located lines of $(wc -l <"$err"); expected exit 5, 6 located + the hint"
	show "$err" 10
fi

# ------------------------------------------------------------ several files

run_clean validate tests/data/valid/minimal.yml tests/data/invalid/bad_serial.yml tests/data/valid/expect.yml
if [ "$RC" -eq 5 ] && [ "$(grep -c ': ok (' "$out")" -eq 2 ] &&
   [ "$(located tests/data/invalid/bad_serial.yml "$err")" -eq 2 ] &&
   [ "$(grep -c -x "$FINAL_LINE" "$err")" -eq 1 ]; then
	ok "several files: each checked, exit 5 when one is invalid, one hint"
else
	not_ok "several files" "exit $RC"
	show "$err"
fi

# ------------------------------------------------------------ --var names

cat >"$tmp/needs-var.yml" <<'EOF'
version: 1
name: needs-var
owner: Ops <ops@example.com>
reason: a variable given only on the command line
expected: validates with -e release=...
steps:
  - name: deploy
    run: deploy {{ release }}
    rollback: none
EOF
run_clean validate "$tmp/needs-var.yml"
if [ "$RC" -eq 5 ] && grep -q '{{ release }}' "$err"; then
	ok "a name from nowhere is unknown"
else
	not_ok "unknown name without -e" "exit $RC, expected 5 naming {{ release }}"
fi
run_clean validate -e release=2.4.1 "$tmp/needs-var.yml"
if [ "$RC" -eq 0 ]; then
	ok "validate -e release=... defines the name"
else
	not_ok "validate -e" "exit $RC, expected 0"
	show "$err"
fi

# ------------------------------------------------------------ runs nothing

cat >"$tmp/runs.yml" <<EOF
version: 1
name: runs
owner: Ops <ops@example.com>
reason: validate must run nothing
expected: no file appears
preflight:
  - name: pre
    run: touch "$tmp/ran-preflight"
steps:
  - name: step
    run: touch "$tmp/ran-step"
    skip_if: touch "$tmp/ran-skip"
    rollback: touch "$tmp/ran-rollback"
EOF
run_clean validate "$tmp/runs.yml"
if [ "$RC" -eq 0 ] && [ -z "$(find "$tmp" -name 'ran-*')" ]; then
	ok "validate runs no command"
else
	not_ok "validate runs nothing" "exit $RC; found: $(find "$tmp" -name 'ran-*' | tr '\n' ' ')"
fi

# ------------------------------------------------------------ --json

# json_check FILE: each line of FILE is a JSON object with event "validate";
# prints "<ok> <problems>" per line.
json_check() {
	"$PY" -c '
import json, sys
for n, line in enumerate(open(sys.argv[1], "rb"), 1):
    o = json.loads(line.decode("utf-8"))
    assert isinstance(o, dict), "line %d is not an object" % n
    assert o.get("event") == "validate", "line %d: event %r" % (n, o.get("event"))
    assert isinstance(o.get("file"), str), "line %d: no file" % n
    assert isinstance(o.get("ok"), bool), "line %d: no ok" % n
    probs = o.get("problems")
    assert isinstance(probs, list), "line %d: no problems list" % n
    for p in probs:
        assert isinstance(p.get("line"), int) and p["line"] >= 1
        assert isinstance(p.get("column"), int) and p["column"] >= 1
        assert isinstance(p.get("message"), str) and p["message"]
    assert o["ok"] == (len(probs) == 0), "line %d: ok disagrees with problems" % n
    print("%s %d %s" % ("true" if o["ok"] else "false", len(probs), o["file"]))
' "$1"
}

run_clean validate --json "${runbooks[@]}"
if [ "$RC" -eq 0 ] && summary=$(json_check "$out" 2>"$tmp/py") &&
   [ "$(grep -c '^true 0 ' <<<"$summary")" -eq "${#runbooks[@]}" ] &&
   [ "$(wc -l <"$out")" -eq "${#runbooks[@]}" ]; then
	ok "--json: one ok object per valid file"
else
	not_ok "--json valid" "exit $RC: $(tail -n 1 "$tmp/py" 2>/dev/null)"
	show "$out"
fi

all_invalid=("${invalid[@]}" "${schema[@]}")
mkdir "$tmp/json"
i=0
: >"$tmp/json/manifest"
for f in "${all_invalid[@]}"; do
	i=$((i + 1))
	run_clean validate --json "$f"
	cp "$out" "$tmp/json/$i.out"
	printf '%s\t%s\t%s\t%s\n' "$i" "$RC" "$(located "$f" "$err")" "$f" >>"$tmp/json/manifest"
done
# one python for all files: each exit 5, one object, ok false, the same
# number of problems as located lines on stderr
"$PY" - "$tmp/json" >"$tmp/json/result" 2>&1 <<'EOF_PY'
import json, sys
d = sys.argv[1]
for row in open(d + "/manifest"):
    i, rc, n, f = row.rstrip("\n").split("\t", 3)
    why = []
    if rc != "5":
        why.append("exit %s, expected 5" % rc)
    try:
        lines = open("%s/%s.out" % (d, i), "rb").read().decode("utf-8").splitlines()
        objs = [json.loads(l) for l in lines]
        if len(objs) != 1:
            why.append("%d objects, expected 1" % len(objs))
        else:
            o = objs[0]
            if o.get("event") != "validate" or o.get("file") != f or o.get("ok") is not False:
                why.append("event/file/ok wrong: %r" % {k: o.get(k) for k in ("event", "file", "ok")})
            probs = o.get("problems") or []
            if len(probs) != int(n):
                why.append("%d problems, stderr has %s" % (len(probs), n))
            for p in probs:
                if not (isinstance(p.get("line"), int) and p["line"] >= 1 and
                        isinstance(p.get("column"), int) and p["column"] >= 1 and
                        isinstance(p.get("message"), str) and p["message"]):
                    why.append("bad problem %r" % p)
    except Exception as e:
        why.append("not JSON: %s" % e)
    if why:
        print("%s\t%s" % (f, "; ".join(why)))
EOF_PY
if [ ! -s "$tmp/json/result" ]; then
	ok "--json: one object per invalid file (${#all_invalid[@]} files), problems as on stderr"
else
	while IFS=$'\t' read -r f why; do
		not_ok "--json: $f" "$why"
	done <"$tmp/json/result"
fi

run_clean validate --json tests/data/invalid/six_mistakes.yml
if "$PY" -c '
import json, sys
o = json.loads(open(sys.argv[1]).read())
got = [(p["line"], p["column"]) for p in o["problems"]]
want = [(2, 7), (8, 31), (10, 14), (11, 11), (13, 15), (14, 33)]
assert sorted(got) == want, got
assert any("Deploy_API" in p["message"] for p in o["problems"])
' "$out" 2>"$tmp/py"; then
	ok "--json: six_mistakes problems with their lines and columns"
else
	not_ok "--json six_mistakes" "$(tail -n 1 "$tmp/py")"
fi

run_clean validate --json tests/data/valid/minimal.yml tests/data/invalid/bad_serial.yml
if summary=$(json_check "$out" 2>"$tmp/py") && [ "$RC" -eq 5 ] &&
   [ "$summary" = "true 0 tests/data/valid/minimal.yml
false 2 tests/data/invalid/bad_serial.yml" ]; then
	ok "--json: several files, one object each, in order"
else
	not_ok "--json several files" "exit $RC, got: ${summary:-} $(tail -n 1 "$tmp/py" 2>/dev/null)"
fi

# A file that cannot be read is a file too: it must get its object.
run_clean validate --json tests/data/valid/minimal.yml "$tmp/missing.yml"
if [ "$RC" -eq 5 ] && summary=$(json_check "$out" 2>"$tmp/py") &&
   [ "$(wc -l <"$out")" -eq 2 ] && grep -q "^false [0-9]* $tmp/missing.yml\$" <<<"$summary"; then
	ok "--json: a missing file gets an object with ok false"
elif [ "$RC" -eq 5 ]; then
	known_bug "--json: a missing file gets an object with ok false" \
		"validate --json prints no object for a file that cannot be read (only the stderr message)"
else
	not_ok "--json missing file" "exit $RC, expected 5"
fi

# ------------------------------------------------------------ message form

# Every problem is one line, even when the found value spans lines.
cat >"$tmp/multiline-pattern.yml" <<'EOF'
version: 1
name: multiline-pattern
owner: Ops <ops@example.com>
reason: a block-scalar pattern that does not compile
expected: one located line
steps:
  - name: a
    run: echo hi
    rollback: none
    expect:
      stdout: |
        (abc
        def
EOF
run_clean validate "$tmp/multiline-pattern.yml"
total=$(wc -l <"$err")
n=$(located "$tmp/multiline-pattern.yml" "$err")
if [ "$RC" -eq 5 ] && [ "$n" -eq 1 ] && [ "$total" -eq 2 ]; then
	ok "a multi-line pattern gives one message line"
elif [ "$RC" -eq 5 ] && [ "$n" -eq 1 ]; then
	known_bug "a multi-line pattern gives one message line" \
		"validate.c prints the found pattern raw: its newlines split the message over $((total - 1)) lines"
else
	not_ok "multi-line pattern" "exit $RC, $n located lines"
fi

# Found text is cut on a character boundary: stderr stays UTF-8.
"$PY" - "$tmp/long-pattern.yml" <<'EOF'
import sys
s = ("version: 1\nname: long-pattern\nowner: Ops <ops@example.com>\n"
     "reason: a long non-ASCII pattern that does not compile\n"
     "expected: the message is UTF-8\nsteps:\n  - name: a\n    run: echo hi\n"
     "    rollback: none\n    expect: { stdout: 'x" + "\u00e9" * 79 + "(' }\n")
open(sys.argv[1], "w", encoding="utf-8").write(s)
EOF
run_clean validate "$tmp/long-pattern.yml"
if [ "$RC" -eq 5 ] && "$PY" -c 'import sys; open(sys.argv[1], "rb").read().decode("utf-8")' "$err" 2>/dev/null; then
	ok "a long non-ASCII found value is cut on a character boundary"
elif [ "$RC" -eq 5 ]; then
	known_bug "a long non-ASCII found value is cut on a character boundary" \
		"validate.c cuts the found pattern with %.80s, in the middle of a UTF-8 character: stderr is not UTF-8"
else
	not_ok "long pattern" "exit $RC, expected 5"
fi

finish
