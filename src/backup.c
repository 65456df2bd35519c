/*
 * Backups that `rollback: restore` puts back: the loader's side of the
 * `backup` and `backup_dir` keys, the shell texts that take, check and
 * restore a backup on a host, and the manifest they print.
 *
 * Invariant: every value that reaches a shell text here goes through
 * quote.c, and the restore text holds no "{{", so rendering it as a
 * template (as a rollback is, and again when replayed) gives it back
 * unchanged.
 */
#include "backup.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "diag.h"
#include "error.h"
#include "exec.h"
#include "quote.h"
#include "yamltree.h"

/* ---- the loader's side ---- */

static bool literal_path_ok(const char *p, const char **why)
{
	if (strncmp(p, "{{", 2) == 0)
		return true;	/* judged once rendered */
	return backup_path_ok(p, why);
}

void backup_load_step(struct diag *d, const struct ynode *n, struct step *s)
{
	const struct ynode *x = ynode_get(n, "backup");

	s->rollback_restore = s->rollback.s &&
			      strcmp(s->rollback.s, "restore") == 0;
	if (s->rollback_restore && !x)
		diag_at(d, &s->rollback.pos,
			"%s.rollback: expected restore only with a backup of the paths to put back, found no backup key; add backup: [PATH...] to the step or write the command that undoes it",
			s->path);
	if (!x)
		return;
	if (x->type == YN_SCALAR && !ynode_is_null(x)) {
		diag_at(d, &x->pos,
			"%s.backup: expected a non-empty list of absolute paths, such as [/etc/app.conf], found \"%s\"; write it as [%s]",
			s->path, x->text, x->text);
		return;
	}
	if (x->type != YN_SEQ || x->n == 0) {
		diag_at(d, &x->pos,
			"%s.backup: expected a non-empty list of absolute paths, such as [/etc/app.conf], found %s",
			s->path, x->type == YN_SEQ ? "an empty list" :
			ynode_is_null(x) ? "null" : ynode_type_name(x));
		return;
	}
	if (x->n > BACKUP_MAX_PATHS) {
		diag_at(d, &x->pos,
			"%s.backup: expected at most %d paths (back up their directory instead), found %zu",
			s->path, BACKUP_MAX_PATHS, x->n);
		return;
	}
	s->backup = xcalloc(x->n, sizeof(*s->backup));
	for (size_t i = 0; i < x->n; i++) {
		const struct ynode *p = x->items[i];
		const char *why = NULL;

		if (p->type != YN_SCALAR || ynode_is_null(p) || p->len == 0) {
			diag_at(d, &p->pos,
				"%s.backup[%zu]: expected an absolute path, found %s",
				s->path, i, p->type != YN_SCALAR ? ynode_type_name(p) :
				ynode_is_null(p) ? "null" : "an empty string");
			continue;
		}
		if (!literal_path_ok(p->text, &why)) {
			diag_at(d, &p->pos,
				"%s.backup[%zu]: expected an absolute path, found \"%s\" (%s)",
				s->path, i, p->text, why);
			continue;
		}
		s->backup[s->n_backup].s = xstrndup(p->text, p->len);
		s->backup[s->n_backup].pos = p->pos;
		s->n_backup++;
	}
}

void backup_load_dir(struct diag *d, const struct ynode *root,
		     struct runbook *rb)
{
	const struct ynode *x = ynode_get(root, "backup_dir");
	const char *p, *why = NULL;

	if (!x)
		return;
	if (x->type != YN_SCALAR || ynode_is_null(x) || x->len == 0) {
		diag_at(d, &x->pos,
			"backup_dir: expected an absolute directory such as /var/backups/runbook or ~/backups, found %s",
			x->type != YN_SCALAR ? ynode_type_name(x) :
			ynode_is_null(x) ? "null" : "an empty string");
		return;
	}
	p = x->text;
	if (strncmp(p, "~/", 2) == 0)
		p++;
	if (strstr(x->text, "{{") || strstr(x->text, "}}"))
		why = "{{ }} is not rendered in backup_dir";
	if (why || !backup_path_ok(p, &why)) {
		diag_at(d, &x->pos,
			"backup_dir: expected an absolute directory such as /var/backups/runbook or ~/backups, found \"%s\" (%s)",
			x->text, why);
		return;
	}
	rb->backup_dir.s = xstrndup(x->text, x->len);
	rb->backup_dir.pos = x->pos;
}

