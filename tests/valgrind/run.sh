#!/usr/bin/env bash
# Valgrind memcheck over a sample of the e2e suite: every runbook process the
# chosen scripts start runs under
#
#   valgrind --error-exitcode=99 --leak-check=full \
#            --errors-for-leak-kinds=definite --track-fds=no
#
# through a wrapper that tests/e2e/lib/harness.sh takes as $RUNBOOK, with
# memcheck's report in a file of its own per process (stderr stays runbook's,
# so the scripts' checks of it still hold).
#
#   bash tests/valgrind/run.sh [-B BUILDDIR] [SCENARIO...]
#
# SCENARIO: apply (tests/e2e/apply.sh: local apply, failures and their
# rollbacks), rollback (notes.sh: `runbook rollback` replaying a change,
# resuming one, --last, locks, kill -9 and recovery), rehearse (rehearse.sh)
# and ssh (ssh.sh: apply and rollback on three hosts over a real sshd); all
# four by default. BUILDDIR (default build-vg) is a build without
# sanitizers: it is set up as a debug build if missing, and rebuilt.
#
# Output: per scenario, the script's own summary, the number of runbook
# processes, those with memcheck errors (with the first lines of each report),
# those killed before valgrind could report (a SIGKILL the check sends on
# purpose), and the checks that failed; then one line "N passed, M failed"
# (scenarios). A scenario fails on any memcheck error, and on a failed check
# unless it is one of KNOWN below (valgrind's own effects, named with why).
# Exits 0 only if every scenario passed.
#
# valgrind 3.19 does not know pidfd_open (it warns "unhandled amd64-linux
# syscall: 434"): runbook then waits for a command's exit by polling, its
# fallback when the kernel has no pidfd.
#
# Under valgrind runbook matches patterns without the PCRE2 JIT
# (RUNBOOK_PCRE2_NO_JIT=1): memcheck reports the 16-byte loads of the
# JIT-compiled code (frames "???") as invalid reads past the subject, in
# every run; the interpreter is what the unit tests check JIT against.
set -uo pipefail
cd "$(dirname "$0")/../.."
SRC=$PWD

build=build-vg
if [[ ${1:-} == -B ]]; then
	build=$2
	shift 2
fi
scenarios=("$@")
((${#scenarios[@]})) || scenarios=(apply rollback rehearse ssh)

# Checks that fail under valgrind for valgrind's sake, "SCRIPT/CHECK why".
KNOWN=(
	# bounds the time of a pattern's failure (5 s); valgrind is ~20x slower
	"apply/catastrophic-backtracking the run's time bound does not allow for valgrind's slowdown"
	# valgrind runs posix_spawn()'s CLONE_VFORK child as a fork, so the
	# child's chdir() error never reaches runbook: the shell's 127 does
	"apply/step-never-started valgrind turns posix_spawn's vfork into a fork: a chdir error comes back as exit 127"
	# two applies within one second of the clock, 5 tries
	"notes/last-is-newest-within-a-second two applies under valgrind rarely fit in one second"
	# a busy apply must return within 2 s while the holder still runs
	"notes/lock-busy-and-other-target valgrind's start-up alone takes most of the 2 s bound"
)

script_of() {
	case $1 in
	apply) echo apply ;;
	rollback) echo notes ;;
	rehearse) echo rehearse ;;
	ssh) echo ssh ;;
	*) return 1 ;;
	esac
}

for s in "${scenarios[@]}"; do
	script_of "$s" >/dev/null || {
		echo "valgrind: unknown scenario '$s' (expected apply, rollback, rehearse or ssh)" >&2
		exit 2
	}
done
command -v valgrind >/dev/null || {
	echo "valgrind: valgrind is not installed (apt-get install valgrind)" >&2
	exit 2
}

if [[ ! -f $build/build.ninja ]]; then
	meson setup "$build" -Dbuildtype=debug -Dwerror=true >/dev/null || exit 2
