#!/usr/bin/env bash
# Benchmark (prints figures; not a test): how the size of the notes history
# affects `runbook apply` and `runbook log`.
#
#   - apply of a one-step runbook (run: true, rollback: true) against a notes
#     repository with 10 and with 10,000 earlier notes;
#   - `runbook log -n 20` at 100 and at 10,000 notes.
# Targets (issue): both ratios (large / small, medians) at most 1.5.
#
#   tests/bench/bench_notes.sh [RUNBOOK-BINARY]
#
# The binary defaults to $RUNBOOK, else build/runbook of this checkout.
# Env: RUNS (timed runs per case, default 20), BIG (default 10000).
#
# History is built with `git fast-import` so it has the shape real applies
# leave: changes/YYYY/MM/<change-id>.md spread over three years, two commits
# per change (running, then applied), author the owner, committer the operator.
# The notes themselves are a real note (from one real apply of a four-step
# runbook, ~3.7 KB) with the change id, runbook name and times substituted.
#
# Exit 0 whatever the figures; exit 1 if a runbook or git command failed, or
# if `runbook log` does not read the generated notes back.
set -u
export LC_ALL=C

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
RUNBOOK=${1:-${RUNBOOK:-$here/../../build/runbook}}
RUNS=${RUNS:-20}
BIG=${BIG:-10000}
WARMUP=2
SPAN=$((3 * 365 * 86400)) # history spread over three years before now

if [ ! -x "$RUNBOOK" ]; then
	printf 'bench_notes: no runbook binary at %s (pass it as the argument or RUNBOOK)\n' "$RUNBOOK" >&2
	exit 2
fi
RUNBOOK=$(cd "$(dirname "$RUNBOOK")" && pwd)/$(basename "$RUNBOOK")

tmp=$(mktemp -d "${TMPDIR:-/tmp}/runbook-bench-notes.XXXXXX") || exit 2
trap 'rm -rf -- "$tmp"' EXIT
trap 'exit 130' INT TERM HUP
cd "$tmp" || exit 2
unset RUNBOOK_NOTES

die() {
	printf 'bench_notes: %s\n' "$1" >&2
	[ -s "$tmp/stderr" ] && head -n 20 -- "$tmp/stderr" >&2
	exit 1
}

# rb ARGS...: run runbook quietly; any failure ends the benchmark.
rb() {
	"$RUNBOOK" "$@" >"$tmp/stdout" 2>"$tmp/stderr" ||
		die "runbook $* exited $?"
}

# --- template note from one real apply -------------------------------------

cat >deploy-api.yml <<'EOF'
version: 1
name: deploy-api
owner: Ops Team <ops@example.com>
reason: Roll out api 2.4.1 to fix stale cache entries
expected: /health reports 2.4.1 and the error rate stays under 1%
vars:
  version: "2.4.1"
  service: api
preflight:
  - name: current version
    run: echo 2.4.0
    capture: { previous: '^(\S+)' }
steps:
  - name: fetch release
    run: "printf 'downloading {{ service }}-{{ version }}.tar.gz\\n'; seq 1 12 | sed 's/^/  chunk /'"
    rollback: "echo removing {{ service }}-{{ version }}.tar.gz"
  - name: switch symlink
    run: "echo ln -sfn /srv/{{ service }}/releases/{{ version }} /srv/{{ service }}/current"
    rollback: "echo ln -sfn /srv/{{ service }}/releases/{{ previous }} /srv/{{ service }}/current"
  - name: restart service
    run: "echo systemctl restart {{ service }}; echo active"
    rollback: "echo systemctl restart {{ service }}"
verify:
  - name: health
    run: "echo '{\"status\":\"ok\",\"version\":\"2.4.1\"}'"
    expect: { stdout: '"version":"2\.4\.1"' }
EOF

cat >one.yml <<'EOF'
version: 1
name: bench-one
owner: Bench Owner <owner@example.com>
reason: Measure apply time against the notes history
expected: the step exits 0
steps:
  - name: noop
    run: "true"
    rollback: "true"
EOF

git init -q --bare tmpl.git || die "git init failed"
rb apply -q deploy-api.yml --notes tmpl.git
path=$(git -C tmpl.git ls-tree -r --name-only runbook-notes) || die "no notes branch"
git -C tmpl.git show "runbook-notes~1:$path" >run.raw || die "no running note"
git -C tmpl.git show "runbook-notes:$path" >done.raw || die "no applied note"
field() { sed -n "s/^$1: \"\\(.*\\)\"\$/\\1/p" done.raw; }
id=$(field change)
started=$(field started)
finished=$(field finished)
operator=$(field operator)
if [ -z "$id" ] || [ -z "$started" ] || [ -z "$finished" ] || [ -z "$operator" ]; then
	die "could not read change/started/finished/operator from the template note"