bool backup_path_ok(const char *p, const char **why)
{
	size_t n = strlen(p);

	if (p[0] != '/') {
		*why = "it must start with /";
		return false;
	}
	if (strspn(p, "/") == n) {
		*why = "/ itself cannot be backed up";
		return false;
	}
	if (strpbrk(p, "\n\r")) {
		*why = "it holds a line break";
		return false;
	}
	if (strchr(" \t", p[n - 1])) {
		*why = "it ends with a blank";
		return false;
	}
	for (const char *c = p; *c; c++) {
		size_t k;

		if (*c != '/')
			continue;
		k = strcspn(c + 1, "/");
		if ((k == 1 && c[1] == '.') ||
		    (k == 2 && c[1] == '.' && c[2] == '.')) {
			*why = "it has a . or .. component";
			return false;
		}
	}
	return true;
}

/* ---- shell texts ---- */

void backup_step_dir(const struct step *s, struct buf *out)
{
	size_t start = out->len, k = 0;
	bool dash = false;

	buf_addf(out, "%02zu-", s->index + 1);
	for (const char *c = s->name.s ? s->name.s : ""; *c && k < 40; c++) {
		char ch = *c;

		if (ch >= 'A' && ch <= 'Z')
			ch = (char)(ch - 'A' + 'a');
		if ((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
		    ch == '_' || ch == '.') {
			if (dash && k)
				buf_addc(out, '-'), k++;
			buf_addc(out, ch);
			k++;
			dash = false;
		} else {
			dash = true;
		}
	}
	if (out->len == start + 3)
		buf_adds(out, "step");
}

/* r=ROOT: a quoted path, "$HOME"/rest for ~/rest, or the default. */
static void set_root(struct buf *out, const char *root)
{
	if (!root) {
		buf_adds(out, "r=" BACKUP_DIR_DEFAULT "\n"
			 "if ! { mkdir -p -- \"$r\" 2>/dev/null && [ -w \"$r\" ]; }; then r=\"$HOME\"/.runbook/backups; fi\n");
		return;
	}
	buf_adds(out, "r=");
	if (strncmp(root, "~/", 2) == 0) {
		buf_adds(out, "\"$HOME\"/");
		shell_quote_always(out, root + 2);
	} else {
		shell_quote_always(out, root);
	}
	buf_addc(out, '\n');
}

void backup_script(struct buf *out, const char *root, const char *change_id,
		   const struct step *s, char *const *paths, size_t n)
{
	struct buf sd = BUF_INIT;

	backup_step_dir(s, &sd);
	buf_adds(out, "set -u\numask 077\nd=\nnl='\n'\n");
	set_root(out, root);
	buf_adds(out, "c=\"$r\"/");
	shell_quote_always(out, change_id);
	buf_adds(out, "\n");
	buf_adds(out,
		 "fail() { printf 'runbook backup: %s\\n' \"$*\" >&2; if [ -n \"$d\" ]; then rm -rf -- \"$d\"; rmdir -- \"$c\" 2>/dev/null; fi; exit 1; }\n"
		 "mkdir -p -- \"$c\" && chmod 0700 -- \"$c\" || fail \"cannot create the backup directory $c\"\n"
		 "mkdir -- \"$c\"/");
	shell_quote_always(out, buf_str(&sd));
	buf_adds(out,
		 " || fail \"cannot create $c/");
	buf_adds(out, buf_str(&sd));	/* [a-z0-9._-] only */
	buf_adds(out, " (it exists already, or no permission)\"\n"
		 "d=\"$c\"/");
	shell_quote_always(out, buf_str(&sd));
	buf_adds(out, "\nn=0\nfor p in");
	for (size_t i = 0; i < n; i++) {
		buf_addc(out, ' ');
		shell_quote_always(out, paths[i]);
	}
	buf_adds(out,
		 "; do\n"
		 "  n=$((n + 1))\n"
		 "  if [ -L \"$p\" ]; then k=link; elif [ -d \"$p\" ]; then k=dir; elif [ -f \"$p\" ]; then k=file; elif [ -e \"$p\" ]; then k=other; else k=missing; fi\n"
		 "  if [ $k = missing ]; then\n"
		 "    printf '%s missing 0 - %s\\n' $n \"$p\" >> \"$d/manifest.new\" || fail \"cannot write $d/manifest.new\"\n"
		 "    continue\n"
		 "  fi\n"
		 "  z=$(du -sb -- \"$p\") || fail \"cannot read $p\"\n"
		 "  z=${z%%[!0-9]*}\n"
		 "  e=$(tar -C / --sort=name --numeric-owner -cpf \"$d/$n.tar\" -- \"${p#/}\" 2>&1) || {\n"
		 "    case $e in *'Cannot '*) e=\"Cannot ${e#*Cannot }\" ;; esac\n"
		 "    e=${e%%\"$nl\"*}; e=${e#tar: }; e=${e#\"$d/$n.tar: \"}\n"
		 "    f=$(df -Pk -- \"$d\" 2>/dev/null | tail -n 1) && set -- $f && e=\"$e; $4 KiB free there\"\n"
		 "    fail \"cannot copy $p: $e (into $d)\"\n"
		 "  }\n"
		 "  h=$(sha256sum < \"$d/$n.tar\") || fail \"cannot read $d/$n.tar\"\n"
		 "  printf '%s %s %s %s %s\\n' $n $k \"$z\" \"${h%% *}\" \"$p\" >> \"$d/manifest.new\" || fail \"cannot write $d/manifest.new\"\n"
		 "done\n"
		 "mv -- \"$d/manifest.new\" \"$d/manifest\" || fail \"cannot write $d/manifest\"\n"
		 "h=$(sha256sum < \"$d/manifest\") || fail \"cannot read $d/manifest\"\n"
		 "printf 'dir %s\\nsum %s\\n' \"$d\" \"${h%% *}\"\n"
		 "cat -- \"$d/manifest\"\n");
	buf_release(&sd);
}

void backup_restore_script(struct buf *out, const char *dir, const char *sum)
{
	buf_adds(out, "# runbook restore: the backup in d, its manifest's sha256 w\nset -u\nd=");
	shell_quote_always(out, dir);
	buf_adds(out, "\nw=");
	shell_quote_always(out, sum);
	buf_adds(out,
		 "\nno() { printf '%s\\nrunbook restore: refused: %s; nothing was restored; running the rollback again is safe\\n' \"$2\" \"$1\" >&2; exit 3; }\n"
		 "[ -f \"$d/manifest\" ] || no \"the backup $d is gone\" \"no $d/manifest\"\n"
		 "h=$(sha256sum < \"$d/manifest\") || no \"cannot read the backup $d\" \"cannot read $d/manifest\"\n"
		 "[ \"${h%% *}\" = \"$w\" ] || no \"the backup $d changed since it was taken\" \"$d/manifest has sha256 ${h%% *}, the change recorded $w\"\n"
		 "while read -r n k z s p; do\n"
		 "  [ $k = missing ] && continue\n"
		 "  [ -f \"$d/$n.tar\" ] || no \"the backup of $p is gone\" \"no $d/$n.tar\"\n"
		 "  h=$(sha256sum < \"$d/$n.tar\") || no \"cannot read the backup of $p\" \"cannot read $d/$n.tar\"\n"
		 "  [ \"${h%% *}\" = \"$s\" ] || no \"the backup of $p changed since it was taken\" \"$d/$n.tar has sha256 ${h%% *}, the change recorded $s\"\n"
		 "done < \"$d/manifest\"\n"
		 "while read -r n k z s p; do\n"
		 "  rm -rf -- \"$p\" || { echo \"runbook restore: cannot remove $p to restore it; running the rollback again is safe\" >&2; exit 1; }\n"
		 "  if [ $k = missing ]; then echo \"removed $p (it did not exist before)\"; continue; fi\n"
		 "  tar -C / --numeric-owner -xpf \"$d/$n.tar\" || { echo \"runbook restore: cannot restore $p from $d/$n.tar; running the rollback again is safe\" >&2; exit 1; }\n"
		 "  echo \"restored $p ($k, $z bytes)\"\n"
		 "done < \"$d/manifest\"\n");
}

/* ---- the manifest ---- */

static bool is_sha256(const char *s, size_t n)
{
	if (n != 64)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!strchr("0123456789abcdef", s[i]))
			return false;
	return true;
}

