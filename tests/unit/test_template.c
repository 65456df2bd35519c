/*
 * Template rendering: every value, in every context we accept, must
 * reach the command as exactly itself when a real shell runs it, and
 * must never execute anything. Contexts we cannot quote safely must be
 * refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "buf.h"
#include "error.h"
#include "template.h"
#include "quote.h"

static const char *value_for;
static const char *cmd_for = "echo";

static const char *lookup(void *ctx, const char *name)
{
	(void)ctx;
	if (strcmp(name, "v") == 0)
		return value_for;
	if (strcmp(name, "cmd") == 0)
		return cmd_for;
	if (strcmp(name, "secrets.pw") == 0)
		return "hunter2";
	if (strcmp(name, "w") == 0)
		return "W";
	return NULL;
}

static char *render(const char *tpl, enum tpl_mode mode, enum tpl_secrets sec)
{
	struct buf out = BUF_INIT;
	struct rb_error err = RB_ERROR_INIT;

	if (tpl_render(tpl, mode, sec, lookup, NULL, &out, &err) < 0) {
		buf_release(&out);
		return NULL;
	}
	return buf_detach(&out);
}

/* Runs cmd with shell sh in dir; returns its stdout. */
static char *run_shell(const char *sh, const char *cmd, const char *dir)
{
	int fds[2];
	pid_t pid;
	struct buf out = BUF_INIT;
	char chunk[4096];
	ssize_t r;
	int status;

	assert_int_equal(pipe(fds), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(fds[1], 1);
		close(fds[0]);
		close(fds[1]);
		if (chdir(dir) < 0)
			_exit(126);
		execl(sh, sh, "-c", cmd, (char *)NULL);
		_exit(127);
	}
	close(fds[1]);
	while ((r = read(fds[0], chunk, sizeof(chunk))) > 0)
		buf_add(&out, chunk, (size_t)r);
	close(fds[0]);
	waitpid(pid, &status, 0);
	return buf_detach(&out);
}

static const char *const nasty[] = {
	"plain", "a b", "x; touch PWNED", "$(touch PWNED)", "`touch PWNED`",
	"'", "\"", "\\", "\\'", "'\"'$(touch PWNED)'\"'", "*", "~", "a\nb",
	"--", "", "a=b", "$HOME", "!", "#x", "caf\xc3\xa9", "' ; touch PWNED ; '",
	"\" ; touch PWNED ; \"", ") ; touch PWNED ; (", "}} {{ w }}",
	"$((1+1))", "${HOME}", "a\tb", "\\\"", "'\\''",
	"a[$(touch PWNED)]", "{", "{{", "$", "if", "case", "a,b", "1..3",
	"$'", "-lt",
};

/* template, expected output with %s standing for the value */
static const struct {
	const char *tpl;
	const char *pre, *post;
} contexts[] = {
	{ "printf '%s|' {{ v }}", "", "|" },
	{ "printf '%s|' \"{{ v }}\"", "", "|" },
	{ "printf '%s|' 'x{{ v }}y'", "x", "y|" },
	{ "printf '%s|' pre{{ v }}post", "pre", "post|" },
	{ "printf '%s|' \"a $(printf '%s' {{ v }}) b\"", "a ", " b|" },
	{ "printf '%s|' \"$(printf '%s' \"{{ v }}\")\"", "", "|" },
	{ "x=$(printf '%s' {{ v }}); printf '%s|' \"$x\"", "", "|" },
	{ "cat <<EOF\nhere\nEOF\nprintf '%s|' {{ v }}", "here\n", "|" },
	{ "printf '%s|' \"it's {{ v }}\"", "it's ", "|" },
	{ "printf '%s|' 'say \"{{ v }}\"'", "say \"", "\"|" },
	{ "printf '%s|' {{ '{{' }}x{{ v }}", "{{x", "|" },
	/* literals are shell text: the quotes they open hold the value */
	{ "printf '%s|' {{ '\"' }}{{ v }}{{ '\"' }}", "", "|" },
	{ "printf '%s|' \"$(printf '%s' {{ '\"' }}{{ v }}\")\"", "", "|" },
	{ "x={{ '$(' }}printf '%s' {{ v }}); printf '%s|' \"$x\"", "", "|" },
	{ "[ {{ v }} = x ] 2>/dev/null; printf '%s|' {{ v }}", "", "|" },
};