fi
for f in run 'done'; do
	sed -e "s/$id/@ID@/g" -e 's/deploy-api/@NAME@/g' \
		-e "s/${started//./\\.}/@START@/g" -e "s/${finished//./\\.}/@END@/g" \
		"$f.raw" >"$f.tmpl"
done
if ! grep -q '@ID@' done.tmpl || ! grep -q '@END@' done.tmpl; then
	die "template substitution failed"
fi

# --- history generation -----------------------------------------------------

# gen N: fast-import stream of N changes (2 commits each) ending an hour ago.
gen() {
	awk -v n="$1" -v span="$SPAN" -v now="$(date +%s)" \
		-v owner="Ops Team <ops@example.com>" -v operator="$operator" '
	function slurp(f,   s, line) {
		s = ""
		while ((getline line < f) > 0) s = s line "\n"
		close(f)
		return s
	}
	function civil(t) { # epoch seconds -> Y M D h m s (UTC), Hinnant
		z = int(t / 86400); sec = t - z * 86400
		z += 719468
		era = int(z / 146097); doe = z - era * 146097
		yoe = int((doe - int(doe / 1460) + int(doe / 36524) - int(doe / 146096)) / 365)
		Y = yoe + era * 400
		doy = doe - (365 * yoe + int(yoe / 4) - int(yoe / 100))
		mp = int((5 * doy + 2) / 153)
		D = doy - int((153 * mp + 2) / 5) + 1
		M = mp < 10 ? mp + 3 : mp - 9
		if (M <= 2) Y++
		h = int(sec / 3600); m = int((sec % 3600) / 60); s = sec % 60
	}
	function iso(t, ms) {
		civil(t)
		return sprintf("%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", Y, M, D, h, m, s, ms)
	}
	function fill(tmpl, id, name, st, en,   x) {
		x = tmpl
		gsub(/@ID@/, id, x); gsub(/@NAME@/, name, x)
		gsub(/@START@/, st, x); gsub(/@END@/, en, x)
		return x
	}
	function commit(who_t, subject, path, text,   msg) {
		msg = subject "\n\nRoll out api 2.4.1 to fix stale cache entries\n"
		printf "commit refs/heads/runbook-notes\n"
		printf "author %s %d +0000\ncommitter %s %d +0000\n", owner, who_t, operator, who_t
		printf "data %d\n%s", length(msg), msg
		printf "M 100644 inline %s\ndata %d\n%s\n", path, length(text), text
	}
	BEGIN {
		srand(n)
		run = slurp("run.tmpl"); done = slurp("done.tmpl")
		split("deploy-api rotate-certs db-migrate scale-workers flush-cache", names, " ")
		first = now - 3600 - span
		step = span / n
		for (i = 0; i < n; i++) {
			t = int(first + i * step + rand() * step / 2)
			dur = 5 + int(rand() * 300)
			ms0 = int(rand() * 1000); ms1 = int(rand() * 1000)
			name = names[1 + i % 5]
			civil(t)
			id = sprintf("%04d%02d%02dT%02d%02d%02dZ-%s-%04x%04x", Y, M, D, h, m, s,
				name, int(rand() * 65536), int(rand() * 65536))
			path = sprintf("changes/%04d/%02d/%s.md", Y, M, id)
			st = iso(t, ms0); en = iso(t + dur, ms1)
			commit(t, name ": running on local", path, fill(run, id, name, st, en))
			commit(t + dur, name ": applied on local", path, fill(done, id, name, st, en))
			last = id
		}
		print last > "last.id"
	}'
}

# make_repo N DIR: bare repository with N notes of history.
make_repo() {
	git init -q --bare "$2" || die "git init $2 failed"
	gen "$1" | git -C "$2" fast-import --quiet 2>"$tmp/stderr" ||
		die "git fast-import into $2 failed"
	mv last.id "$2.last"
	local count
	count=$(git -C "$2" ls-tree -r --name-only runbook-notes | wc -l)
	[ "$count" -eq "$1" ] || die "$2 holds $count notes, expected $1"
}