int backup_parse(const char *text, struct backup_manifest *out,
		 const char **why)
{
	struct backup_manifest m = { 0 };
	const char *l = text, *e;

	*why = "expected lines \"dir D\" and \"sum SHA256\" first";
	if (strncmp(l, "dir /", 5) != 0 || !(e = strchr(l, '\n')))
		goto bad;
	m.dir = xstrndup(l + 4, (size_t)(e - l - 4));
	if (strstr(m.dir, "{{") || strstr(m.dir, "}}")) {
		*why = "the backup directory has {{ or }} in its name";
		goto bad;
	}
	l = e + 1;
	if (strncmp(l, "sum ", 4) != 0 || !(e = strchr(l, '\n')) ||
	    !is_sha256(l + 4, (size_t)(e - l - 4)))
		goto bad;
	memcpy(m.sum, l + 4, 64);
	for (l = e + 1; *l; l = e + 1) {
		char kind[16], sum[80];
		unsigned long long size;
		unsigned idx;
		int at = 0;

		if (!(e = strchr(l, '\n')) ||
		    sscanf(l, "%u %15s %llu %79s %n", &idx, kind, &size, sum,
			   &at) != 4 || at == 0 || l + at >= e || l[at] != '/' ||
		    idx != m.n_paths + 1) {
			*why = "expected manifest lines \"N KIND SIZE SHA256 PATH\"";
			goto bad;
		}
		m.n_paths++;
		if (strcmp(kind, "missing") == 0)
			m.n_missing++;
		else if (is_sha256(sum, strlen(sum)))
			m.bytes += size;
		else {
			*why = "expected a SHA-256 for each path that exists";
			goto bad;
		}
	}
	if (m.n_paths == 0) {
		*why = "expected at least one path in the manifest";
		goto bad;
	}
	*out = m;
	return 0;
bad:
	backup_manifest_release(&m);
	return -1;
}