static void test_values_stay_values(void **state, const char *sh)
{
	char dir[] = "/tmp/rbtplXXXXXX";
	char pwned[64];
	struct stat st;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(pwned, sizeof(pwned), "%s/PWNED", dir);
	for (size_t c = 0; c < sizeof(contexts) / sizeof(contexts[0]); c++) {
		for (size_t v = 0; v < sizeof(nasty) / sizeof(nasty[0]); v++) {
			struct buf want = BUF_INIT;
			char *cmd, *got;

			/* $(...) drops trailing newlines; skip such values there */
			if (strstr(contexts[c].tpl, "$(") &&
			    strchr(nasty[v], '\n'))
				continue;
			value_for = nasty[v];
			cmd = render(contexts[c].tpl, TPL_SHELL,
				     TPL_SECRET_RESOLVE);
			if (!cmd)
				fail_msg("refused context %zu: %s", c,
					 contexts[c].tpl);
			got = run_shell(sh, cmd, dir);
			buf_addf(&want, "%s%s%s", contexts[c].pre, nasty[v],
				 contexts[c].post);
			if (strcmp(got, buf_str(&want)) != 0)
				fail_msg("%s: template [%s] value [%s]\nran [%s]\ngot [%s]\nwant [%s]",
					 sh, contexts[c].tpl, nasty[v], cmd,
					 got, buf_str(&want));
			assert_int_not_equal(stat(pwned, &st), 0);
			free(cmd);
			free(got);
			buf_release(&want);
		}
	}
	rmdir(dir);
}

static void test_values_dash(void **state)
{
	test_values_stay_values(state, "/bin/sh");
}

static void test_values_bash(void **state)
{
	test_values_stay_values(state, "/bin/bash");
}

static void test_refuses_unsafe_contexts(void **state)
{
	static const char *const refused[] = {
		"echo `{{ v }}`",
		"echo \"`echo {{ v }}`\"",
		"echo ${x:-{{ v }}}",
		"echo $(( {{ v }} + 1 ))",
		"cat <<EOF\n{{ v }}\nEOF",
		"cat <<'EOF'\n{{ v }}\nEOF",
		"cat <<-EOF\n\t{{ v }}\nEOF",
		"echo hi # {{ v }}",
		"#{{ v }}",
		"echo ${{ v }}",
		"echo \\{{ v }}",
		"echo \"\\{{ v }}\"",
		"echo $'{{ v }}'",
		"echo \"$(case a in a) echo {{ v }};; esac)\"",
		"cat <<{{ v }}\nx\n",
		"echo {{ v",
		"echo {{ v | quote }}",
		"echo {{ }}",
	};

	(void)state;
	value_for = "x";
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		struct tpl_refs refs = { 0 };
		char problem[256];
		size_t off;
		char *out = render(refused[i], TPL_SHELL, TPL_SECRET_RESOLVE);

		if (out)
			fail_msg("accepted [%s] as [%s]", refused[i], out);
		assert_int_equal(tpl_scan(refused[i], TPL_SHELL, &refs, problem,
					  sizeof(problem), &off), -1);
		tpl_refs_release(&refs);
	}
}

