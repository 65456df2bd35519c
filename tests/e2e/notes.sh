#!/usr/bin/env bash
# End-to-end checks of change notes, the journal, locks and the commands that
# read them (PRODUCT.md §1, §3, §4, §5, §7), with real git repositories and
# real processes.
#
#   RUNBOOK=build/runbook SRCDIR=. bash tests/e2e/notes.sh
#
# Env: RUNBOOK (required) the built binary; SRCDIR the repository root (unused
# beyond locating the script); RUNBOOK_SANITIZED=1 allows 5x longer time limits.
#
# Checks: where notes go (the runbook's repository, --notes, RUNBOOK_NOTES,
# ./.runbook-notes); a note and its commits seen with plain git; secrets in no
# git object, journal or output; rollback on failure and a failed rollback
# resumed; `runbook rollback` replaying the recorded commands and captures
# (file edited, then deleted; secrets resolved again; --dry-run; --last);
# rolling back twice; status/log/show; target locks, busy and stale; kill -9
# mid-step; 20 concurrent applies on 20 targets into one notes repository.
#
# Every check runs in its own subdirectory of a private `mktemp -d` directory
# with its own git repositories; HOME points into it, with a git config that
# makes the operator "Olga Operator <olga@example.com>".
# Output (tests/e2e/lib/harness.sh): one `ok N - NAME` or `not ok N - NAME: why`
# per check (followed by a few `#` lines of runbook's stderr on failure), then
# `N passed, M failed`.
# shellcheck source=lib/harness.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/harness.sh"
# A deterministic operator: our own HOME with a git identity.
harness_init notes --operator 'Olga Operator <olga@example.com>'
need_tools git "$PY" pgrep sha256sum
OWNER='Ann Owner <ann@example.com>'

# a unique argument for the sleeps of this run, so pgrep finds only ours
UNIQ=$(( ($$ % 9000) + 1000 ))$(( RANDOM % 900 + 100 ))
# shellcheck disable=SC2317 # called at exit (on_cleanup)
kill_our_sleeps() {
	local p
	for p in $(pgrep -f "sleep [0-9]+\.$UNIQ" 2>/dev/null); do
		kill -KILL "$p" 2>/dev/null
	done
}
on_cleanup kill_our_sleeps

# ------------------------------------------------------------------ helpers

# next_second: waits until the wall clock second changes (change ids carry
# the time to the second).
next_second() {
	local s
	s=$(date +%s)
	while [ "$(date +%s)" = "$s" ]; do sleep 0.02; done
}

# hdr NAME: the required top-level keys of a runbook.
hdr() {
	printf 'version: 1\nname: %s\nowner: %s\n' "$1" "$OWNER"
	printf 'reason: e2e check of notes (%s)\nexpected: the check passes\n' "$1"
}

# mkrepo DIR: a git repository with one commit.
mkrepo() {
	mkdir -p "$1" &&
		git -C "$1" init -q &&
		echo 'hello' >"$1/README" &&
		git -C "$1" add README &&
		git -C "$1" commit -qm 'initial commit'
}

# cid FILE: the change id announced on stderr ("runbook: change ID: ..."); a
# relative FILE is in $D.
cid() {
	local f=$1
	case $f in /*) ;; *) f=$D/$f ;; esac
	sed -n 's/^runbook: change \([0-9]\{8\}T[0-9]\{6\}Z-[a-z0-9._-]*-[0-9a-f]\{4,\}\): .*/\1/p' "$f" | head -n 1
}

# ncommits GITDIR: commits reachable from runbook-notes (0 if none).
ncommits() {
	git --git-dir="$1" rev-list --count runbook-notes 2>/dev/null || echo 0
}

# note_path ID: changes/YYYY/MM/ID.md
note_path() { printf 'changes/%s/%s/%s.md' "${1:0:4}" "${1:4:2}" "$1"; }

# note_to GITDIR ID FILE: the note on the branch tip into FILE.
note_to() {
	git --git-dir="$1" show "runbook-notes:$(note_path "$2")" >"$3" 2>/dev/null ||
		bad "no note $(note_path "$2") on runbook-notes"
}

# note_status GITDIR ID: the status of the note on the branch tip.
note_status() {
	git --git-dir="$1" show "runbook-notes:$(note_path "$2")" 2>/dev/null |
		sed -n 's/^status: "\(.*\)"$/\1/p' | head -n 1
}

expect_status() {
	local got
	got=$(note_status "$1" "$2")
	check [ "$got" = "$3" ] || bad "expected the note of $2 to say status '$3', found '${got:-no note}'"
}

expect_commits() {
	local got
	got=$(ncommits "$1")
	check [ "$got" = "$2" ] || bad "${3:+$3: }expected $2 commits on runbook-notes, found $got"
}

# fsck_clean GITDIR [--strict]
fsck_clean() {
	local out
	if ! out=$(git --git-dir="$1" fsck --full --no-dangling "${@:2}" 2>&1); then
		bad "git fsck --full $* failed: $(echo "$out" | head -n 3 | paste -sd';' -)"
	elif echo "$out" | grep -Eqi 'error|missing|broken|bad|warning'; then
		bad "git fsck --full $* reported: $(echo "$out" | head -n 3 | paste -sd';' -)"
	fi
}

# subject_of GITDIR REV
subject_of() { git --git-dir="$1" log -1 --format=%s "$2" 2>/dev/null; }

cat >"$tmp/fm.py" <<'EOF'
# fm.py NOTE WANT_JSON: checks a change note. WANT is a JSON object:
#   scalar keys: front matter values that must be equal
#   "steps": [[phase, name, result, rollback_result-or-null], ...] in order
#   "cmds": {name: [command, rollback-or-null]} (first step of that name)
#   "body": [regex, ...] that must match the body (after the front matter)
import json, re, sys
path, want = sys.argv[1], json.loads(sys.argv[2])
text = open(path, encoding="utf-8").read()
problems = []
KEYS = ["change", "runbook", "file", "file_sha256", "target", "owner",
        "reason", "expected", "operator", "started", "finished", "status",
        "hosts", "vars", "captures", "metrics", "steps"]
if not text.startswith("---\n") or "\n---\n" not in text[3:]:
    print("the note does not start with YAML front matter between --- lines")
    sys.exit(1)
end = text.index("\n---\n", 3)
fm_text, body = text[4:end + 1], text[end + 5:]
try:
    import yaml
except ImportError:
    print("PyYAML is missing (Debian package python3-yaml, installed by .ci/setup): the front matter cannot be checked")
    sys.exit(1)
fm = yaml.safe_load(fm_text)
if not isinstance(fm, dict):
    print("the front matter is not a mapping")
    sys.exit(1)
for k in KEYS:
    if k not in fm:
        problems.append("front matter has no key %r" % k)
iso = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
for k in ("started", "finished"):
    v = fm.get(k)
    if v is not None and not iso.match(str(v)):
        problems.append("%s is not an ISO UTC time: %r" % (k, v))
for k, v in want.items():
    if k == "body":
        for rx in v:
            if not re.search(rx, body, re.M):
                problems.append("body does not match %r" % rx)
    elif k in ("steps", "cmds"):
        steps = fm.get("steps") or []
        if k == "steps":
            got = [[s.get("phase"), s.get("name"), s.get("result"),
                    s.get("rollback_result")] for s in steps]
            if got != v:
                problems.append("steps are %s, expected %s" % (got, v))
        else:
            for name, (cmd, rbk) in v.items():
                s = [s for s in steps if s.get("name") == name]
                if not s:
                    problems.append("no step %r" % name)
                    continue
                if s[0].get("command") != cmd:
                    problems.append("step %r command is %r, expected %r" % (name, s[0].get("command"), cmd))
                if rbk is not None and s[0].get("rollback") != rbk:
                    problems.append("step %r rollback is %r, expected %r" % (name, s[0].get("rollback"), rbk))
    elif k.startswith("?"):
        continue
    elif fm.get(k) != v:
        problems.append("front matter %s is %r, expected %r" % (k, fm.get(k), v))
