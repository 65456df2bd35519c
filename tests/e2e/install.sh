#!/usr/bin/env bash
# `meson install --destdir` of this build puts exactly the files of
# tests/data/install/expected.txt in place (paths under the prefix; man
# pages only when the build made them), and what it installs works: the
# binary runs, the completion scripts are the ones it prints, the schema
# and examples are the repository's, `man -l` reads the installed pages.
#
#   RUNBOOK=build/runbook SRCDIR=. BUILDDIR=build MAN_BUILT=1 tests/e2e/install.sh
# shellcheck source=lib/harness.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/harness.sh"
harness_init install
need_tools meson "$PY" find sort

[ -n "${BUILDDIR:-}" ] && [ -f "$BUILDDIR/build.ninja" ] ||
	setup_failed "BUILDDIR='${BUILDDIR:-}' is not a meson build directory"
expected=$SRCDIR/tests/data/install/expected.txt

begin "meson install --destdir installs the expected files"
dest=$D/dest
rb_cmd inst meson install -C "$BUILDDIR" --no-rebuild --quiet --destdir "$dest"
expect_rc 0 "meson install"
prefix=$(meson introspect "$BUILDDIR" --buildoptions |
	"$PY" -c 'import json,sys; print([o["value"] for o in json.load(sys.stdin) if o["name"] == "prefix"][0])')
check [ -n "$prefix" ] && [ -d "$dest$prefix" ] || bad "no $dest$prefix"
(cd "$dest$prefix" && find . \( -type f -o -type l \) | sed 's|^\./||' | sort) >got.txt
if [ "${MAN_BUILT:-1}" = 1 ]; then
	grep -v '^#' "$expected" | sort >want.txt
else
	grep -v '^#' "$expected" | grep -v '^share/man/' | sort >want.txt
fi
check cmp -s want.txt got.txt ||
	bad "installed files differ from $expected: $(diff want.txt got.txt | grep '^[<>]' | paste -sd' ')"
diag "installed: $(paste -sd' ' got.txt)"
end

again "what is installed works"
root=$dest$prefix
rb_cmd ver "$root/bin/runbook" --version
expect_rc 0 "the installed runbook --version"
has ver.out '^runbook [0-9]' "its version"
for sh in bash zsh fish; do
	case $sh in
	bash) f=share/bash-completion/completions/runbook ;;
	zsh) f=share/zsh/site-functions/_runbook ;;
	fish) f=share/fish/vendor_completions.d/runbook.fish ;;
	esac
	rb "comp-$sh" completion "$sh"
	check cmp -s "$root/$f" "comp-$sh.out" || bad "$f is not what runbook completion $sh prints"
done
check cmp -s "$root/share/runbook/runbook.schema.json" "$SRCDIR/schema/runbook.schema.json" ||
	bad "the installed schema differs from schema/runbook.schema.json"
for f in "$SRCDIR"/runbooks/*.yml; do
	check cmp -s "$root/share/doc/runbook/examples/${f##*/}" "$f" ||
		bad "example ${f##*/} differs"
done
rb v validate "$root"/share/doc/runbook/examples/*.yml
expect_rc 0 "the installed examples validate"
if [ "${MAN_BUILT:-1}" = 1 ]; then
	rb_cmd man1 env MANWIDTH=80 man -l "$root/share/man/man1/runbook.1"
	expect_rc 0 "man -l runbook.1"
	has man1.out "$prefix/share/runbook/runbook.schema.json" "the installed schema's path"
fi
end

finish