/* Every template in list must be refused by tpl_scan and tpl_render. */
static void expect_refused(const char *const *list, size_t n)
{
	size_t bad = 0;

	value_for = "x";
	for (size_t i = 0; i < n; i++) {
		struct tpl_refs refs = { 0 };
		char problem[512];
		size_t off;
		char *out = render(list[i], TPL_SHELL, TPL_SECRET_RESOLVE);

		if (out) {
			print_error("rendered [%s] as [%s]\n", list[i], out);
			bad++;
		} else if (tpl_scan(list[i], TPL_SHELL, &refs, problem,
				    sizeof(problem), &off) == 0) {
			print_error("validated [%s]\n", list[i]);
			bad++;
		}
		free(out);
		tpl_refs_release(&refs);
	}
	if (bad)
		fail_msg("%zu of %zu templates accepted", bad, n);
}

/*
 * A {{ 'literal' }} is shell text the author wrote: the shell sees it
 * joined to the text around it, and so must the check (issue 11, 8).
 */
static void test_literals_join_the_text(void **state)
{
	static const char *const refused[] = {
		"cat <{{ '<' }}EOF\n{{ v }}\nEOF",
		"cat {{ '<' }}<EOF\n-e {{ v }}\nEOF",
		"cat {{ '<<' }}EOF\n{{ v }}\nEOF",
		"echo {{ '$' }}'{{ v }}'",
		"echo ${{ '' }}'{{ v }}'",
		"echo {{ '$' }}{{ v }}",
		"echo ${{ '' }}{{ v }}",
		"echo {{ '\\' }}{{ v }}",
		"echo {{ '$(' }}( {{ v }} ))",
		"echo {{ '$' }}(( {{ v }} ))",
		"echo {{ '$' }}{x:-{{ v }}}",
		"echo {{ '`' }}{{ v }}`",
		"echo {{ '#' }} {{ v }}",
		"echo {{ '' }}# {{ v }}",
	};

	(void)state;
	expect_refused(refused, sizeof(refused) / sizeof(refused[0]));
}

/*
 * bash evaluates some words as arithmetic or as variable names, and then
 * runs the command substitutions of an array index inside the value
 * (v='a[$(cmd)]'), quoted or not (issue 11, 9).
 */
static void test_refuses_arithmetic_and_names(void **state)
{
	static const char *const refused[] = {
		"[[ {{ v }} -lt 42 ]]",
		"[[ 42 -eq {{ v }} ]]",
		"[[ \"{{ v }}\" -gt 1 ]] && echo big",
		"[[ $(echo {{ v }}) -ge 1 ]]",
		"[[ x == y || {{ v }} -ne 3 ]]",
		"[[ ( {{ v }} -le 3 ) ]]",
		"[[ -v {{ v }} ]]",
		"let n={{ v }}",
		"let \"n = {{ v }}\"",
		"'let' n={{ v }}",
		"l\\et n={{ v }}",
		"cd /tmp; let n={{ v }}",
		"true && let n={{ v }}",
		"command let n={{ v }}",
		"echo \"$(let n={{ v }})\"",
		"let \"n=$(echo {{ v }})\"",
		"(( {{ v }} ))",
		"(( n = {{ v }} + 1 ))",
		"if (( {{ v }} > 1 )); then :; fi",
		"for (( i = {{ v }}; i < 3; i++ )); do :; done",
		"echo $(( {{ v }} ))",
		"echo $[ {{ v }} + 1 ]",
		"a[{{ v }}]=1",
		"a[\"{{ v }}\"]=1",
		"x=1 a[{{ v }}]=1",
		"a[$(echo {{ v }})]=1",
		"a=([{{ v }}]=1)",
		"declare -i n={{ v }}",
		"local -i n={{ v }}",
		"typeset -i n={{ v }}",
		"declare -n r={{ v }}",
		"declare {{ v }}=1",
		"local {{ v }}",
		"read {{ v }} <<< x",
		"read -r -a {{ v }} <<< x",
		"printf -v {{ v }} %s x",
		"test -v {{ v }}",
		"[ -v {{ v }} ]",
		"unset {{ v }}",
		"eval echo {{ v }}",
		"builtin eval {{ v }}",
		"trap 'echo {{ v }}' EXIT",
	};

	(void)state;
	expect_refused(refused, sizeof(refused) / sizeof(refused[0]));
}

