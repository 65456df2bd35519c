#!/usr/bin/env bash
# "Did you mean": a misspelt command or option is a usage error (exit 2,
# nothing run, one line) that names the right word. The golden file
# tests/data/spelling/cli.golden holds each command line and the exact
# line it must print; a word too far from any is named without a guess.
#
#   RUNBOOK=build/runbook SRCDIR=. tests/e2e/spelling.sh
# shellcheck source=lib/harness.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/harness.sh"
harness_init spelling

golden=$SRCDIR/tests/data/spelling/cli.golden
[ -f "$golden" ] || setup_failed "no $golden"

cat >"$tmp/ok.yml" <<'YML'
version: 1
name: spelling
owner: Ops <ops@example.com>
reason: A valid runbook for the spelling tests
expected: it validates
steps:
  - name: one
    run: echo one
    rollback: none
YML

n=0
suggested=0
while IFS=$'\t' read -r args want; do
	case $args in '#'*|'') continue ;; esac
	n=$((n + 1))
	begin --here "runbook $args"
	# shellcheck disable=SC2086 # the golden file's arguments are words
	run_clean $args
	expect_rc 2 "runbook $args"
	check [ ! -s "$out" ] || bad "expected nothing on stdout, found $(head -c 200 "$out")"
	got=$(cat "$err")
	check [ "$got" = "$want" ] || bad "expected stderr '$want', found '$got'"
	end
	case $want in *'did you mean'*) suggested=$((suggested + 1)) ;; esac
done <"$golden"

begin --here "the golden file has at least ten misspellings that name the right word"
check [ "$suggested" -ge 10 ] || bad "expected >= 10 suggestions in $golden, found $suggested of $n lines"
end

finish
