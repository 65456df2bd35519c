#!/usr/bin/env bash
# The man pages runbook(1) and runbook(5), as built from docs/man/*.scd:
# `man --warnings -l` renders each with no warning; `mandoc -T lint` finds
# no error and no warning but the empty-paragraph ones scdoc itself emits
# (when mandoc is installed); runbook(1) names every command, every option
# of every command's --help and every exit code; runbook(5) every top-level
# key of the JSON Schema.
#
#   RUNBOOK=build/runbook SRCDIR=. MAN_DIR=build/docs/man tests/e2e/man.sh
# shellcheck source=lib/harness.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/harness.sh"
harness_init man
need_tools man "$PY"

[ -n "${MAN_DIR:-}" ] || setup_failed "MAN_DIR is not set (the build's docs/man)"
for p in runbook.1 runbook.5; do
	[ -s "$MAN_DIR/$p" ] || setup_failed "no $MAN_DIR/$p (is scdoc installed? meson setup -Dman=enabled)"
done

for p in runbook.1 runbook.5; do
	begin "man --warnings -l $p: no warnings"
	rb_cmd "man-$p" env MANWIDTH=80 LC_ALL=C.UTF-8 man --warnings -E UTF-8 -l "$MAN_DIR/$p"
	expect_rc 0 "man -l $p"
	check [ ! -s "man-$p.err" ] || bad "warnings: $(head -n 3 "man-$p.err" | paste -sd';')"
	n=$(wc -l <"man-$p.out")
	check [ "$n" -ge 80 ] || bad "expected a rendered page of >= 80 lines, found $n"
	end
done

if command -v mandoc >/dev/null 2>&1; then
	for p in runbook.1 runbook.5; do
		begin "mandoc -T lint $p"
		rb_cmd "lint-$p" mandoc -T lint -W warning "$MAN_DIR/$p"
		# scdoc opens every list item and section with .PP; mandoc calls
		# that an empty paragraph. Anything else is ours.
		grep -v 'WARNING: skipping paragraph macro: PP \(empty\|after SH\)' \
			"lint-$p.err" >"lint-$p.rest"
		check [ ! -s "lint-$p.rest" ] || bad "mandoc: $(head -n 3 "lint-$p.rest" | paste -sd';')"
		rb_cmd "err-$p" mandoc -T lint -W error "$MAN_DIR/$p"
		expect_rc 0 "mandoc -T lint -W error"
		end
	done
else
	skip "mandoc -T lint" "mandoc is not installed"
fi

begin "runbook(1) names every command, option and exit code"
rb_cmd page env MANWIDTH=200 LC_ALL=C man -l "$MAN_DIR/runbook.1"
rb usage --help
for cmd in $(sed -n 's/^  \([a-z]\+\) .*/\1/p' "$D/usage.out"); do
	check grep -Eq "^ +$cmd( |$)" page.out || bad "no entry for the command $cmd"
	rb "help-$cmd" "$cmd" --help
	for o in $(grep -oE '(^|[ ,])--?[a-zA-Z][a-zA-Z-]*' "$D/help-$cmd.out" | sed 's/^[ ,]*//' | sort -u); do
		check grep -Eq -- "^ +(-[a-z], )?$o( |,|$)" page.out ||
			bad "$cmd takes $o, which has no entry"
	done
done
for code in 0 1 2 3 4 5 6 130; do
	check grep -Eq "^ +$code$" page.out || bad "exit code $code has no entry"
done
for s in ENVIRONMENT FILES EXAMPLES 'EXIT STATUS'; do
	check grep -q "^$s" page.out || bad "no $s section"
done
end

begin "runbook(5) names every top-level key of the schema"
rb_cmd page5 env MANWIDTH=200 LC_ALL=C man -l "$MAN_DIR/runbook.5"
keys=$("$PY" -c 'import json,sys; print(" ".join(json.load(open(sys.argv[1]))["properties"]))' \
	"$SRCDIR/schema/runbook.schema.json")
check [ -n "$keys" ] || bad "no keys in the schema"
for k in $keys; do
	check grep -Eq "^ +([a-z_]+, )*$k( |,|$)" page5.out || bad "no entry for $k"
done
has page5.out '^INVENTORY' "an INVENTORY section"
end

finish