/*
 * The same words next to a value are fine where bash does not evaluate
 * it: a hostile index runs nothing in these, in dash or bash.
 */
static void test_arithmetic_neighbours_run_nothing(void **state)
{
	static const char *const accepted[] = {
		"[ {{ v }} -lt 42 ] 2>/dev/null",
		"test {{ v }} -eq 1 2>/dev/null",
		"[[ {{ v }} == x ]] 2>/dev/null",
		"[[ -n {{ v }} ]] 2>/dev/null",
		"x={{ v }}",
		"x={{ v }} true",
		"export X={{ v }}",
		"f() { local x={{ v }}; }; f",
		"declare x={{ v }} 2>/dev/null",
		"read -r -p {{ v }} x </dev/null 2>/dev/null",
		"printf -v x %s {{ v }} 2>/dev/null",
		"echo let {{ v }} >/dev/null",
		"case {{ v }} in *[!0-9]*) ;; esac",
		"(cd . && echo {{ v }}) >/dev/null",
		"n=3; (( n == 3 )) 2>/dev/null; echo {{ v }} >/dev/null",
		"a[1]={{ v }} 2>/dev/null",
	};
	static const char *const hostile[] = {
		"a[$(touch PWNED)]", "a[`touch PWNED`]", "x[$(touch PWNED)]=1",
	};
	static const char *const shells[] = { "/bin/sh", "/bin/bash" };
	char dir[] = "/tmp/rbtplXXXXXX";
	char pwned[64];
	struct stat st;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(pwned, sizeof(pwned), "%s/PWNED", dir);
	for (size_t c = 0; c < sizeof(accepted) / sizeof(accepted[0]); c++) {
		for (size_t v = 0; v < sizeof(hostile) / sizeof(hostile[0]); v++) {
			char *cmd;

			value_for = hostile[v];
			cmd = render(accepted[c], TPL_SHELL, TPL_SECRET_RESOLVE);
			if (!cmd)
				fail_msg("refused [%s]", accepted[c]);
			for (size_t s = 0; s < 2; s++) {
				free(run_shell(shells[s], cmd, dir));
				if (stat(pwned, &st) == 0)
					fail_msg("%s ran the value of [%s]: %s",
						 shells[s], accepted[c], cmd);
			}
			free(cmd);
		}
	}
	rmdir(dir);
}

/*
 * Where the command comes from a value, the check is made on the
 * command as rendered: a value that names let cannot feed it another.
 */
static void test_render_checks_the_rendered_command(void **state)
{
	struct tpl_refs refs = { 0 };
	char problem[512];
	size_t off;
	char *s;

	(void)state;
	assert_int_equal(tpl_scan("{{ cmd }} n={{ v }}", TPL_SHELL, &refs,
				  problem, sizeof(problem), &off), 0);
	tpl_refs_release(&refs);
	value_for = "a[$(touch PWNED)]";
	cmd_for = "let";
	assert_null(render("{{ cmd }} n={{ v }}", TPL_SHELL,
			   TPL_SECRET_RESOLVE));
	cmd_for = "echo";
	s = render("{{ cmd }} n={{ v }}", TPL_SHELL, TPL_SECRET_RESOLVE);
	assert_non_null(s);
	assert_string_equal(s, "echo n='a[$(touch PWNED)]'");
	free(s);
	/* a value is never an operator of [[ ... ]] */
	value_for = "-lt";
	s = render("[[ x {{ v }} y ]]", TPL_SHELL, TPL_SECRET_RESOLVE);
	assert_non_null(s);
	assert_string_equal(s, "[[ x '-lt' y ]]");
	free(s);
	/* nor a reserved word, nor a brace expansion */
	value_for = "if";
	s = render("{{ v }} true", TPL_SHELL, TPL_SECRET_RESOLVE);
	assert_string_equal(s, "'if' true");
	free(s);
	value_for = "a,b";
	s = render("echo {x,{{ v }}}", TPL_SHELL, TPL_SECRET_RESOLVE);
	assert_string_equal(s, "echo {x,'a,b'}");
	free(s);
}