for i, s in enumerate(fm.get("steps") or []):
    for k in ("host", "phase", "name", "command", "exit", "duration_ms", "result"):
        if k not in s:
            problems.append("steps[%d] has no %r" % (i, k))
    if s.get("phase") == "step" and "rollback" not in s:
        problems.append("steps[%d] (a step) has no 'rollback'" % i)
    if not isinstance(s.get("duration_ms"), int):
        problems.append("steps[%d].duration_ms is not a number" % i)
    if s.get("result") not in ("ok", "failed", "skipped", "timeout",
                               "rolled-back", "rollback-failed", "not-run"):
        problems.append("steps[%d].result is %r" % (i, s.get("result")))
for p in problems:
    print(p)
sys.exit(1 if problems else 0)
EOF

# fm_check NOTEFILE WANT_JSON
fm_check() {
	local msg rc
	msg=$("$PY" "$tmp/fm.py" "$1" "$2" 2>&1)
	rc=$?
	check [ "$rc" = 0 ] || bad "$(basename "$1"): $(echo "$msg" | head -n 6 | paste -sd';' -)"
}

# repo_state REPO: everything runbook must not touch in a work tree (git
# itself told not to refresh the index while looking).
repo_state() {
	(
		cd "$1" || exit 1
		export GIT_OPTIONAL_LOCKS=0
		git status --porcelain=v1 --untracked-files=all --ignored
		echo "HEAD $(git rev-parse HEAD) $(git symbolic-ref -q HEAD)"
		echo "index $(sha256sum .git/index | cut -d' ' -f1) $(stat -c %y .git/index)"
		echo "HEAD-log $(sha256sum .git/logs/HEAD | cut -d' ' -f1)"
		git for-each-ref --format='%(refname) %(objectname)' | grep -v '^refs/heads/runbook-notes '
		git stash list
		find . -path ./.git -prune -o -type f -print0 | sort -z | xargs -0 sha256sum
	)
}

# ------------------------------------------------------------------ 1. notes in the runbook's repository

begin notes-in-runbook-repo
mkrepo repo
mkdir -p repo/ops elsewhere
{ hdr fp; cat <<'EOF'
steps:
  - name: one
    run: touch one
    rollback: rm -f one
EOF
} >repo/ops/f.yml
git -C repo add ops/f.yml && git -C repo commit -qm 'add runbook'
# a work tree in the middle of something: staged, modified, untracked
echo staged >repo/staged.txt && git -C repo add staged.txt
echo changed >>repo/README
echo untracked >repo/untracked.txt
before=$(repo_state repo)
sleep 0.05	# an index rewritten later would get another mtime
cd elsewhere || exit 1
rb apply apply "$D/repo/ops/f.yml"
expect_rc 0
check [ -e one ] || bad "the step did not run in the working directory"
id=$(cid apply.err)
check [ -n "$id" ] || bad "no change id on stderr"
after=$(repo_state "$D/repo")
check [ "$before" = "$after" ] ||
	bad "the work tree, index, HEAD or refs changed: $(diff <(echo "$before") <(echo "$after") | grep '^[<>]' | head -n 4 | paste -sd';' -)"
git -C "$D/repo" rev-parse -q --verify refs/heads/runbook-notes >/dev/null ||
	bad "no branch runbook-notes in the runbook's repository"
expect_commits "$D/repo/.git" 2
[ -n "$id" ] && expect_status "$D/repo/.git" "$id" applied
check [ ! -e .runbook-notes ] || bad "a .runbook-notes was created in the working directory"
check [ ! -e "$D/repo/ops/.runbook-notes" ] || bad "a .runbook-notes was created next to the runbook"
check [ "$(git -C "$D/repo" rev-parse --abbrev-ref HEAD)" = main ] || bad "HEAD no longer on main"
# the note branch holds only the note and the runbook as applied, never
# the project's other files
files=$(git -C "$D/repo" ls-tree -r --name-only runbook-notes 2>/dev/null | paste -sd' ' -)
want="$(note_path "$id") $(note_path "$id" | sed 's/\.md$/.yml/')"
check [ "$files" = "$want" ] || bad "expected runbook-notes to hold only $want, found '$files'"
# log from inside the repository finds the notes
cd "$D/repo/ops" || exit 1
rb log log
expect_rc 0 "log from inside the repository"
has_fixed log.out "$id" "the change"
fsck_clean "$D/repo/.git" --strict
end

# ------------------------------------------------------------------ 2. --notes and RUNBOOK_NOTES

begin notes-option-and-env
mkrepo repo
{ hdr fp; cat <<'EOF'
steps:
  - name: one
    run: "true"
    rollback: none
EOF
} >repo/f.yml
rb opt apply repo/f.yml --notes "$D/opt-notes"
expect_rc 0 "--notes to a new path"
check [ "$(git --git-dir="$D/opt-notes" rev-parse --is-bare-repository 2>/dev/null)" = true ] ||
	bad "--notes PATH that did not exist was not created as a bare repository"
expect_commits "$D/opt-notes" 2 "--notes"
RUNBOOK_NOTES=$D/env-notes rb env apply repo/f.yml
expect_rc 0 "RUNBOOK_NOTES"
expect_commits "$D/env-notes" 2 "RUNBOOK_NOTES"
expect_commits "$D/opt-notes" 2 "--notes after an apply with RUNBOOK_NOTES"
RUNBOOK_NOTES=$D/env-notes rb both apply repo/f.yml --notes "$D/opt-notes"
expect_rc 0 "--notes with RUNBOOK_NOTES"
expect_commits "$D/opt-notes" 4 "--notes wins over RUNBOOK_NOTES"
expect_commits "$D/env-notes" 2 "RUNBOOK_NOTES when --notes is given"
# an existing non-bare repository as --notes: branch only, tree untouched
mkrepo other
before=$(repo_state other)
rb other apply repo/f.yml --notes "$D/other"
expect_rc 0 "--notes to an existing repository"
expect_commits "$D/other/.git" 2 "--notes to an existing repository"
check [ "$before" = "$(repo_state other)" ] || bad "--notes repository's work tree, index or HEAD changed"
check [ "$(git -C repo for-each-ref refs/heads/runbook-notes)" = "" ] ||
	bad "the runbook's own repository got notes although --notes/RUNBOOK_NOTES was given"
rb log-opt log --notes "$D/opt-notes"
expect_rc 0 "log --notes"
n=$(grep -Ec '^[0-9]{8}T[0-9]{6}Z-fp-' log-opt.out)
check [ "$n" = 2 ] || bad "expected log --notes to list 2 changes, found $n"
RUNBOOK_NOTES=$D/env-notes rb log-env log
expect_rc 0 "log with RUNBOOK_NOTES"
n=$(grep -Ec '^[0-9]{8}T[0-9]{6}Z-fp-' log-env.out)
check [ "$n" = 1 ] || bad "expected log with RUNBOOK_NOTES to list 1 change, found $n"
rb log-missing log --notes "$D/no-such-notes"
expect_rc 2 "log --notes to a missing path"
has log-missing.err "no-such-notes" "the missing path"
check [ ! -e "$D/no-such-notes" ] || bad "log created a notes repository"
end

# ------------------------------------------------------------------ 3. outside any repository

begin notes-outside-repo
mkdir -p rb cwd
if git -C "$D" rev-parse --git-dir >/dev/null 2>&1; then
	bad "precondition: $D is inside a git repository ($(git -C "$D" rev-parse --show-toplevel)); set TMPDIR elsewhere"
fi
{ hdr fp; cat <<'EOF'
steps:
  - name: one
    run: "true"
    rollback: none
EOF
} >rb/f.yml
cd cwd || exit 1
rb apply apply "$D/rb/f.yml"
expect_rc 0
id=$(cid apply.err)
if [ ! -d .runbook-notes ]; then
	bad "no ./.runbook-notes in the working directory"
else
	check [ "$(git --git-dir=.runbook-notes rev-parse --is-bare-repository 2>/dev/null)" = true ] ||
		bad "./.runbook-notes is not a bare repository"
	mode=$(stat -c %a .runbook-notes)
	check [ "$mode" = 700 ] || bad "expected ./.runbook-notes mode 700, found $mode"
	expect_commits .runbook-notes 2
	[ -n "$id" ] && expect_status .runbook-notes "$id" applied
	fsck_clean .runbook-notes --strict
fi
check [ ! -e "$D/rb/.runbook-notes" ] || bad "notes were created next to the runbook instead of ./"
rb log log
expect_rc 0 "log in the same directory"
has_fixed log.out "${id:-no-id}" "the change"
end