fi
sanitize=$(meson introspect --buildoptions "$build" | /usr/bin/python3 -c '
import json, sys
print(next(o["value"] for o in json.load(sys.stdin) if o["name"] == "b_sanitize"))')
if [[ $sanitize != none ]]; then
	echo "valgrind: $build is built with -Db_sanitize=$sanitize; valgrind needs a build without sanitizers" >&2
	exit 2
fi
ninja -C "$build" >/dev/null || { echo "valgrind: the build of $build failed" >&2; exit 2; }

work=$(mktemp -d "${TMPDIR:-/tmp}/runbook-valgrind.XXXXXX") || exit 2
trap 'rm -rf -- "$work"' EXIT
wrapper=$work/runbook
cat >"$wrapper" <<EOF
#!/bin/sh
# runbook under memcheck; one report per process in \$RB_VALGRIND_LOGS
RUNBOOK_PCRE2_NO_JIT=1 exec valgrind --error-exitcode=99 --leak-check=full \\
	--errors-for-leak-kinds=definite --track-fds=no --num-callers=30 \\
	--child-silent-after-fork=yes \\
	--log-file="\$RB_VALGRIND_LOGS/vg.%p.log" "$SRC/$build/runbook" "\$@"
EOF
chmod +x "$wrapper"

known_why() {	# known_why SCRIPT/CHECK: prints why, or fails
	local k
	for k in "${KNOWN[@]}"; do
		if [[ ${k%% *} == "$1" ]]; then
			echo "${k#* }"
			return 0
		fi
	done
	return 1
}

passed=0 failed=0
for s in "${scenarios[@]}"; do
	name=$(script_of "$s")
	logs=$work/$s
	mkdir -p "$logs"
	t0=$(date +%s)
	RB_VALGRIND_LOGS=$logs RUNBOOK=$wrapper SRCDIR=$SRC RUNBOOK_SANITIZED=1 \
		bash "tests/e2e/$name.sh" >"$work/$s.tap" 2>"$work/$s.stderr"
	rc=$?
	secs=$(($(date +%s) - t0))
	runs=0 dirty=0 killed=0 bad=0
	dirty_files=()
	for f in "$logs"/vg.*.log; do
		[[ -e $f ]] || continue
		runs=$((runs + 1))
		n=$(sed -n 's/.*ERROR SUMMARY: \([0-9][0-9]*\) errors.*/\1/p' "$f" | tail -n 1)
		if [[ -z $n ]]; then
			killed=$((killed + 1))
		elif ((n > 0)); then
			dirty=$((dirty + 1))
			dirty_files+=("$f")
		fi
	done
	echo "== $s (tests/e2e/$name.sh, ${secs}s): $(tail -n 1 "$work/$s.tap")"
	echo "   runbook processes under memcheck: $runs; with errors: $dirty; killed before their report: $killed"
	for f in "${dirty_files[@]:0:3}"; do
		echo "   memcheck errors in $(sed -n 's/.*Command: //p' "$f" | head -n 1 | cut -c1-200):"
		# the reports, without blank lines, valgrind's own notes
		# (--PID-- lines) and the summaries' boilerplate
		sed -n '/Parent PID/,$p' "$f" | sed 1d |
			grep -Ev '^--[0-9]+--|^==[0-9]+== *$|HEAP SUMMARY|in use at exit|total heap usage|Reachable blocks|To see them|For lists of|Use --track-origins' |
			head -n 40 | sed 's/^/     /'
	done
	((dirty <= 3)) || echo "   (and $((dirty - 3)) more)"
	((runs > 0)) || { echo "   no runbook process ran under valgrind"; bad=1; }
	((dirty == 0)) || bad=1
	while read -r line; do
		check=${line#not ok }
		check=${check#* - }
		check=${check%%:*}
		if why=$(known_why "$name/$check"); then
			echo "   failed check '$check' (known under valgrind: $why)"
		else
			echo "   failed check: ${line:0:300}"
			bad=1
		fi
	done < <(grep '^not ok' "$work/$s.tap")
	if ((rc != 0)) && ! grep -q '^not ok' "$work/$s.tap"; then
		echo "   tests/e2e/$name.sh exited $rc without a failed check:"
		tail -n 5 "$work/$s.stderr" | sed 's/^/     /'
		bad=1
	fi
	if ((bad)); then
		failed=$((failed + 1))
		echo "   FAIL"
	else
		passed=$((passed + 1))
		echo "   ok: memcheck clean"
	fi
done
echo "$passed passed, $failed failed"
((failed == 0))