static void test_secret_modes(void **state)
{
	char *s;

	(void)state;
	s = render("login -p {{ secrets.pw }}", TPL_SHELL, TPL_SECRET_RESOLVE);
	assert_string_equal(s, "login -p hunter2");
	free(s);
	s = render("login -p {{ secrets.pw }}", TPL_SHELL, TPL_SECRET_MASK);
	assert_string_equal(s, "login -p [secret:pw]");
	free(s);
	s = render("login -p {{secrets.pw}}", TPL_SHELL, TPL_SECRET_KEEP);
	assert_string_equal(s, "login -p {{ secrets.pw }}");
	free(s);
}

/* What the replay of a record looks up: secrets only, and it says which. */
static struct buf replay_asked;

static const char *lookup_replay(void *ctx, const char *name)
{
	(void)ctx;
	buf_addf(&replay_asked, "%s;", name);
	if (strcmp(name, "secrets.pw") == 0)
		return "hunter2";
	return NULL;
}

static const char *lookup_counting(void *ctx, const char *name)
{
	struct buf *asked = ctx;

	if (strncmp(name, "secrets.", 8) == 0)
		buf_addf(asked, "%s;", name);
	return lookup(NULL, name);
}

/*
 * The record form (TPL_SECRET_KEEP) is rendered again when a rollback
 * is replayed: that must give the very command the original rendering
 * gave, and look up no secret the original did not (issue 11, 11).
 */