# ------------------------------------------------------------------ 4. a note reviewed with plain git

begin note-reviewable-with-git
mkrepo repo
echo 5 >repo/counter
{ hdr fp; cat <<'EOF'
vars:
  color: blue
preflight:
  - name: pre
    run: echo pre-ok
    capture: { pv: '^(\S+)$' }
metrics:
  - name: m1
    run: echo "m=$(cat counter)"
    pattern: 'm=(\d+)'
steps:
  - name: one
    run: |
      echo VAL=abc123
      echo 7 > counter
    capture: { v: 'VAL=(\w+)' }
    rollback: echo 5 > counter; echo {{ v }} {{ color }}
  - name: two
    run: echo two-{{ color }}
    rollback: none
verify:
  - name: ver
    run: grep -q 7 counter
EOF
} >repo/f.yml
git -C repo add f.yml counter && git -C repo commit -qm 'runbook'
cd repo || exit 1
rb apply apply f.yml
expect_rc 0
id=$(cid apply.err)
G=$D/repo/.git
expect_commits "$G" 2 "after one apply"
if [ -n "$id" ]; then
	check [ "$(subject_of "$G" runbook-notes)" = "fp: applied on local" ] ||
		bad "expected the last commit's subject 'fp: applied on local', found '$(subject_of "$G" runbook-notes)'"
	check [ "$(subject_of "$G" runbook-notes~1)" = "fp: running on local" ] ||
		bad "expected the first commit's subject 'fp: running on local', found '$(subject_of "$G" runbook-notes~1)'"
	body=$(git --git-dir="$G" log -1 --format=%b runbook-notes | sed '/^$/d')
	check [ "$body" = "e2e check of notes (fp)" ] || bad "expected the commit body to be the reason, found '$body'"
	for rev in runbook-notes runbook-notes~1; do
		a=$(git --git-dir="$G" log -1 --format='%an <%ae>' "$rev")
		c=$(git --git-dir="$G" log -1 --format='%cn <%ce>' "$rev")
		check [ "$a" = "$OWNER" ] || bad "expected author '$OWNER' of $rev, found '$a'"
		check [ "$c" = "$OPERATOR" ] || bad "expected committer '$OPERATOR' of $rev, found '$c'"
	done
	path=$(note_path "$id")
	git --git-dir="$G" show "runbook-notes~1:$path" >open.md 2>/dev/null ||
		bad "the first commit has no $path"
	fm_check open.md '{"status": "running", "change": "'"$id"'"}'
	note_to "$G" "$id" note.md
	sha=$(sha256sum f.yml | cut -d' ' -f1)
	fm_check note.md "$(cat <<EOF
{"change": "$id", "runbook": "fp", "file": "f.yml", "file_sha256": "$sha",
 "target": "local", "owner": "$OWNER", "reason": "e2e check of notes (fp)",
 "expected": "the check passes", "operator": "$OPERATOR", "status": "applied",
 "hosts": ["local"], "vars": {"color": "blue"},
 "captures": {"local": {"pv": "pre-ok", "v": "abc123"}},
 "metrics": {"m1": {"before": "5", "after": "7"}},
 "steps": [["preflight", "pre", "ok", null], ["metric", "m1", "ok", null],
           ["step", "one", "ok", "not-run"], ["step", "two", "ok", "not-run"],
           ["verify", "ver", "ok", null], ["metric", "m1", "ok", null]],
 "cmds": {"one": ["echo VAL=abc123\necho 7 > counter\n", "echo 5 > counter; echo abc123 blue"],
          "two": ["echo two-blue", "none"]},
 "body": ["^# fp on local: applied$", "Why:\\\\*\\\\* e2e check of notes \\\\(fp\\\\)",
          "Operator:\\\\*\\\\* Olga Operator <olga@example.com>",
          "^\\\\| host \\\\| phase \\\\| step \\\\| result \\\\| exit \\\\| time \\\\| rollback \\\\|$",
          "^\\\\| local \\\\| step \\\\| one \\\\| ok \\\\| 0 \\\\| [^|]+ \\\\| not-run \\\\|$",
          "^\\\\| m1 \\\\| local \\\\| 5 \\\\| 7 \\\\|$",
          "^runbook rollback $id$", "two-blue"]}
EOF
)"
fi
# one more apply: two more commits, two notes
echo 5 >counter
rb apply2 apply f.yml
expect_rc 0 "second apply"
expect_commits "$G" 4 "after two applies"
n=$(git --git-dir="$G" ls-tree -r --name-only runbook-notes | grep -c '^changes/[0-9]\{4\}/[0-9]\{2\}/.*\.md$')
check [ "$n" = 2 ] || bad "expected 2 note files after two applies, found $n"
fsck_clean "$G" --strict
end

# ------------------------------------------------------------------ 5. secrets are never written

