#!/usr/bin/env bash
# Shell completion: `runbook completion bash` is sourced into a real bash
# and its function driven as bash's programmable completion calls it
# (COMP_WORDS, COMP_CWORD -> COMPREPLY), on real runbook files and a real
# notes repository with changes applied by the built runbook. Each
# command's options must be exactly those its --help lists (one table
# drives both). zsh and fish scripts are checked when those shells are
# installed (fish drives its completion with `complete -C`).
#
#   RUNBOOK=build/runbook SRCDIR=. tests/e2e/completion.sh
# shellcheck source=lib/harness.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/harness.sh"
harness_init completion
need_tools git bash sort

OWNER='Ann Owner <ann@example.com>'

# comp WORD... : the completions bash offers for the command line WORD...
# (the last word is the one being completed, '' for a new word, or word
# number $CWORD when set), sorted, one a line, into $D/comp.out.
comp() {
	env -i PATH="$PATH" HOME="$HOME" LC_ALL=C CWORD="${CWORD:-}" RB_SCRIPT="$tmp/runbook.bash" \
		bash --norc --noprofile -c '
		. "$RB_SCRIPT" || exit 9
		COMP_WORDS=("$@")
		COMP_CWORD=${CWORD:-$(($# - 1))}
		COMP_LINE="$*"
		COMP_POINT=${#COMP_LINE}
		_runbook runbook "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
		[ ${#COMPREPLY[@]} -eq 0 ] || printf "%s\n" "${COMPREPLY[@]}"
	' _ "$RUNBOOK" "$@" 2>"$D/comp.err" | sort >"$D/comp.out"
	_h_errs "$D/comp.err"
}

# offers WANT WHAT WORD...: comp WORD... gives exactly the lines WANT
# (joined with |).
offers() {
	local want=$1 what=$2 got
	shift 2
	comp "$@"
	got=$(paste -sd'|' "$D/comp.out")
	check [ "$got" = "$want" ] ||
		bad "$what: runbook ${*:2} <Tab>: expected '$want', found '$got'"
}

begin "the bash script is generated and parses"
rb gen completion bash
expect_rc 0 "completion bash"
cp "$D/gen.out" "$tmp/runbook.bash"
check bash -n "$tmp/runbook.bash" || bad "bash -n rejects the script"
has gen.out '^complete -F _runbook runbook$' "the complete line"
end

begin "commands and the shells of completion"
offers 'rehearse|rollback' "commands starting with r" r
offers 'apply' "aply's fix is one Tab away" ap
offers 'bash' "a shell" completion b
offers 'bash|fish|zsh' "every shell" completion ''
end

begin "each command's options are those its --help lists"
for cmd in validate plan apply rehearse rollback status log show new completion; do
	rb "help-$cmd" "$cmd" --help
	grep -oE '(^|[ ,])--?[a-zA-Z][a-zA-Z-]*' "$D/help-$cmd.out" |
		sed 's/^[ ,]*//' | sort -u >"$D/want-$cmd"
	comp "$cmd" -
	sort -u "$D/comp.out" >"$D/got-$cmd"
	check cmp -s "$D/want-$cmd" "$D/got-$cmd" ||
		bad "$cmd: --help lists '$(paste -sd' ' "$D/want-$cmd")', completion offers '$(paste -sd' ' "$D/got-$cmd")'"
done
offers '--dry-run' "rollback takes --dry-run" rollback --dr
offers '' "apply does not take --dry-run" apply --dr
end

cat >"$tmp/multi.yml" <<EOF2
version: 1
name: multi
owner: $OWNER
reason: completion test with targets
expected: it validates
targets:
  staging:
    hosts: [local]
  production:
    hosts: [local]
  prod-eu:
    hosts: [local]
steps:
  - name: one
    run: echo one
    rollback: none
EOF2

begin "files: runbook files and directories"
mkdir -p sub "with space"
cp "$tmp/multi.yml" a.yml
cp "$tmp/multi.yml" b.yaml
echo x >c.txt
offers 'a.yml|b.yaml|sub|with space' "plan's FILE" plan ''
offers 'a.yml' "a prefix" apply a
offers '' "plan takes one file" plan a.yml ''
offers 'a.yml|b.yaml|sub|with space' "validate takes several" validate a.yml ''
end

begin "targets of the runbook on the line"
cp "$tmp/multi.yml" multi.yml
offers 'prod-eu|production|staging' "-t" apply multi.yml -t ''
CWORD=3 offers 'prod-eu|production' "--target pr, the file after it" plan --target pr multi.yml
CWORD=3 offers 'prod-eu|production|staging' "-t, the file after it" rehearse -t '' multi.yml
offers '' "no file on the line" apply -t ''
offers '' "a file that does not load" apply nosuch.yml -t ''
end

begin "change ids from the notes repository"
mkdir repo && git -C repo init -q && git -C repo commit -q --allow-empty -m init ||
	bad "git init failed"
cd repo || bad "cd repo"
cat >one.yml <<EOF2
version: 1
name: one
owner: $OWNER
reason: completion test of change ids
expected: it applies
steps:
  - name: one
    run: echo one
    rollback: echo undo
EOF2
sed 's/^name: one/name: two/' one.yml >two.yml
rb apply1 apply one.yml
expect_rc 0 "apply one.yml"
rb apply2 apply two.yml
expect_rc 0 "apply two.yml"
rb log log --json
ids=$(sed -n 's/.*"change":"\([^"]*\)".*/\1/p' "$D/log.out" | sort | paste -sd'|')
check matches "$ids" '^[0-9]{8}T[0-9]{6}Z-one-[0-9a-f]+\|[0-9]{8}T[0-9]{6}Z-two-[0-9a-f]+$' ||
	bad "expected two change ids in runbook log --json, found '$ids'"
offers "$ids" "show CHANGE" show ''
offers "$ids" "rollback CHANGE" rollback ''
one=${ids%%|*}
offers "$one" "a prefix" show "${one:0:17}o"
offers '' "show takes one change" show "$one" ''
cd .. || bad "cd .."
offers "$ids" "--notes names the repository" show --notes repo ''
offers '' "no notes repository" show ''
end

# zcomp WORD...: what the zsh function offers for WORD... (the last is
# the word being completed), with compadd and _files replaced by stubs
# that print what they were given (one a line; "_files ARGS" for files).
zcomp() {
	env -i PATH="$(dirname "$RUNBOOK"):$PATH" HOME="$HOME" LC_ALL=C \
		zsh -f -c '
		compadd() { while [[ $# -gt 0 && $1 != -- ]]; do shift; done; shift; print -l -- "$@"; }
		_files() { print -- "_files $*"; }
		compdef() { :; }
		source "$1" || exit 9
		shift
		words=("$@"); CURRENT=$#words
		_runbook
	' _ "$tmp/_runbook" runbook "$@" 2>"$D/zcomp.err" | sort >"$D/zcomp.out"
	_h_errs "$D/zcomp.err"
}

# zoffers WANT WHAT WORD...: zcomp WORD... gives exactly WANT (| joined).
zoffers() {
	local want=$1 what=$2 got
	shift 2
	zcomp "$@"
	got=$(paste -sd'|' "$D/zcomp.out")
	check [ "$got" = "$want" ] || bad "zsh: $what: runbook $* <Tab>: expected '$want', found '$got'"
}

if command -v zsh >/dev/null 2>&1; then
	begin "zsh: the function on a real runbook and notes"
	rb zgen completion zsh
	expect_rc 0 "completion zsh"
	cp "$D/zgen.out" "$tmp/_runbook"
	check zsh -n "$tmp/_runbook" || bad "zsh -n rejects the script"
	has zgen.out '^#compdef runbook$' "the #compdef line"
	cp "$tmp/multi.yml" multi.yml
	zcomp ''
	has zcomp.out '^apply$' "the commands"
	zoffers 'prod-eu|production|staging' "-t" apply multi.yml -t ''
	zoffers '_files -g *.(yml|yaml)' "a runbook file" plan ''
	zoffers '' "plan takes one file" plan multi.yml ''
	zcomp rollback --d
	has zcomp.out '^--dry-run$' "rollback's --dry-run"
	zcomp apply --d
	hasnt zcomp.out '^--dry-run$' "--dry-run for apply"
	cd "$tmp/change ids from the notes repository/repo" || bad "no notes repository from the bash check"
	zoffers "$ids" "show CHANGE" show ''
	cd "$D" || bad "cd $D"
	end
else
	skip "zsh: the function on a real runbook and notes" "zsh is not installed"
fi

# fcomp LINE: fish's completions of LINE with the script, sorted, | joined.
fcomp() {
	HOME=$D PATH=$(dirname "$RUNBOOK"):$PATH fish --no-config \
		-c 'source $argv[1]; and complete -C $argv[2]' "$D/fgen.out" "$1" 2>&1 |
		cut -f1 | sort | paste -sd'|'
}

if command -v fish >/dev/null 2>&1; then
	begin "fish: complete -C on the script"
	rb fgen completion fish
	expect_rc 0 "completion fish"
	check fish -n "$D/fgen.out" || bad "fish -n rejects the script"
	cp "$tmp/multi.yml" multi.yml
	got=$(fcomp 'runbook ap')
	check [ "$got" = apply ] || bad "fish: runbook ap<Tab>: expected apply, found '$got'"
	got=$(fcomp 'runbook apply multi.yml -t pr')
	check [ "$got" = 'prod-eu|production' ] || bad "fish: -t pr<Tab>: expected prod-eu|production, found '$got'"
	got=$(fcomp 'runbook rollback --dr')
	check [ "$got" = '--dry-run' ] || bad "fish: rollback --dr<Tab>: expected --dry-run, found '$got'"
	got=$(fcomp 'runbook apply --dr')
	check [ -z "$got" ] || bad "fish: apply --dr<Tab>: expected nothing, found '$got'"
	cd "$tmp/change ids from the notes repository/repo" || bad "no notes repository from the bash check"
	got=$(fcomp 'runbook show ')
	check [ "$got" = "$ids" ] || bad "fish: show <Tab>: expected $ids, found '$got'"
	cd "$D" || bad "cd $D"
	end
else
	skip "fish: complete -C on the script" "fish is not installed"
fi

finish