static void test_record_round_trip(void **state)
{
	static const struct {
		enum tpl_mode mode;
		const char *tpl, *v;
	} cases[] = {
		{ TPL_SHELL, "echo {{ '{{' }}", "x" },
		{ TPL_SHELL, "echo {{ '{{' }} secrets.pw }}", "x" },
		{ TPL_SHELL, "echo {{ '{{' }}{{ secrets.pw }}", "x" },
		{ TPL_SHELL, "echo {{ '{' }}{{ secrets.pw }}", "x" },
		{ TPL_SHELL, "echo '{{ v }}{'", "{" },
		{ TPL_SHELL, "echo '{{ v }}{{ '{' }}'", "{" },
		{ TPL_SHELL, "echo \"{{ v }}{x}\"", "a$" },
		{ TPL_SHELL, "echo \"{{ v }}{{ '{{' }}\"", "a$" },
		{ TPL_SHELL, "echo '{{ v }}{{ secrets.pw }}'", "a{" },
		{ TPL_SHELL, "echo \"{{ v }}{{ secrets.pw }}\"", "a{" },
		{ TPL_SHELL, "echo {{ v }}{{ secrets.pw }}", "{" },
		{ TPL_SHELL, "echo {{ v }} {{ secrets.pw }}", "{{ secrets.pw }}" },
		{ TPL_SHELL, "echo '{{ v }}' {{ secrets.pw }}",
		  "}} {{ secrets.pw }} {{" },
		{ TPL_SHELL, "echo {{ v }}", "{{{" },
		{ TPL_SHELL, "echo {{ v }}{{ '{' }}{{ secrets.pw }}", "{{{" },
		{ TPL_SHELL, "echo {{ v }}", "{{ '{{' }}" },
		{ TPL_SHELL, "echo \"{{ v }}\" '{{ secrets.pw }}'", "$(" },
		{ TPL_SHELL, "x={{ v }}; echo \"$x\" {{ secrets.pw }}", "case" },
		{ TPL_SHELL, "echo $(echo {{ v }}) {{ secrets.pw }}", "case" },
		{ TPL_SHELL, "echo $(echo {{ v }} x) {{ secrets.pw }}", "esac" },
		{ TPL_SHELL, "{{ v }} {{ secrets.pw }}", "if" },
		{ TPL_SHELL, "[[ {{ v }} == {{ secrets.pw }} ]]", "-lt" },
		{ TPL_SHELL, "cat <<EOF\n{{ '{{' }}\nEOF\necho {{ secrets.pw }}",
		  "x" },
		{ TPL_SHELL, "echo {{ v }} # {{ '{{' }} {{ '$' }}", "#x" },
		{ TPL_SHELL, "echo {{ v }}{{ secrets.pw }}", "a[1]" },
		{ TPL_RAW, "{{ '{{' }}x", "x" },
		{ TPL_RAW, "{{ '{{' }} secrets.pw }}", "x" },
		{ TPL_RAW, "{{ v }}{", "{" },
		{ TPL_RAW, "{{ v }}{{ secrets.pw }}", "{" },
		{ TPL_RAW, "{{ v }}", "{{ secrets.pw }}" },
		{ TPL_RAW, "a {{ v }} {{ secrets.pw }}{", "x{" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct buf cmd = BUF_INIT, rec = BUF_INIT, again = BUF_INIT;
		struct buf asked = BUF_INIT;
		struct rb_error err = RB_ERROR_INIT;

		value_for = cases[i].v;
		buf_reset(&replay_asked);
		if (tpl_render(cases[i].tpl, cases[i].mode, TPL_SECRET_RESOLVE,
			       lookup_counting, &asked, &cmd, &err) < 0)
			fail_msg("case %zu [%s]: %s", i, cases[i].tpl, err.msg);
		if (tpl_render(cases[i].tpl, cases[i].mode, TPL_SECRET_KEEP,
			       lookup, NULL, &rec, &err) < 0)
			fail_msg("case %zu [%s] record: %s", i, cases[i].tpl,
				 err.msg);
		if (tpl_render(buf_str(&rec), cases[i].mode, TPL_SECRET_RESOLVE,
			       lookup_replay, NULL, &again, &err) < 0)
			fail_msg("case %zu [%s] value [%s]: the record [%s] does not render again: %s",
				 i, cases[i].tpl, cases[i].v, buf_str(&rec),
				 err.msg);
		if (strcmp(buf_str(&cmd), buf_str(&again)) != 0)
			fail_msg("case %zu [%s] value [%s]: record [%s]\nran      [%s]\nreplayed [%s]",
				 i, cases[i].tpl, cases[i].v, buf_str(&rec),
				 buf_str(&cmd), buf_str(&again));
		if (strcmp(buf_str(&asked), buf_str(&replay_asked)) != 0)
			fail_msg("case %zu [%s]: the run looked up [%s], the replay [%s]",
				 i, cases[i].tpl, buf_str(&asked),
				 buf_str(&replay_asked));
		/* the replay records and shows what the run did */
		buf_reset(&again);
		if (tpl_render(buf_str(&rec), cases[i].mode, TPL_SECRET_KEEP,
			       lookup_replay, NULL, &again, &err) < 0 ||
		    strcmp(buf_str(&rec), buf_str(&again)) != 0)
			fail_msg("case %zu [%s]: the record [%s] recorded again is [%s]",
				 i, cases[i].tpl, buf_str(&rec), buf_str(&again));
		buf_reset(&cmd);
		buf_reset(&again);
		if (tpl_render(cases[i].tpl, cases[i].mode, TPL_SECRET_MASK,
			       lookup, NULL, &cmd, &err) < 0 ||
		    tpl_render(buf_str(&rec), cases[i].mode, TPL_SECRET_MASK,
			       lookup_replay, NULL, &again, &err) < 0 ||
		    strcmp(buf_str(&cmd), buf_str(&again)) != 0)
			fail_msg("case %zu [%s]: shown as [%s], replayed shown as [%s]",
				 i, cases[i].tpl, buf_str(&cmd), buf_str(&again));
		buf_release(&cmd);
		buf_release(&rec);
		buf_release(&again);
		buf_release(&asked);
	}
	buf_release(&replay_asked);
}

static void test_raw_mode_copies(void **state)
{
	char *s;

	(void)state;
	value_for = "a b'c";
	s = render("/srv/{{ v }}/x", TPL_RAW, TPL_SECRET_RESOLVE);
	assert_string_equal(s, "/srv/a b'c/x");
	free(s);
	/* raw mode has no shell contexts: a backquote is just text */
	s = render("`{{ v }}`", TPL_RAW, TPL_SECRET_RESOLVE);
	assert_string_equal(s, "`a b'c`");
	free(s);
}

static void test_unknown_name_fails(void **state)
{
	(void)state;
	assert_null(render("echo {{ nope }}", TPL_SHELL, TPL_SECRET_RESOLVE));
}

static void test_scan_lists_names_and_offsets(void **state)
{
	struct tpl_refs refs = { 0 };
	char problem[256];
	size_t off;

	(void)state;
	assert_int_equal(tpl_scan("a {{ x }} b {{ '{{' }} {{change.id}}",
				  TPL_SHELL, &refs, problem, sizeof(problem),
				  &off), 0);
	assert_int_equal(refs.n, 2);
	assert_string_equal(refs.v[0].name, "x");
	assert_int_equal(refs.v[0].off, 2);
	assert_string_equal(refs.v[1].name, "change.id");
	assert_int_equal(refs.v[1].off, 23);
	tpl_refs_release(&refs);
}

static void test_shell_quote_bare_when_safe(void **state)
{
	struct buf b = BUF_INIT;

	(void)state;
	shell_quote(&b, "2.4.1");
	assert_string_equal(buf_str(&b), "2.4.1");
	buf_reset(&b);
	shell_quote(&b, "a=b");
	assert_string_equal(buf_str(&b), "'a=b'");
	buf_reset(&b);
	shell_quote(&b, "");
	assert_string_equal(buf_str(&b), "''");
	buf_release(&b);
}

/* shell_exec_ok(): `exec CMD` only where it runs exactly what CMD does */
static void test_shell_exec_ok(void **state)
{
	static const struct { const char *cmd; bool ok; } cases[] = {
		{ "/bin/true", true }, { "  /bin/echo a 'b c'", true },
		{ "/bin/echo hi\n", true }, { "/bin/echo hi\n\n  ", true },
		{ "/bin/echo x 2>&1 >/dev/null", true },
		{ "/bin/echo $(/bin/echo x)", false },
		{ "cat </dev/null", true }, { "env -i X=1 /bin/sh -c :", true },
		{ "true", false }, { "echo hi", false }, { "printf x", false },
		{ "exit 3", false }, { "cd /", false }, { "[ -e / ]", false },
		{ "if", false }, { "X=1 /bin/true", false }, { "$CMD", false },
		{ "/bin/true; /bin/false", false }, { "/bin/true && x", false },
		{ "/bin/true &", false }, { "/bin/true | cat", false },
		{ "/bin/true\n/bin/false", false }, { "(/bin/true)", false },
		{ "{ /bin/true; }", false }, { "/bin/echo `id`", false },
		{ "-x", false }, { "", false }, { "   ", false },
		{ "/bin/true&>x", false }, { "cat<x", false },
		{ "/bin/echo a &>/dev/null", false },
	};
	char dir[] = "/tmp/rb-exec-XXXXXX";

	(void)state;
	assert_non_null(mkdtemp(dir));
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct buf e = BUF_INIT;
		char *a, *b;

		if (shell_exec_ok(cases[i].cmd) != cases[i].ok)
			fail_msg("shell_exec_ok(\"%s\") is %d", cases[i].cmd,
				 !cases[i].ok);
		if (!cases[i].ok)
			continue;
		buf_addf(&e, "eval \"exec %s\"", cases[i].cmd);
		a = run_shell("/bin/sh", cases[i].cmd, dir);
		b = run_shell("/bin/sh", buf_str(&e), dir);
		assert_string_equal(a, b);
		free(a);
		free(b);
		buf_release(&e);
	}
	rmdir(dir);
}