begin secrets-never-written
SECRET_ENV=envsecret-Qx7Z-41c9e2
SECRET_FILE=filesecret-Kp3W-88a1f0
printf '%s\n' "$SECRET_FILE" >secret.txt
chmod 600 secret.txt
git init -q --bare notes.git
{ hdr sec; cat <<EOF
secrets:
  tok: { env: RB_E2E_TOKEN }
  key: { file: $D/secret.txt }
vars:
  code: "0"
steps:
  - name: use
    env:
      TOKEN: "{{ secrets.tok }}"
    run: |
      echo "token is {{ secrets.tok }} and key is {{ secrets.key }}"
      echo "env TOKEN=\$TOKEN" >&2
      echo "LEAK={{ secrets.tok }}"
    capture: { leak: 'LEAK=(\S+)' }
    rollback: echo "undo with {{ secrets.tok }} {{ secrets.key }}"
  - name: maybe fail
    run: |
      echo "again {{ secrets.key }}"
      exit {{ code }}
    rollback: echo "undo fail {{ secrets.tok }}"
EOF
} >f.yml
export RB_E2E_TOKEN=$SECRET_ENV
rb apply apply f.yml --notes notes.git -v
expect_rc 0 "apply"
id=$(cid apply.err)
has apply.err '\[secret:tok\]' "the masked secret [secret:tok] (so the output was really checked)"
has apply.err '\[secret:key\]' "the masked secret [secret:key]"
rb json apply f.yml --notes notes.git --json -e code=1
expect_rc 1 "apply --json that fails and rolls back"
check [ -s json.out ] || bad "apply --json printed nothing on stdout"
rb show show "${id:-x}" --notes notes.git
expect_rc 0 "show"
rb showj show "${id:-x}" --notes notes.git --json
expect_rc 0 "show --json"
has_fixed show.out '{{ secrets.tok }}' "the command with the secret left as a template"
rb log log --notes notes.git
rb logj log --notes notes.git --json
rb status status --notes notes.git
rb dry rollback "${id:-x}" --notes notes.git --dry-run
expect_rc 0 "rollback --dry-run"
has_fixed dry.out '[secret:tok]' "the rollback with [secret:tok]"
# the rollback runs commands that print both secrets again
rb rollback rollback "${id:-x}" --notes notes.git -v
expect_rc 0 "rollback"
rb rollbackj rollback "${id:-x}" --notes notes.git --json
expect_rc 0 "rollback --json (nothing left)"
unset RB_E2E_TOKEN
G=$D/notes.git
leaks=
for s in "$SECRET_ENV" "$SECRET_FILE"; do
	n=$(git --git-dir="$G" cat-file --batch-all-objects --batch 2>/dev/null | grep -caF -- "$s")
	[ "$n" = 0 ] || leaks="$leaks git-objects"
	n=$(git --git-dir="$G" rev-list --objects --all | cut -d' ' -f1 |
		git --git-dir="$G" cat-file --batch 2>/dev/null | grep -caF -- "$s")
	[ "$n" = 0 ] || leaks="$leaks reachable-objects"
	grep -rlaF -- "$s" "$G" >/dev/null 2>&1 && leaks="$leaks $(grep -rlaF -- "$s" "$G" | sed "s|$G/||" | paste -sd, -)"
	for f in "$D"/*.out "$D"/*.err; do
		grep -qaF -- "$s" "$f" && leaks="$leaks $(basename "$f")"
	done
done
check [ -z "$leaks" ] || bad "a secret value was written to:$leaks"
# the scans above looked at real records
find "$G/runbook" -name '*.log' -type f 2>/dev/null | grep -q . ||
	bad "no journal file under $G/runbook/journal"
check grep -qa 'step-begin' "$G"/runbook/journal/done/*.log 2>/dev/null ||
	bad "the journal has no step records"
n=$(git --git-dir="$G" cat-file --batch-all-objects --batch-check 2>/dev/null | wc -l)
check [ "$n" -ge 8 ] || bad "expected the notes repository to hold objects, found $n"
for f in "$G"/runbook/journal/done/*.log; do
	[ -e "$f" ] || continue
	m=$(stat -c %a "$f")
	check [ "$m" = 600 ] || bad "expected journal $(basename "$f") mode 600, found $m"
done
for d in "$G/runbook" "$G/runbook/journal" "$G/runbook/journal/done"; do
	m=$(stat -c %a "$d" 2>/dev/null)
	check [ "$m" = 700 ] || bad "expected ${d#"$G"/} mode 700, found ${m:-nothing}"
done
end

# ------------------------------------------------------------------ 6. world-readable secret file

begin secret-file-world-readable
printf 'filesecret-Zz9-0000\n' >secret.txt
chmod 644 secret.txt
git init -q --bare notes.git
{ hdr sec2; cat <<EOF
secrets:
  key: { file: $D/secret.txt }
steps:
  - name: use
    run: echo "{{ secrets.key }}" > ran
    rollback: rm -f ran
EOF
} >f.yml
rb apply apply f.yml --notes notes.git
expect_rc 5
has apply.err "secret.txt" "the secret file"
has apply.err "readable|chmod|mode|permission" "why the file is refused"
check [ ! -e ran ] || bad "the step ran"
expect_commits notes.git 0 "a refused apply"
chmod 600 secret.txt
rb apply2 apply f.yml --notes notes.git
expect_rc 0 "with mode 600"
end

# ------------------------------------------------------------------ 7. failure: rolled back

begin failure-rolled-back
git init -q --bare notes.git
{ hdr rbk; cat <<'EOF'
steps:
  - name: s1
    run: echo 'do 1' >> log
    rollback: echo 'undo 1' >> log
  - name: s2
    run: |
      echo 'do 2' >> log
      exit 7
    rollback: echo 'undo 2' >> log
EOF
} >f.yml
rb apply apply f.yml --notes notes.git
expect_rc 1
expect_lines log 'do 1|do 2|undo 2|undo 1'
id=$(cid apply.err)
expect_status notes.git "${id:-x}" rolled-back
expect_commits notes.git 2
check [ "$(subject_of notes.git runbook-notes)" = "rbk: rolled-back on local" ] ||
	bad "expected subject 'rbk: rolled-back on local', found '$(subject_of notes.git runbook-notes)'"
note_to notes.git "${id:-x}" note.md
fm_check note.md '{"status": "rolled-back", "steps": [["step", "s1", "ok", "rolled-back"], ["step", "s2", "failed", "rolled-back"]]}'
rb status status --notes notes.git
expect_rc 0 "status"
has status.out "^no unfinished changes" "that nothing is unfinished"
end

# ------------------------------------------------------------------ 8. rollback fails, then resumes

begin rollback-failed-then-resume
git init -q --bare notes.git
{ hdr rbf; cat <<'EOF'
steps:
  - name: s1
    run: echo 'do 1' >> log
    rollback: echo 'undo 1' >> log
  - name: s2
    run: echo 'do 2' >> log
    rollback: |
      echo 'undo 2 tried' >> log
      test -f fixed || exit 1
      echo 'undo 2' >> log
  - name: s3
    run: |
      echo 'do 3' >> log
      exit 7
    rollback: echo 'undo 3' >> log
EOF
} >f.yml
rb apply apply f.yml --notes notes.git
expect_rc 3
expect_lines log 'do 1|do 2|do 3|undo 3|undo 2 tried'
id=$(cid apply.err)
expect_status notes.git "${id:-x}" rollback-failed
expect_commits notes.git 2 "after the apply"
check [ "$(subject_of notes.git runbook-notes)" = "rbf: rollback-failed on local" ] ||
	bad "expected subject 'rbf: rollback-failed on local', found '$(subject_of notes.git runbook-notes)'"
rb status status --notes notes.git
expect_rc 0 "status"
has status.out "^${id:-x}  rbf on local: rollback-failed$" "the change as rollback-failed"
has status.out "applied, not undone: .*'s2' on local" "s2 as not undone"
has status.out "applied, not undone: .*'s1' on local" "s1 as not undone"
hasnt status.out "'s3'" "s3 (it was rolled back)"
has status.out "runbook rollback ${id:-x}" "the command that finishes it"
rb busy apply f.yml --notes notes.git
expect_rc 4 "apply while a rollback is unfinished"
has busy.err "runbook rollback ${id:-x}" "the command that finishes the change"
expect_lines log 'do 1|do 2|do 3|undo 3|undo 2 tried'
touch fixed
rb resume rollback "${id:0:${#id}-2}" --notes notes.git
expect_rc 0 "rollback after fixing the cause"
expect_lines log 'do 1|do 2|do 3|undo 3|undo 2 tried|undo 2 tried|undo 2|undo 1'
expect_status notes.git "${id:-x}" rolled-back
expect_commits notes.git 3 "after the resumed rollback"
check [ "$(subject_of notes.git runbook-notes)" = "rbf: rolled-back on local" ] ||
	bad "expected subject 'rbf: rolled-back on local', found '$(subject_of notes.git runbook-notes)'"
note_to notes.git "${id:-x}" note.md
fm_check note.md '{"status": "rolled-back", "steps": [["step", "s1", "ok", "rolled-back"], ["step", "s2", "ok", "rolled-back"], ["step", "s3", "failed", "rolled-back"]]}'
rb status2 status --notes notes.git
expect_rc 0 "status after the rollback"
has status2.out "^no unfinished changes" "that nothing is unfinished"
rb again apply f.yml --notes notes.git
expect_rc 1 "apply after the rollback finished (the target is free again)"
fsck_clean notes.git --strict
end

# ------------------------------------------------------------------ 9. rollback replays the record

begin rollback-replays-record
mkrepo repo
cd repo || exit 1
echo orig-41 >state
{ hdr aaa-older; cat <<'EOF'
steps:
  - name: other
    run: "true"
    rollback: echo 'undo older' >> rblog
EOF
} >older.yml
{ hdr replay; cat <<'EOF'
secrets:
  tok: { env: RB_E2E_REPLAY_TOK }
steps:
  - name: swap
    run: |
      cat state
      echo new > state
    capture: { prev: '^(\S+)$' }
    rollback: |
      echo {{ prev }} > state
      echo "v1 {{ prev }} {{ secrets.tok }}" >> rblog
  - name: mark
    run: echo marked >> trail
    rollback: echo 'v1 unmark' >> rblog
EOF
} >f.yml
git add f.yml older.yml state && git commit -qm 'runbooks'
G=$D/repo/.git
rb older apply older.yml
expect_rc 0 "apply older.yml"
older=$(cid older.err)
next_second
RB_E2E_REPLAY_TOK=alpha-secret-9d1 rb apply apply f.yml
expect_rc 0 "apply"
id=$(cid apply.err)
check [ "$(cat state)" = new ] || bad "the step did not change state"
expect_commits "$G" 4 "two applies"
# today's file says something else, then is gone
sed -i 's/echo "v1 {{ prev }} {{ secrets.tok }}" >> rblog/echo v2 >> rblog/; s/v1 unmark/v2 unmark/' f.yml
check grep -q 'v2 >> rblog' f.yml || bad "could not edit the runbook"
git commit -qam 'edit the runbook'
git rm -q f.yml && git commit -qm 'delete the runbook'
# the secret is needed again and is not set
rb_cmd nosecret env -u RB_E2E_REPLAY_TOK "$RUNBOOK" rollback --last
expect_rc 5 "rollback without the secret's env variable"
has nosecret.err "RB_E2E_REPLAY_TOK" "the missing variable"
check [ ! -e rblog ] || bad "a rollback ran without its secret"
check [ "$(cat state)" = new ] || bad "state changed without the secret"
expect_commits "$G" 4 "a refused rollback"
# --dry-run: the recorded commands, the captured value, nothing run
RB_E2E_REPLAY_TOK=beta-secret-7e2 rb dry rollback --last --dry-run
expect_rc 0 "rollback --dry-run"
has dry.out "^local[[:space:]]+mark[[:space:]]+echo 'v1 unmark' >> rblog$" "the recorded rollback of mark"
has dry.out "^local[[:space:]]+swap[[:space:]]+echo orig-41 > state" "the recorded rollback of swap with the captured value orig-41"
has_fixed dry.out 'v1 orig-41 [secret:tok]' "the secret masked"
hasnt dry.out "v2" "today's (edited) rollback"
hasnt dry.out "undo older" "the older change"
order=$(sed -n 's/^local[[:space:]]*\([a-z]*\).*/\1/p' "$D/dry.out" | paste -sd' ' -)
check [ "$order" = "mark swap" ] || bad "expected the dry run to list mark then swap (reverse order), found '$order'"
check [ ! -e rblog ] || bad "--dry-run ran a rollback"
check [ "$(cat state)" = new ] || bad "--dry-run changed state"
expect_commits "$G" 4 "a dry run"
# the real replay: the old command, the old captured value, today's secret
RB_E2E_REPLAY_TOK=beta-secret-7e2 rb replay rollback --last
expect_rc 0 "rollback --last"
check [ "$(cat state 2>/dev/null)" = orig-41 ] || bad "expected state 'orig-41' back, found '$(cat state 2>/dev/null)'"
expect_lines rblog 'v1 unmark|v1 orig-41 beta-secret-7e2'
for f in replay.out replay.err dry.out dry.err; do
	refute grep -qE 'beta-secret-7e2|alpha-secret-9d1' "$D/$f" || bad "$f shows a secret value"
