#!/usr/bin/env bash
# runbook new NAME: a commented runbook that validates, that plan renders
# and that rehearses clean; never over an existing file; a name that
# cannot be a runbook name is a usage error.
#
#   RUNBOOK=build/runbook SRCDIR=. tests/e2e/new.sh
# shellcheck source=lib/harness.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/harness.sh"
harness_init new
need_tools git

begin "new writes NAME.yml that validates"
rb new new deploy-api
expect_rc 0 "new deploy-api"
check [ -f deploy-api.yml ] || bad "no deploy-api.yml"
has_fixed new.out "wrote deploy-api.yml" "what it wrote"
has deploy-api.yml '^name: deploy-api$' "the name"
has deploy-api.yml '^# yaml-language-server: \$schema=/.*/runbook\.schema\.json$' "the schema modeline"
n=$(grep -c '^ *#' deploy-api.yml)
check [ "$n" -ge 20 ] || bad "expected a commented file (>= 20 comment lines), found $n"
rb val validate deploy-api.yml
expect_rc 0 "validate"
has_fixed val.out "deploy-api.yml: ok (1 preflight, 2 steps, 1 verify, 0 metrics, 1 target)" "validate's verdict"
end

again "plan renders it"
rb plan plan deploy-api.yml
expect_rc 0 "plan"
has plan.out '^plan: deploy-api on local' "the plan header"
has plan.out 'run +echo installing 1\.0\.0$' "the rendered step"
has plan.out 'on failure, roll back in this order: announce, install release' "the rollback order"
hasnt plan.err . "anything on stderr"
end

again "it rehearses clean in a notes repository"
git init -q . && git commit -q --allow-empty -m init || bad "git init"
rb reh rehearse deploy-api.yml
expect_rc 0 "rehearse"
end

again "never over an existing file"
sum=$(cksum <deploy-api.yml)
rb again new deploy-api.yml
expect_rc 2 "new over an existing file"
has_fixed again.err "found 'deploy-api.yml'; nothing was written" "why"
check [ "$(cksum <deploy-api.yml)" = "$sum" ] || bad "the file changed"
end

begin "a path, .yaml, and names that cannot be"
mkdir ops
rb path new ops/db.migrate_2.yaml
expect_rc 0 "new ops/db.migrate_2.yaml"
has ops/db.migrate_2.yaml '^name: db\.migrate_2$' "the name from the file name"
rb v2 validate ops/db.migrate_2.yaml
expect_rc 0 "validate"
for bad_name in Deploy -x 'a b' ''; do
	rb bad new -- "$bad_name"
	expect_rc 2 "new '$bad_name'"
	has bad.err 'expected a name of lower-case letters' "what a name is"
done
check [ "$(ls | grep -v "\.\(out\|err\)$" | paste -sd" ")" = ops ] || bad "something was written: $(ls | paste -sd" ")"
rb nodir new nosuch/dir/x
expect_rc 5 "new in a missing directory"
has_fixed nodir.err "cannot create 'nosuch/dir/x.yml'; nothing was written" "why"
end

finish