/*
 * shell_bash_same(): where it says yes, `bash --posix` runs the command
 * exactly as dash does; some of its noes really differ.
 */
static void test_shell_bash_same(void **state)
{
	static const struct { const char *cmd; int same; } cases[] = {
		/* same: 1, refused: 0, refused and differs: -1 */
		{ "/bin/echo a 'b c'", 1 }, { "/bin/echo *", 1 },
		{ "/bin/echo ?1 'x$y' \"q\"", 1 }, { "/bin/echo a\\ b", 1 },
		{ "/bin/echo \"a\\$b\" 'it''s'", 1 },
		{ "/bin/echo x 2>&1 >/dev/null", 1 },
		{ "/usr/bin/printf '%s,' 'a b' c\\\"d", 1 },
		{ "/bin/echo '~' \"~\" 'é'", 0 }, { "/bin/echo a~b", 0 },
		{ "/bin/echo [ab]1", 0 }, { "/bin/echo x >&out", 0 },
		{ "/bin/echo 'open", 0 }, { "echo $HOME", 0 },
		{ "/bin/echo $RANDOM", -1 }, { "/bin/echo \"$BASHPID\"", -1 },
		{ "/bin/echo $'a\\tb'", -1 }, { "/bin/echo $BASH_VERSION", -1 },
		{ "/bin/cat <<<here", -1 }, { "/bin/echo ~", 0 },
	};
	char dir[] = "/tmp/rb-bash-XXXXXX", path[64];
	struct stat st;

	(void)state;
	if (stat("/bin/bash", &st) != 0)
		skip();
	assert_non_null(mkdtemp(dir));
	for (const char *f = "a1\0b2\0"; *f; f += strlen(f) + 1) {
		snprintf(path, sizeof(path), "%s/%s", dir, f);
		fclose(fopen(path, "w"));
	}
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct buf e = BUF_INIT;
		char *a, *b;

		if (shell_bash_same(cases[i].cmd) != (cases[i].same == 1))
			fail_msg("shell_bash_same(\"%s\") is %d", cases[i].cmd,
				 cases[i].same != 1);
		if (!cases[i].same)
			continue;
		/* as the remote shell runs it (src/ssh_shell.c) */
		buf_adds(&e, "set -o posix; rb_c=");
		shell_quote_always(&e, cases[i].cmd);
		buf_adds(&e, "; eval \"exec $rb_c\"");
		a = run_shell("/bin/sh", cases[i].cmd, dir);
		b = run_shell("/bin/bash", buf_str(&e), dir);
		if ((strcmp(a, b) == 0) != (cases[i].same == 1))
			fail_msg("[%s]: dash printed [%s], bash [%s]",
				 cases[i].cmd, a, b);
		free(a);
		free(b);
		buf_release(&e);
	}
	for (const char *f = "a1\0b2\0out\0"; *f; f += strlen(f) + 1) {
		snprintf(path, sizeof(path), "%s/%s", dir, f);
		unlink(path);
	}
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_values_dash),
		cmocka_unit_test(test_values_bash),
		cmocka_unit_test(test_refuses_unsafe_contexts),
		cmocka_unit_test(test_literals_join_the_text),
		cmocka_unit_test(test_refuses_arithmetic_and_names),
		cmocka_unit_test(test_arithmetic_neighbours_run_nothing),
		cmocka_unit_test(test_render_checks_the_rendered_command),
		cmocka_unit_test(test_secret_modes),
		cmocka_unit_test(test_record_round_trip),
		cmocka_unit_test(test_raw_mode_copies),
		cmocka_unit_test(test_unknown_name_fails),
		cmocka_unit_test(test_scan_lists_names_and_offsets),
		cmocka_unit_test(test_shell_quote_bare_when_safe),
		cmocka_unit_test(test_shell_exec_ok),
		cmocka_unit_test(test_shell_bash_same),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