t0=${EPOCHREALTIME/./}
make_repo 10 n10.git
make_repo 100 n100.git
make_repo "$BIG" nbig.git
t1=${EPOCHREALTIME/./}
gen_ms=$(((t1 - t0) / 1000))
size_kb() { du -sk "$1" | cut -f1; }
sizes=$(printf '10 notes %d KB, 100 notes %d KB, %d notes %d KB' \
	"$(size_kb n10.git)" "$(size_kb n100.git)" "$BIG" "$(size_kb nbig.git)")

# runbook log must read the generated notes: newest first, all fields.
want=$(cat nbig.git.last)
rb log -n 3 --json --notes nbig.git
[ "$(wc -l <"$tmp/stdout")" -eq 3 ] || die "log -n 3 --json did not print 3 changes"
head -n 1 "$tmp/stdout" | grep -q "\"change\":\"$want\".*\"status\":\"applied\".*\"reason\":\"Roll out api" ||
	die "log -n 3 does not show the newest generated note $want: $(head -n 1 "$tmp/stdout")"
rb log -n 20 --json --notes nbig.git
[ "$(wc -l <"$tmp/stdout")" -eq 20 ] || die "log -n 20 --json did not print 20 changes"
rb show "$want" --notes nbig.git
grep -q 'Roll out api 2.4.1' "$tmp/stdout" || die "show $want did not print the note"

# --- measurements -----------------------------------------------------------

# time_us ARGS...: one run of runbook, wall time in microseconds on stdout.
time_us() {
	local a b
	a=${EPOCHREALTIME/./}
	"$RUNBOOK" "$@" >/dev/null 2>"$tmp/stderr" || die "runbook $* exited $?"
	b=${EPOCHREALTIME/./}
	echo $((b - a))
}

# Small and large cases alternate, so machine load hits both alike.
: >a_small; : >a_big; : >l_small; : >l_big
for ((r = -WARMUP; r < RUNS; r++)); do
	x=$(time_us apply -q one.yml --notes n10.git) || exit 1
	y=$(time_us apply -q one.yml --notes nbig.git) || exit 1
	if ((r >= 0)); then echo "$x" >>a_small; echo "$y" >>a_big; fi
done
for ((r = -WARMUP; r < RUNS; r++)); do
	x=$(time_us log -n 20 --notes n100.git) || exit 1
	y=$(time_us log -n 20 --notes nbig.git) || exit 1
	if ((r >= 0)); then echo "$x" >>l_small; echo "$y" >>l_big; fi
done

median() { sort -n "$1" | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
minimum() { sort -n "$1" | head -n 1; }

printf 'runbook notes benchmark: %s\n' "$RUNBOOK"
printf 'history: %d notes over 3 years, 2 commits each, ~%d B per note; generated in %d ms (fast-import)\n' \
	"$BIG" "$(wc -c <done.raw)" "$gen_ms"
printf 'repos (packed, before the timed applies): %s\n' "$sizes"
printf '%d timed runs per case (+%d warm-up), small and large alternating; %d CPUs\n\n' \
	"$RUNS" "$WARMUP" "$(nproc)"

awk -v big="$BIG" \
	-v as="$(median a_small)" -v asm="$(minimum a_small)" \
	-v ab="$(median a_big)" -v abm="$(minimum a_big)" \
	-v ls="$(median l_small)" -v lsm="$(minimum l_small)" \
	-v lb="$(median l_big)" -v lbm="$(minimum l_big)" 'BEGIN {
	printf "%-34s %8s %12s %12s\n", "case", "notes", "median ms", "min ms"
	printf "%-34s %8d %12.1f %12.1f\n", "apply one step (true)", 10, as / 1000, asm / 1000
	printf "%-34s %8d %12.1f %12.1f\n", "apply one step (true)", big, ab / 1000, abm / 1000
	printf "%-34s %8d %12.1f %12.1f\n", "log -n 20", 100, ls / 1000, lsm / 1000
	printf "%-34s %8d %12.1f %12.1f\n", "log -n 20", big, lb / 1000, lbm / 1000
	printf "\n"
	ra = ab / as; rl = lb / ls
	printf "ratio apply %d/10 notes:   %.2f (target <= 1.5) %s\n", big, ra, ra <= 1.5 ? "PASS" : "MISS"
	printf "ratio log   %d/100 notes:  %.2f (target <= 1.5) %s\n", big, rl, rl <= 1.5 ? "PASS" : "MISS"
}'
exit 0