done
expect_status "$G" "${id:-x}" rolled-back
expect_status "$G" "${older:-x}" applied
expect_commits "$G" 5 "after the rollback"
check [ "$(subject_of "$G" runbook-notes)" = "replay: rolled-back on local" ] ||
	bad "expected subject 'replay: rolled-back on local', found '$(subject_of "$G" runbook-notes)'"
git --git-dir="$G" cat-file --batch-all-objects --batch | grep -qaE 'beta-secret-7e2|alpha-secret-9d1' &&
	bad "a secret value is in the notes repository"
refute grep -rqaE 'beta-secret-7e2|alpha-secret-9d1' "$G/runbook" || bad "a secret value is in the journal"
end

# ------------------------------------------------------------------ 10. rolling back twice

# A change already rolled back by `runbook rollback` has nothing left: exit 0,
# a message, nothing run, and no second note commit - neither at once nor
# later, when status or apply settle the journals.
begin rollback-again-after-rollback
git init -q --bare notes.git
{ hdr twice; cat <<'EOF'
steps:
  - name: s1
    run: echo 'do 1' >> log
    rollback: echo 'undo 1' >> log
EOF
} >ok.yml
rb apply apply ok.yml --notes notes.git
expect_rc 0 "apply"
a=$(cid apply.err)
rb rb1 rollback "${a:-x}" --notes notes.git
expect_rc 0 "first rollback"
expect_commits notes.git 3 "after the first rollback"
rb rb2 rollback "${a:-x}" --notes notes.git
expect_rc 0 "second rollback"
has rb2.err "nothing left to roll back" "that nothing is left"
expect_lines log 'do 1|undo 1'
expect_commits notes.git 3 "right after the second rollback"
ls notes.git/runbook/journal/*.log >/dev/null 2>&1 &&
	bad "the second rollback left the journal of a finished change in journal/ (not done/): $(cd notes.git/runbook/journal && ls ./*.log | paste -sd' ' -)"
rb status status --notes notes.git
expect_rc 0 "status"
hasnt status.err "committed the pending note" "committing a pending note (there is none)"
expect_commits notes.git 3 "after status"
n=$(git --git-dir=notes.git log --format=%s runbook-notes | grep -c 'rolled-back')
check [ "$n" = 1 ] || bad "expected one 'rolled-back' commit, found $n: $(git --git-dir=notes.git log --format=%s runbook-notes | paste -sd'|' -)"
end

# A change that apply already rolled back, with a `rollback: none` step among
# what ran: nothing is left either.
begin rollback-after-apply-rolled-back
git init -q --bare notes.git
{ hdr allrb; cat <<'EOF'
steps:
  - name: s1
    run: echo 'do 1' >> log
    rollback: echo 'undo 1' >> log
  - name: s2
    run: exit 1
    rollback: echo 'undo 2' >> log
EOF
} >all.yml
{ hdr nonerb; cat <<'EOF'
steps:
  - name: s1
    run: echo 'do 1' >> log
    rollback: echo 'undo 1' >> log
  - name: s2
    run: echo 'read only' >> log
    rollback: none
  - name: s3
    run: exit 1
    rollback: echo 'undo 3' >> log
EOF
} >none.yml
rb all apply all.yml --notes notes.git
expect_rc 1 "failing apply"
a=$(cid all.err)
rb rb-all rollback "${a:-x}" --notes notes.git
expect_rc 0 "rollback of a change rolled back by apply"
has rb-all.err "nothing left to roll back" "that nothing is left"
expect_commits notes.git 2 "after rolling back a rolled-back change"
: >log
git init -q --bare notes2.git
rb none apply none.yml --notes notes2.git
expect_rc 1 "failing apply with a 'rollback: none' step"
b=$(cid none.err)
expect_lines log 'do 1|read only|undo 3|undo 1'
expect_commits notes2.git 2 "after the failing apply with a 'rollback: none' step"
rb rb-none rollback "${b:-x}" --notes notes2.git
expect_rc 0 "rollback of a change (with a 'rollback: none' step) rolled back by apply"
has rb-none.err "nothing left to roll back" "that nothing is left"
expect_lines log 'do 1|read only|undo 3|undo 1'
expect_commits notes2.git 2 "after rolling back a rolled-back change with a 'rollback: none' step"
end

# ------------------------------------------------------------------ 11. secrets in recorded commands

# The note keeps every command with secrets as {{ secrets.NAME }} and
# `runbook rollback` resolves them again (§7) - also where the secret follows
# "password=" or is the value of an env variable named TOKEN, which the
# built-in patterns mask in output.
begin replay-secret-after-key
git init -q --bare notes.git
{ hdr keyed; cat <<'EOF'
secrets:
  tok: { env: RB_E2E_KEYED }
steps:
  - name: one
    env:
      TOKEN: "{{ secrets.tok }}"
    run: "true"
    rollback: |
      echo "env=$TOKEN" >> rblog
      echo password={{ secrets.tok }} >> rblog
      echo plain {{ secrets.tok }} >> rblog
EOF
} >f.yml
RB_E2E_KEYED=keyed-secret-5a5a rb apply apply f.yml --notes notes.git
expect_rc 0 "apply"
id=$(cid apply.err)
note_to notes.git "${id:-x}" note.md
has_fixed note.md '"TOKEN={{ secrets.tok }}"' "the env variable as recorded: TOKEN={{ secrets.tok }}"
has_fixed note.md 'password={{ secrets.tok }}' "the rollback as recorded: password={{ secrets.tok }}"
RB_E2E_KEYED=keyed-secret-5a5a rb rollback rollback "${id:-x}" --notes notes.git
expect_rc 0 "rollback"
expect_lines rblog 'env=keyed-secret-5a5a|password=keyed-secret-5a5a|plain keyed-secret-5a5a'
hasnt rollback.err "keyed-secret-5a5a" "the secret value"
end

# ------------------------------------------------------------------ 12. newest within one second

# Two changes started within the same second: --last and log must still put
# the one started last first (ids "sort by time").
begin last-is-newest-within-a-second
git init -q --bare notes.git
for n in zz-first aa-second; do
	{ hdr "$n"; cat <<EOF
steps:
  - name: one
    run: "true"
    rollback: echo 'undo $n' >> log
EOF
	} >"$n.yml"
done
same=
for _ in 1 2 3 4 5; do
	rm -rf notes.git && git init -q --bare notes.git
	# start right after a second boundary, so both fit in one second
	next_second
	rb first apply zz-first.yml --notes notes.git -q
	rb second apply aa-second.yml --notes notes.git -q
	ids=$("$RUNBOOK" log --notes notes.git --json 2>/dev/null | "$PY" -c '
import json, sys
print(" ".join(json.loads(l)["change"] for l in sys.stdin))')
	set -- $ids
	if [ $# = 2 ] && [ "${1:0:16}" = "${2:0:16}" ]; then
		same=1
		break
	fi
done
if [ -z "$same" ]; then
	bad "could not start two changes within one second in 5 tries"
else
	case $1 in *-aa-second-*) ;; *) bad "expected log to list aa-second (started last) first, found $1 first" ;; esac
	rb last rollback --last --notes notes.git
	expect_rc 0 "rollback --last"
	expect_lines log 'undo aa-second'
fi
end

# ------------------------------------------------------------------ 13. status, log, show

begin status-log-show
git init -q --bare notes.git
rb status0 status --notes notes.git
expect_rc 0 "status with no changes"
has status0.out "^no unfinished changes in " "that nothing is unfinished"
rb log0 log --notes notes.git
expect_rc 0 "log with no changes"
has log0.out "^no changes recorded in " "that nothing is recorded"
rb log0j log --notes notes.git --json
expect_rc 0 "log --json with no changes"
check [ ! -s log0j.out ] || bad "expected no JSON lines for no changes, found '$(head -c 200 log0j.out)'"
{ hdr lg; cat <<'EOF'
vars:
  n: "0"
steps:
  - name: one
    run: echo {{ n }} >> log
    rollback: none
EOF
} >f.yml
ids=()
for n in 1 2 3; do
	[ "$n" = 1 ] || next_second
	rb "apply$n" apply f.yml --notes notes.git -e "n=$n"
	expect_rc 0 "apply $n"
	ids+=("$(cid "apply$n.err")")
done
i1=${ids[0]} i2=${ids[1]} i3=${ids[2]}
rb log log --notes notes.git
expect_rc 0 "log"
got=$(grep -Eo '^[0-9]{8}T[0-9]{6}Z-lg-[0-9a-f]+' log.out | paste -sd' ' -)
check [ "$got" = "$i3 $i2 $i1" ] || bad "expected log newest first '$i3 $i2 $i1', found '$got'"
has log.out "^$i3  applied +local +Olga Operator <olga@example.com>$" "the newest change with status, target and operator"
has log.out "^    e2e check of notes \(lg\)$" "the reason"
rb logn log --notes notes.git -n 2
expect_rc 0 "log -n 2"
got=$(grep -Eo '^[0-9]{8}T[0-9]{6}Z-lg-[0-9a-f]+' logn.out | paste -sd' ' -)
check [ "$got" = "$i3 $i2" ] || bad "expected log -n 2 to list '$i3 $i2', found '$got'"
rb logj log --notes notes.git --json
expect_rc 0 "log --json"
msg=$("$PY" - logj.out "$i3 $i2 $i1" "$OPERATOR" <<'EOF' 2>&1
import json, sys
path, want, op = sys.argv[1], sys.argv[2].split(), sys.argv[3]
lines = open(path, encoding="utf-8").read().splitlines()
evs = [json.loads(l) for l in lines]
got = [e.get("change") for e in evs]
if got != want:
    print("ids %s, expected %s" % (got, want))
for e in evs:
    for k, v in (("event", "change"), ("runbook", "lg"), ("target", "local"),
                 ("status", "applied"), ("operator", op),
                 ("reason", "e2e check of notes (lg)")):
        if e.get(k) != v:
            print("%s: %s is %r, expected %r" % (e.get("change"), k, e.get(k), v))
    for k in ("started", "finished"):
        if not e.get(k):
            print("%s: no %s" % (e.get("change"), k))
EOF
) || bad "log --json: $(echo "$msg" | head -n 3 | paste -sd';' -)"
check [ -z "$msg" ] || bad "log --json: $(echo "$msg" | head -n 3 | paste -sd';' -)"
rb lognj log --notes notes.git --json -n 1
n=$(wc -l <lognj.out)
check [ "$n" = 1 ] || bad "expected 1 line from log --json -n 1, found $n"
# show by a unique prefix: the note exactly as git has it
prefix=${i2:0:${#i2}-3}
rb show show "$prefix" --notes notes.git
expect_rc 0 "show with a unique prefix"
git --git-dir=notes.git show "runbook-notes:$(note_path "$i2")" >git-show.out 2>/dev/null
cmp -s show.out git-show.out || bad "show $prefix differs from git show of $(note_path "$i2")"
rb showj show "$prefix" --notes notes.git --json
expect_rc 0 "show --json"
msg=$("$PY" - showj.out git-show.out "$i2" <<'EOF' 2>&1
import json, sys
lines = open(sys.argv[1], encoding="utf-8").read().splitlines()
if len(lines) != 1:
    print("expected one line, found %d" % len(lines))
e = json.loads(lines[0])
if e.get("event") != "note" or e.get("change") != sys.argv[3]:
    print("event %r change %r" % (e.get("event"), e.get("change")))
if e.get("note") != open(sys.argv[2], encoding="utf-8").read():
    print("note differs from git show")
EOF
) || bad "show --json: $msg"
check [ -z "$msg" ] || bad "show --json: $msg"
rb amb show 20 --notes notes.git
expect_rc 2 "show with an ambiguous prefix"
for i in "$i1" "$i2" "$i3"; do has_fixed amb.err "$i" "a matching change"; done
has amb.err "matches 3 changes" "how many changes match"
check [ ! -s amb.out ] || bad "show with an ambiguous prefix printed a note"
rb ambr rollback 20 --notes notes.git
expect_rc 2 "rollback with an ambiguous prefix"
rb unknown show 19990101T000000Z-none --notes notes.git
expect_rc 2 "show with an unknown id"
has unknown.err "19990101T000000Z-none" "the unknown id"
has unknown.err "matches no change" "that it matches no change"
rb unknownr rollback 19990101T000000Z-none --notes notes.git
expect_rc 2 "rollback with an unknown id"
rb status status --notes notes.git
expect_rc 0 "status"
has status.out "^no unfinished changes in " "that nothing is unfinished"
end

# ------------------------------------------------------------------ 14. locks

begin lock-busy-and-other-target
mkrepo repo
{ hdr lk; cat <<'EOF'
targets:
  a: { hosts: [local] }
  b: { hosts: [local] }
vars:
  nap: "0"
steps:
  - name: hold
    run: |
      touch started-{{ target }}
      sleep {{ nap }}
      echo done-{{ target }} >> log
    rollback: none
EOF
} >repo/f.yml
G=$D/repo/.git
start_bg hold apply repo/f.yml -t a -e "nap=3.$UNIQ"
holder=$BGPID
if ! wait_files $((10 * SLOW)) started-a; then
	bad "the holding apply never started its step"
else
	hid=$(cid hold.err)
	rb busy apply repo/f.yml -t a
	expect_rc 4 "second apply on the same target"
	check [ "$MS" -lt 2000 ] || bad "expected the busy apply to return at once (< 2 s), took $MS ms"
	alive "$holder" || bad "the holder ended before the busy apply returned (the check proves nothing)"
	has busy.err "pid $holder " "the holder's pid $holder"
	has_fixed busy.err "change ${hid:-x}" "the holder's change id"
	has busy.err "locked" "that the target is locked"
	rb status status --notes "$G"
	expect_rc 0 "status while running"
	has status.out "^${hid:-x}  lk on a: running$" "the running change"
	has status.out "lock held by pid $holder " "the lock holder"
	rb other apply repo/f.yml -t b
	expect_rc 0 "apply on another target while a is locked"
	alive "$holder" || bad "the holder ended before the apply on b did (not shown to run concurrently)"
	check [ -e started-b ] || bad "the apply on b did not run its step"
fi
wait_bg "$holder" $((20 * SLOW)) || bad "the holding apply did not finish"
expect_rc 0 "the holding apply"
rb after apply repo/f.yml -t a
expect_rc 0 "apply after the holder ended"
check [ "$(grep -c done-a log 2>/dev/null)" = 2 ] || bad "expected two applies on a to have run, found $(grep -c done-a log 2>/dev/null)"
check [ ! -s "$G/runbook/locks/a.lock" ] || bad "a released lock still names a holder: $(cat "$G/runbook/locks/a.lock")"
end

# --wait: a busy target is waited for (saying who holds it), then exit 4
begin wait-for-a-busy-target
mkrepo repo
{ hdr wt; cat <<'EOF'
targets:
  a: { hosts: [local] }
vars:
  nap: "0"
steps:
  - name: hold
    run: |
      touch started-{{ nap }}
      sleep {{ nap }}
      echo "done {{ nap }} $(date +%s%N)" >> log
    rollback: none
EOF
} >repo/f.yml
start_bg hold apply repo/f.yml -t a -e "nap=3.$UNIQ"
holder=$BGPID
if ! wait_files $((10 * SLOW)) "started-3.$UNIQ"; then
	bad "the holding apply never started its step"
else
	rb short apply repo/f.yml -t a -e nap=0 --wait 1s
	expect_rc 4 "--wait 1s while the holder needs 3 s more"
	alive "$holder" || bad "the holder ended before --wait 1s gave up (the check proves nothing)"
	has short.err "pid $holder" "who holds the target, while waiting"
	check [ "$MS" -ge 900 ] || bad "expected --wait 1s to wait about 1 s, returned after $MS ms"
	check [ ! -e started-0 ] || bad "the step ran although the target stayed busy"
	rb long apply repo/f.yml -t a -e nap=0 --wait $((30 * SLOW))s
	expect_rc 0 "--wait long enough for the holder to finish"
	check [ -e started-0 ] || bad "the waiting apply did not run its step"
	# the waiting apply's step ran after the holder's had ended
	order=$(sort -k3n log 2>/dev/null | cut -d' ' -f2 | paste -sd' ' -)
	check [ "$order" = "3.$UNIQ 0" ] || bad "expected the holder's step then the waiter's, found: $order"
fi
wait_bg "$holder" $((20 * SLOW)) || bad "the holding apply did not finish"
expect_rc 0 "the holding apply"
end

begin lock-stale-takeover
mkrepo repo
{ hdr lk2; cat <<'EOF'
targets:
  a: { hosts: [local] }
vars:
  nap: "0"
steps:
  - name: one
    run: echo ran >> log
    rollback: none
  - name: two
    run: touch started; sleep {{ nap }}
    rollback: none
EOF
} >repo/f.yml
G=$D/repo/.git
rb first apply repo/f.yml
expect_rc 0 "first apply"
if [ ! -e "$G/runbook/locks/a.lock" ]; then
	bad "no lock file at $G/runbook/locks/a.lock (format or location changed?)"
else
	sh -c 'exit 0' &
	dead=$!
	wait "$dead"
	host=$(hostname)
	printf 'pid %s on %s, user ghost, change 20200101T000000Z-ghost-dead, since 2020-01-01T00:00:00Z\n' \
		"$dead" "$host" >"$G/runbook/locks/a.lock"
	rb stale apply repo/f.yml
	expect_rc 0 "apply over a lock left by a dead process"
	has stale.err "warning: took over the lock of target a left by a process that died \(pid $dead on $host" \
		"a warning naming the dead holder"
	# a holder text naming a live process but no lock held: the flock is the truth
	printf 'pid %s on %s, user ghost, change 20200101T000000Z-ghost-live, since 2020-01-01T00:00:00Z\n' \
		"$$" "$host" >"$G/runbook/locks/a.lock"
	rb live apply repo/f.yml
	expect_rc 0 "apply over holder text without a lock"
	hasnt live.err "took over" "a takeover (the named process lives)"
	check [ "$(grep -c ran log 2>/dev/null)" = 3 ] || bad "expected 3 applies to have run, found $(grep -c ran log 2>/dev/null)"
	# the real thing: a runner killed with -9 while it holds the lock
	rm -f started	# left by the applies above: wait for this one's
	start_bg held apply repo/f.yml -e "nap=30.$UNIQ"
	held=$BGPID
	if wait_files $((10 * SLOW)) started; then
		sleep 0.2
		kid=$(cid held.err)
		kill -KILL "$held"
		wait "$held" 2>/dev/null
		check grep -q "^pid $held on " "$G/runbook/locks/a.lock" ||
			bad "expected the killed runner's details in a.lock, found '$(cat "$G/runbook/locks/a.lock")'"
		rb after-kill apply repo/f.yml
		expect_rc 4 "apply after the holder was killed (its change is unfinished)"
		has after-kill.err "warning: took over the lock of target a left by a process that died \(pid $held on $host" \
			"a warning naming the killed holder"
		rb finish rollback "${kid:-x}" --notes "$G"
		expect_rc 0 "rollback of the killed change"
	else
		bad "the holding apply never started its step"
	fi
fi
end

# ------------------------------------------------------------------ 15. kill -9 mid-step

begin kill-9-interrupted
mkrepo repo
{ hdr kill9; cat <<'EOF'
vars:
  nap: "0"
steps:
  - name: first
    run: echo 'do 1' >> log
    rollback: echo 'undo 1' >> log
  - name: hang
    run: |
      echo 'do 2' >> log
      touch marker
      sleep {{ nap }}
    rollback: echo 'undo 2' >> log
  - name: never
    run: echo 'do 3' >> log
    rollback: echo 'undo 3' >> log
EOF
} >repo/f.yml
G=$D/repo/.git
nap=30.$UNIQ
start_bg run apply repo/f.yml -e "nap=$nap"
runner=$BGPID
if ! wait_files $((10 * SLOW)) marker; then
	bad "the step never started"
else
	sleep 0.3	# the step's pid record is written when it starts
	id=$(cid run.err)
	kill -KILL "$runner"
	wait "$runner" 2>/dev/null
	orphans=$(pgrep -f "^sleep $nap\$" | paste -sd' ' -)
	check [ -n "$orphans" ] || bad "precondition: no orphaned 'sleep $nap' after kill -9"
	expect_status "$G" "${id:-x}" running
	rb busy apply repo/f.yml -e nap=0
	expect_rc 4 "apply on the target of an interrupted change"
	has_fixed busy.err "runbook rollback ${id:-x}" "the command that finishes the change"
	has busy.err "unfinished change" "that a change is unfinished"
	check [ "$MS" -lt $((2000 * SLOW)) ] || bad "expected the refusal at once, took $MS ms"
	rb status status --notes "$G"
	expect_rc 0 "status"
	has status.out "^${id:-x}  kill9 on local: interrupted$" "the change as interrupted"
	has status.out "was running when it stopped.*'hang' on local" "the step that was running"
	has status.out "runbook rollback ${id:-x}" "the command that finishes it"
	rb rollback rollback "${id:-x}" --notes "$G"
	expect_rc 0 "rollback of the interrupted change"
	has rollback.err "stopped process group" "that the orphaned process group was stopped"
	expect_lines log 'do 1|do 2|undo 2|undo 1'
	left=
	for i in $(seq 1 40); do
		left=$(pgrep -f "^sleep $nap\$" | paste -sd' ' -)
		[ -z "$left" ] && break
		sleep 0.05
	done
	check [ -z "$left" ] || bad "the orphaned 'sleep $nap' is still running (pid $left)"
	expect_status "$G" "${id:-x}" rolled-back
	expect_commits "$G" 2 "open and close of the interrupted change"
	note_to "$G" "${id:-x}" note.md
	fm_check note.md '{"status": "rolled-back", "steps": [["step", "first", "ok", "rolled-back"], ["step", "hang", "not-run", "rolled-back"]]}'
	rb status2 status --notes "$G"
	has status2.out "^no unfinished changes" "that nothing is unfinished"
	rb again apply repo/f.yml -e nap=0
	expect_rc 0 "apply after the rollback"
	fsck_clean "$G" --strict
fi
end

# ------------------------------------------------------------------ 16. 20 concurrent applies

begin concurrent-20-targets
mkrepo repo
{
	hdr cc
	printf 'targets:\n'
	for i in $(seq 1 20); do printf '  t%d: { hosts: [local] }\n' "$i"; done
	cat <<'EOF'
steps:
  - name: write
    run: echo {{ target }} > out-{{ target }}
    rollback: rm -f out-{{ target }}
  - name: second
    run: "true"
    rollback: none
EOF
} >repo/f.yml
git -C repo add f.yml && git -C repo commit -qm runbook
G=$D/repo/.git
before=$(repo_state repo)
pids=()
for i in $(seq 1 20); do
	start_bg "t$i" apply repo/f.yml -t "t$i"
	pids+=("$BGPID")
done
codes=
for i in $(seq 1 20); do
	wait_bg "${pids[i - 1]}" $((30 * SLOW)) || bad "apply on t$i did not finish"
	[ "$RC" = 0 ] || codes="$codes t$i:$RC"
done
check [ -z "$codes" ] || bad "expected every apply to exit 0, found$codes"
noisy=
for i in $(seq 1 20); do
	grep -Eq 'warning|pending note|no note' "t$i.err" && noisy="$noisy t$i"
done
check [ -z "$noisy" ] || bad "applies on other targets interfered (warnings or notes committed for others' changes) in:$noisy; e.g. '$(grep -Eh 'warning|pending note|no note' t*.err | head -n 1 | cut -c1-200)'"
n=$(ls out-t* 2>/dev/null | wc -l)
check [ "$n" = 20 ] || bad "expected 20 targets to have run, found $n"
notes=$(git --git-dir="$G" ls-tree -r --name-only runbook-notes 2>/dev/null)
n=$(echo "$notes" | grep -c '^changes/[0-9]\{4\}/[0-9]\{2\}/[0-9]\{8\}T[0-9]\{6\}Z-cc-[0-9a-f]*\.md$')
check [ "$n" = 20 ] || bad "expected 20 note files under changes/, found $n"
check [ "$(echo "$notes" | grep -vc '^changes/')" = 0 ] || bad "runbook-notes holds files outside changes/"
expect_commits "$G" 40 "20 applies"
n=$(git --git-dir="$G" rev-list --min-parents=2 runbook-notes 2>/dev/null | wc -l)
check [ "$n" = 0 ] || bad "expected a linear notes history, found $n merge commits"
subjects=$(git --git-dir="$G" log --format=%s runbook-notes 2>/dev/null)
missing=
for i in $(seq 1 20); do
	[ "$(echo "$subjects" | grep -cx "cc: running on t$i")" = 1 ] || missing="$missing running-t$i"
	[ "$(echo "$subjects" | grep -cx "cc: applied on t$i")" = 1 ] || missing="$missing applied-t$i"
done
check [ -z "$missing" ] || bad "expected one running and one applied commit per target, wrong for:$missing"
bad_notes=
for f in $(echo "$notes" | grep '\.md$'); do
	txt=$(git --git-dir="$G" show "runbook-notes:$f" 2>/dev/null)
	echo "$txt" | grep -qx 'status: "applied"' || bad_notes="$bad_notes $(basename "$f")"
done
check [ -z "$bad_notes" ] || bad "notes not saying applied:$bad_notes"
targets=$(for f in $(echo "$notes" | grep '\.md$'); do
	git --git-dir="$G" show "runbook-notes:$f" | sed -n 's/^target: "\(.*\)"$/\1/p'
done | sort -u | wc -l)
check [ "$targets" = 20 ] || bad "expected notes for 20 distinct targets, found $targets"
fsck_clean "$G" --strict
check [ "$before" = "$(repo_state repo)" ] ||
	bad "the work tree, index or HEAD changed"
ls "$G"/runbook/journal/*.log >/dev/null 2>&1 && bad "journals left unfinished: $(ls "$G"/runbook/journal/*.log | wc -l)"
rb status status --notes "$G"
expect_rc 0 "status"
has status.out "^no unfinished changes" "that nothing is unfinished"
end

# ---------------------------------------------------------------- masked rollback, --by-hand
# A rollback whose recorded form a redact pattern masked cannot be replayed
# as it was: replay refuses it (never runs the masked text), the change stays
# rollback-failed; `--by-hand STEP` records that the operator undid it and
# the replay goes on with the rest; the final note says so.
begin masked-rollback-by-hand
mkrepo repo
G=$D/repo/.git
{
	hdr mb
	printf "redact: ['tok=[a-z0-9]+']\nvars:\n  t: abc123\nsteps:\n"
	printf "  - name: one\n    run: echo one >> %s/log\n    rollback: 'echo undo tok={{ t }} >> %s/log'\n" "$D" "$D"
	printf "  - name: two\n    run: echo two >> %s/log\n    rollback: 'echo undo two >> %s/log'\n" "$D" "$D"
} >repo/mb.yml
rb apply apply repo/mb.yml
expect_rc 0 "apply"
id=$(cid apply.err)
rb replay rollback "${id:-x}" --notes "$G"
expect_rc 3 "a replay that meets a masked rollback"
has replay.err "redact pattern masked" "why the masked rollback is refused"
check [ "$(paste -sd'|' log 2>/dev/null)" = 'one|two|undo two' ] ||
	bad "expected log 'one|two|undo two' (the masked rollback never run), found '$(paste -sd'|' log 2>/dev/null)'"
refute grep -q '\[redacted\]' log || bad "the masked text was run"
rb wrong rollback "${id:-x}" --notes "$G" --by-hand nope
expect_rc 2 "--by-hand with a step that is not pending"
has wrong.err "'one' on local" "the pending steps"
rb hand rollback "${id:-x}" --notes "$G" --by-hand one
expect_rc 0 "rollback --by-hand one"
expect_status "$G" "${id:-x}" rolled-back
git --git-dir="$G" show "runbook-notes:$(note_path "${id:-x}")" 2>/dev/null |
	grep -qx '    rollback_by_hand: true' || bad "expected rollback_by_hand: true in the note"
check [ "$(paste -sd'|' log 2>/dev/null)" = 'one|two|undo two' ] ||
	bad "expected nothing more run, found '$(paste -sd'|' log 2>/dev/null)'"
rb st status --notes "$G"
has st.out "^no unfinished changes" "that nothing is unfinished"
end

# ---------------------------------------------------------------- a later rollback killed midway
# `runbook rollback` of an applied change, killed during its rollback, once
# with the change's journal (reopened from done/) and once known only from
# its note (the journal gone, as in another clone of the notes): the change
# is unfinished again (status interrupted, apply refused), a second rollback
# finishes it, and the final note still has the captures and metrics.
for mode in journal note-only; do
	begin "later-rollback-killed-$mode"
	mkrepo repo
	G=$D/repo/.git
	{
		hdr lrk
		printf "metrics:\n  - name: files\n    run: echo n=3\n    pattern: 'n=(\\d+)'\nsteps:\n"
		printf "  - name: one\n    run: echo id=42\n    capture: {myid: 'id=(\\d+)'}\n    rollback: echo undo {{ myid }} >> %s/log\n" "$D"
		printf "  - name: two\n    run: echo two\n    rollback: echo undo2 >> %s/log\n" "$D"
	} >repo/f.yml
	rb apply apply repo/f.yml
	expect_rc 0 "apply"
	id=$(cid apply.err)
	yes=()
	if [ "$mode" = note-only ]; then
		rm -rf "$G/runbook/journal"
		yes=(--yes)	# a change this machine never journaled
	fi
	# (RB_SIGKILL_OK: 137 is the failpoint's kill, not rb's timeout)
	RB_SIGKILL_OK=1 RUNBOOK_FAILPOINT=kill-after-record:2 rb killed \
		rollback "${id:-x}" --notes "$G" "${yes[@]}"
	expect_rc 137 "the rollback killed by the failpoint"
	rb st status --notes "$G"
	has st.out "^${id:-x}  lrk on local: interrupted" "the change as interrupted"
	rb again apply repo/f.yml
	expect_rc 4 "apply while the rollback is unfinished"
	rb finish rollback "${id:-x}" --notes "$G"
	expect_rc 0 "the second rollback"
	expect_status "$G" "${id:-x}" rolled-back
	note_to "$G" "${id:-x}" note.md
	check grep -qx '    "myid": "42"' note.md || bad "expected the capture myid in the final note"
	check grep -q '"files": { before: "3", after: "3" }' note.md || bad "expected the metric files in the final note"
	tail -n 1 log 2>/dev/null | grep -qx 'undo 42' || bad "expected 'undo 42' last, found '$(paste -sd'|' log 2>/dev/null)'"
	end
done

finish