void backup_manifest_release(struct backup_manifest *m)
{
	free(m->dir);
	m->dir = NULL;
}

/* ---- taking one ---- */

#define BACKUP_OUT_MAX (64u * 1024)
#define BACKUP_ERR_MAX 2048u

struct collect {
	struct buf out, err;
	bool too_long;
};

static void on_output(void *ctx, enum exec_stream s, const char *data,
		      size_t len)
{
	struct collect *c = ctx;

	if (s == EXEC_STDOUT) {
		if (c->out.len + len > BACKUP_OUT_MAX)
			c->too_long = true;
		else
			buf_add(&c->out, data, len);
	} else if (c->err.len + len <= BACKUP_ERR_MAX) {
		buf_add(&c->err, data, len);
	}
}

static int render_paths(const struct backup_req *rq, struct strvec *paths,
			struct buf *why)
{
	const struct step *s = rq->s;

	for (size_t i = 0; i < s->n_backup; i++) {
		struct rb_error err = RB_ERROR_INIT;
		struct buf p = BUF_INIT;
		const char *bad = NULL;

		if (tpl_render(s->backup[i].s, TPL_RAW, TPL_SECRET_RESOLVE,
			       rq->lookup, rq->ctx, &p, &err) < 0) {
			buf_addf(why, "backup[%zu]: %s", i, err.msg);
			buf_release(&p);
			return -1;
		}
		if (!backup_path_ok(buf_str(&p), &bad)) {
			buf_addf(why, "backup[%zu]: expected an absolute path, found \"%s\" (%s)",
				 i, buf_str(&p), bad);
			buf_release(&p);
			return -1;
		}
		strvec_push_owned(paths, buf_detach(&p));
	}
	return 0;
}

int backup_take(const struct backup_req *rq, struct backup_taken *out,
		struct buf *why)
{
	struct collect c = { BUF_INIT, BUF_INIT, false };
	struct exec_sink sink = { on_output, NULL, NULL, &c };
	struct strvec paths = STRVEC_INIT;
	struct exec_result res = { 0 };
	struct rb_error err = RB_ERROR_INIT;
	struct backup_manifest m = { 0 };
	struct buf sh = BUF_INIT, rs = BUF_INIT;
	struct exec_cmd ec = { 0 };
	const char *bad = NULL;
	int ret = -1;

	if (render_paths(rq, &paths, why) < 0)
		goto out;
	backup_script(&sh, rq->root, rq->change_id, rq->s, paths.v, paths.n);
	ec.command = buf_str(&sh);
	ec.unset = rq->unset;
	ec.timeout_ms = rq->s->timeout_ms;
	ec.cancel_fd = rq->cancel_fd;
	if (exec_run(rq->ex, &ec, &sink, &res, &err) < 0) {
		buf_addf(why, "could not run the backup: %s", err.msg);
		goto out;
	}
	while (c.err.len && strchr("\r\n", c.err.data[c.err.len - 1]))
		c.err.data[--c.err.len] = '\0';
	if (res.end != EXEC_EXITED || res.exit_code != 0) {
		if (res.end == EXEC_TIMED_OUT)
			buf_adds(why, "the backup took longer than the step's timeout");
		else if (res.end == EXEC_CANCELLED)
			buf_adds(why, "the backup was interrupted by a signal");
		else if (!c.err.len)
			buf_adds(why, "the backup failed and said nothing");
		for (size_t i = 0; i < c.err.len; i++)	/* one line */
			if (c.err.data[i] == '\n')
				buf_adds(why, "; ");
			else if (c.err.data[i] != '\r')
				buf_addc(why, c.err.data[i]);
		goto out;
	}
	if (c.too_long || backup_parse(buf_str(&c.out), &m, &bad) < 0) {
		buf_addf(why, "the backup printed what runbook cannot read (%s)",
			 c.too_long ? "more than 64 KiB" : bad);
		goto out;
	}
	backup_restore_script(&rs, m.dir, m.sum);
	out->restore = buf_detach(&rs);
	out->record = buf_detach(&c.out);
	ret = 0;
out:
	if (ret < 0)
		buf_adds(why, "; the step did not run, and running it again is safe");
	backup_manifest_release(&m);
	strvec_release(&paths);
	buf_release(&sh);
	buf_release(&rs);
	buf_release(&c.out);
	buf_release(&c.err);
	return ret;
}
