/*
 * Inventory files and the fleet keys of a target (inventory.h). The
 * reader keeps load.c's manners: every problem at file:line:column
 * with the key path, what was expected and what was found, all of
 * them in one pass; a partial model whenever the file was a mapping.
 * Invariant: a target this module hands over has a name, a host list
 * (maybe empty after problems) and `from` naming its inventory.
 */
#include "inventory.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "runbook.h"
#include "suggest.h"
#include "yamltree.h"

struct spec {
	const char *name;
	bool required;
};

static const char host_form[] =
	"a host such as local, host, user@host or user@host:2222";

static bool is_text(const struct ynode *n)
{
	return n->type == YN_SCALAR && !ynode_is_null(n);
}

static bool plain(const struct ynode *n)
{
	return n->type == YN_SCALAR && n->style == YS_PLAIN && !n->tag_str;
}

/* Unknown keys (with the closest known one), missing required keys, duplicates. */
static void check_keys(struct diag *d, const struct ynode *map,
		       const char *path, const struct spec *keys, size_t nk)
{
	const char *names[16];
	struct buf list = BUF_INIT;

	for (size_t j = 0; j < nk && j < 16; j++) {
		names[j] = keys[j].name;
		buf_addf(&list, "%s%s", j ? ", " : "", keys[j].name);
	}
	for (size_t i = 0; i < map->n; i++) {
		const char *k = map->keys[i]->text, *near;
		bool known = false;

		for (size_t j = 0; j < nk && !known; j++)
			known = strcmp(k, keys[j].name) == 0;
		for (size_t j = 0; j < i; j++) {
			if (strcmp(k, map->keys[j]->text) == 0) {
				diag_at(d, &map->keys[i]->pos,
					"%s%s%s: expected each key once, found \"%s\" again (first at line %u)",
					path, *path ? "." : "", k, k,
					map->keys[j]->pos.line);
				break;
			}
		}
		if (known)
			continue;
		near = suggest_closest(k, names, nk);
		diag_at(d, &map->keys[i]->pos,
			"%s%s%s: expected one of the keys %s, found unknown key \"%s\"%s%s%s",
			path, *path ? "." : "", k, buf_str(&list), k,
			near ? "; did you mean " : "", near ? near : "",
			near ? "?" : "");
	}
	for (size_t j = 0; j < nk; j++)
		if (keys[j].required && !ynode_get(map, keys[j].name))
			diag_at(d, &map->pos,
				"%s%s%s: expected a key \"%s\", found none", path,
				*path ? "." : "", keys[j].name, keys[j].name);
	buf_release(&list);
}

/* name -> string maps: target and host vars. */
static void load_vars(struct diag *d, const struct ynode *n,
		      const char *path, struct kv **out, size_t *nout)
{
	size_t cap = 0;

	if (n->type != YN_MAP) {
		ynode_bad(d, n, path, "a mapping of variable names to values");
		return;
	}
	for (size_t i = 0; i < n->n; i++) {
		const struct ynode *k = n->keys[i], *v = n->items[i];
		struct kv kv = { 0 };
		bool again = false;

		for (size_t j = 0; j < i && !again; j++)
			again = strcmp(k->text, n->keys[j]->text) == 0;
		if (again) {
			diag_at(d, &k->pos,
				"%s.%s: expected each variable once, found \"%s\" again",
				path, k->text, k->text);
			continue;
		}
		if (!is_var_name(k->text)) {
			diag_at(d, &k->pos,
				"%s.%s: expected a variable name of letters, digits and _ (not starting with a digit), found \"%s\"",
				path, k->text, k->text);
			continue;
		}
		if (!is_text(v)) {
			struct buf sub = BUF_INIT;

			buf_addf(&sub, "%s.%s", path, k->text);
			ynode_bad(d, v, buf_str(&sub), "a string (quote numbers and words if you like)");
			buf_release(&sub);
			continue;
		}
		kv.key = xstrdup(k->text);
		kv.key_pos = k->pos;
		kv.val = xstrndup(v->text, v->len);
		kv.pos = v->pos;
		*out = xgrow(*out, &cap, *nout + 1, sizeof(**out));
		(*out)[(*nout)++] = kv;
	}
}

/* One wave: 3 or 25%. */
static bool get_wave(const struct ynode *x, struct wave *w)
{
	size_t digits;

	if (x->type != YN_SCALAR || x->tag_str || x->len < 1 || x->len > 6 ||
	    (x->style != YS_PLAIN && x->text[x->len - 1] != '%'))
		return false;
	digits = strspn(x->text, "0123456789");
	w->percent = x->text[x->len - 1] == '%';
	if (w->percent && (x->len < 2 || x->len > 4))
		return false;
	if (digits == 0 || digits != x->len - w->percent)
		return false;
	w->n = (unsigned)strtoul(x->text, NULL, 10);
	return w->n >= 1 && (!w->percent || w->n <= 100);
}

static void load_serial(struct diag *d, const struct ynode *x,
			const char *path, struct target *t)
{
	static const char what[] = "a number of hosts per batch (1 or more) or a percentage such as 25%";
	struct buf sub = BUF_INIT;

	if (x->type != YN_SEQ) {
		struct ynode copy = *x;
		struct wave w;
		bool would;

		copy.style = YS_PLAIN;
		copy.tag_str = false;
		would = x->type == YN_SCALAR && get_wave(&copy, &w);
		/* "25%" in quotes is fine; 2 in quotes is text */
		if (!would || (!plain(x) && !w.percent)) {
			if (would)
				ynode_bad_quoted(d, x, path, what);
			else
				ynode_bad(d, x, path, what);
			goto out;
		}
		t->waves = xcalloc(1, sizeof(*t->waves));
		t->waves[0] = w;
		t->n_waves = 1;
	} else if (x->n == 0 || x->n > 100) {
		ynode_bad(d, x, path, "a list of 1 to 100 batch sizes such as [1, 25%, 100%]");
		goto out;
	} else {
		t->waves = xcalloc(x->n, sizeof(*t->waves));
		for (size_t i = 0; i < x->n; i++) {
			buf_reset(&sub);
			buf_addf(&sub, "%s[%zu]", path, i);
			if (get_wave(x->items[i], &t->waves[t->n_waves]))
				t->n_waves++;
			else
				ynode_bad(d, x->items[i], buf_str(&sub), what);
		}
		if (t->n_waves != x->n)
			t->n_waves = 0;
	}
	if (t->n_waves) {
		t->serial = t->waves[0].n;
		t->serial_percent = t->waves[0].percent;
	}
out:
	buf_release(&sub);
}

static void load_max_fail(struct diag *d, const struct ynode *x,
			  const char *path, struct target *t)
{
	size_t digits = x->type == YN_SCALAR ? strspn(x->text, "0123456789") : 0;
	bool pct = x->type == YN_SCALAR && x->len > 1 && x->text[x->len - 1] == '%';

	if (x->type == YN_SCALAR && digits > 0 && digits <= 6 &&
	    digits == x->len - pct && (pct || plain(x)) && !x->tag_str) {
		unsigned long v = strtoul(x->text, NULL, 10);

		if (!pct || v <= 100) {
			t->max_fail = (unsigned)v;
			t->max_fail_percent = pct;
			return;
		}
	}
	ynode_bad(d, x, path, "a number of hosts that may fail (0 or more) or a percentage such as 10%");
}

void inventory_target_keys(struct diag *d, const struct ynode *n,
			   const char *path, struct target *t)
{
	struct buf sub = BUF_INIT;
	const struct ynode *x;

	if ((x = ynode_get(n, "serial"))) {
		buf_addf(&sub, "%s.serial", path);
		load_serial(d, x, buf_str(&sub), t);
	}
	if ((x = ynode_get(n, "pause"))) {
		buf_reset(&sub);
		buf_addf(&sub, "%s.pause", path);
		if (!is_text(x) || !plain(x) ||
		    parse_duration(x->text, &t->pause_ms) < 0)
			ynode_bad(d, x, buf_str(&sub),
			    "a duration such as 30s, 5m or 1h30m (at most 24h)");
	}
	if ((x = ynode_get(n, "max_fail"))) {
		buf_reset(&sub);
		buf_addf(&sub, "%s.max_fail", path);
		load_max_fail(d, x, buf_str(&sub), t);
	}
	if ((x = ynode_get(n, "confirm"))) {
		bool word = x->type == YN_SCALAR && (strcmp(x->text, "true") == 0 ||
						     strcmp(x->text, "false") == 0);

		buf_reset(&sub);
		buf_addf(&sub, "%s.confirm", path);
		if (word && plain(x))
			t->confirm = x->text[0] == 't';
		else if (word && !x->tag_str)
			ynode_bad_quoted(d, x, buf_str(&sub), "true or false");
		else
			ynode_bad(d, x, buf_str(&sub), "true or false");
	}
	if ((x = ynode_get(n, "vars"))) {
		buf_reset(&sub);
		buf_addf(&sub, "%s.vars", path);
		load_vars(d, x, buf_str(&sub), &t->vars, &t->n_vars);
	}
	buf_release(&sub);
}

/* As load.c's host form: user and name of letters, digits, '.', '_', '-'. */
static bool host_ok(struct host *h)
{
	static const char word[] = "abcdefghijklmnopqrstuvwxyz"
				   "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-";

	if (!host_parse(h))
		return false;
	if (h->local)
		return true;
	if (h->user && h->user[strspn(h->user, word)])
		return false;
	if (strchr(h->spec, '['))
		return !h->address[strspn(h->address, "0123456789abcdefABCDEF:.")];
	return !h->address[strspn(h->address, word)];
}

static void load_host(struct diag *d, const struct ynode *n,
		      const char *path, struct host *h)
{
	static const struct spec keys[] = {
		{ "host", true }, { "identity", false }, { "vars", false },
	};
	const struct ynode *spec = n, *x;
	struct buf sub = BUF_INIT;

	h->pos = n->pos;
	if (n->type == YN_MAP) {
		check_keys(d, n, path, keys, 3);
		if ((x = ynode_get(n, "identity"))) {
			buf_addf(&sub, "%s.identity", path);
			if (is_text(x))
				h->identity = xstrndup(x->text, x->len);
			else
				ynode_bad(d, x, buf_str(&sub), "a non-empty string");
		}
		if ((x = ynode_get(n, "vars"))) {
			buf_reset(&sub);
			buf_addf(&sub, "%s.vars", path);
			load_vars(d, x, buf_str(&sub), &h->vars, &h->n_vars);
		}
		buf_reset(&sub);
		buf_addf(&sub, "%s.host", path);
		path = buf_str(&sub);
		if (!(spec = ynode_get(n, "host")))
			goto out;
		h->pos = spec->pos;
	}
	if (!is_text(spec)) {
		ynode_bad(d, spec, path, host_form);
		goto out;
	}
	h->spec = xstrndup(spec->text, spec->len);
	if (!host_ok(h)) {
		ynode_bad(d, spec, path, host_form);
		free(h->address);
		h->address = NULL;
	}
out:
	buf_release(&sub);
}

/* The same host twice in a target: it would run every command twice at once. */
static void check_dup_hosts(struct diag *d, const struct target *t)
{
	for (size_t i = 0; i < t->n_hosts; i++) {
		const struct host *h = &t->hosts[i];

		for (size_t j = 0; h->spec && j < i; j++) {
			const struct host *f = &t->hosts[j];
			bool same = f->spec && h->local == f->local &&
				    (h->local || (h->address && f->address &&
				     strcasecmp(h->address, f->address) == 0 &&
				     (h->port ? h->port : 22) == (f->port ? f->port : 22) &&
				     strcmp(h->user ? h->user : "",
					    f->user ? f->user : "") == 0));

			if (!same)
				continue;
			diag_at(d, &h->pos,
				"targets.%s.hosts[%zu]: expected each host once in a target, found \"%s\", the same host as hosts[%zu] \"%s\" (line %u); it would run every command twice at once there",
				t->name, i, h->spec, j, f->spec, f->pos.line);
			break;
		}
	}
}

static void load_target(struct diag *d, const struct ynode *k,
			const struct ynode *n, struct target *t)
{
	static const struct spec keys[] = {
		{ "hosts", true }, { "serial", false }, { "pause", false },
		{ "max_fail", false }, { "confirm", false }, { "vars", false },
		{ "identity", false },
	};
	struct buf path = BUF_INIT, sub = BUF_INIT;
	const struct ynode *x;

	buf_addf(&path, "targets.%s", k->text);
	t->name = xstrdup(k->text);
	t->pos = k->pos;
	if (!is_runbook_name(k->text))
		diag_at(d, &k->pos,
			"targets: expected a target name of a-z, 0-9, '.', '_' and '-' (at most 64, starting with a letter or digit), found \"%s\"",
			k->text);
	if (n->type != YN_MAP) {
		ynode_bad(d, n, buf_str(&path), "a mapping with hosts and, if you like, vars, serial, pause, max_fail, confirm and identity");
		goto out;
	}
	check_keys(d, n, buf_str(&path), keys, sizeof(keys) / sizeof(keys[0]));
	if ((x = ynode_get(n, "hosts"))) {
		buf_addf(&sub, "%s.hosts", buf_str(&path));
		if (x->type != YN_SEQ || x->n == 0) {
			ynode_bad(d, x, buf_str(&sub), "a non-empty list of hosts");
		} else {
			t->hosts = xcalloc(x->n, sizeof(*t->hosts));
			t->n_hosts = x->n;
			for (size_t i = 0; i < x->n; i++) {
				buf_reset(&sub);
				buf_addf(&sub, "%s.hosts[%zu]", buf_str(&path), i);
				load_host(d, x->items[i], buf_str(&sub), &t->hosts[i]);
			}
			check_dup_hosts(d, t);
		}
	}
	inventory_target_keys(d, n, buf_str(&path), t);
	if ((x = ynode_get(n, "identity"))) {
		buf_reset(&sub);
		buf_addf(&sub, "%s.identity", buf_str(&path));
		if (is_text(x))
			t->identity.s = xstrndup(x->text, x->len);
		else
			ynode_bad(d, x, buf_str(&sub), "a non-empty string");
		t->identity.pos = x->pos;
	}
out:
	buf_release(&sub);
	buf_release(&path);
}

int inventory_load_mem(const char *path, const char *data, size_t len,
		       struct inventory **out, struct diag *d)
{
	static const struct spec keys[] = {
		{ "version", false }, { "targets", true },
	};
	static const char shape[] = "an inventory (a mapping with targets)";
	struct ynode *root = NULL;
	struct inventory *inv;
	size_t before = diag_count(d);
	const struct ynode *x;
	struct src_pos start = { 1, 1 };

	if (len > YTREE_MAX_FILE) {
		diag_at(d, &start, "expected an inventory of at most 16 MiB, found %zu bytes",
			len);
		return -1;
	}
	if (ytree_parse(data, len, &root, d) < 0)
		return -1;
	if (!root || root->type != YN_MAP) {
		if (root)
			ynode_bad(d, root, "(top level)", shape);
		else
			diag_at(d, &start, "expected %s, found an empty document", shape);
		ytree_free(root);
		return -1;
	}
	inv = xcalloc(1, sizeof(*inv));
	inv->file = xstrdup(path);
	check_keys(d, root, "", keys, 2);
	if ((x = ynode_get(root, "version")) &&
	    !(plain(x) && strcmp(x->text, "1") == 0))
		ynode_bad(d, x, "version", "1 (the only format version)");
	if ((x = ynode_get(root, "targets"))) {
		if (x->type != YN_MAP || x->n == 0) {
			ynode_bad(d, x, "targets", "a mapping of target names to targets");
		} else {
			inv->targets = xcalloc(x->n, sizeof(*inv->targets));
			inv->n_targets = x->n;
			for (size_t i = 0; i < x->n; i++) {
				inv->targets[i].from = xstrdup(path);
				load_target(d, x->keys[i], x->items[i],
					    &inv->targets[i]);
			}
		}
	}
	ytree_free(root);
	*out = inv;
	return diag_count(d) > before ? -1 : 0;
}

static int read_file(const char *path, struct buf *data, struct rb_error *err)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY), ret = -1;

	if (fd < 0) {
		rb_error_set(err, RB_ERR_INVALID,
			     "cannot read inventory '%s': %s; nothing was run, check the path and run again",
			     path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		rb_error_set(err, RB_ERR_INVALID,
			     "cannot read inventory '%s': expected a regular file; nothing was run, check the path and run again",
			     path);
		goto out;
	}
	for (;;) {
		ssize_t r;

		buf_grow(data, 65536);
		r = read(fd, data->data + data->len, 65536);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rb_error_errno(err, RB_ERR_INVALID,
				       "cannot read inventory '%s'; nothing was run", path);
			goto out;
		}
		if (r == 0)
			break;
		data->len += (size_t)r;
		data->data[data->len] = '\0';
		if (data->len > YTREE_MAX_FILE)
			break;
	}
	ret = 0;
out:
	close(fd);
	return ret;
}

int inventory_load(const char *path, struct inventory **out, struct diag *d,
		   struct rb_error *err)
{
	struct buf data = BUF_INIT;
	int ret = -1;

	if (read_file(path, &data, err) == 0)
		ret = inventory_load_mem(path, buf_str(&data), data.len, out, d);
	buf_release(&data);
	return ret;
}

void inventory_free(struct inventory *inv)
{
	struct runbook *rb;

	if (!inv)
		return;
	/* the targets are the model's: runbook_free() knows them */
	rb = xcalloc(1, sizeof(*rb));
	rb->targets = inv->targets;
	rb->n_targets = inv->n_targets;
	runbook_free(rb);
	free(inv->file);
	free(inv);
}

bool inventory_sniff(const char *path)
{
	struct buf data = BUF_INIT;
	struct rb_error err = RB_ERROR_INIT;
	struct ynode *root = NULL;
	struct diag d;
	struct stat st;
	bool yes = false;

	/* an inventory is small: a big file is a runbook, parsed once */
	if (stat(path, &st) < 0 || !S_ISREG(st.st_mode) ||
	    st.st_size > INVENTORY_SNIFF_MAX)
		return false;
	diag_init(&d, path);
	if (read_file(path, &data, &err) == 0 && data.len <= INVENTORY_SNIFF_MAX &&
	    ytree_parse(buf_str(&data), data.len, &root, &d) == 0 && root &&
	    root->type == YN_MAP)
		yes = ynode_get(root, "targets") && !ynode_get(root, "name") &&
		      !ynode_get(root, "steps");
	ytree_free(root);
	diag_release(&d);
	buf_release(&data);
	return yes;
}

int inventory_path(const struct runbook *rb, const char *cli_path,
		   char **out, struct diag *d)
{
	const char *slash = strrchr(rb->file, '/');
	int dirlen = slash ? (int)(slash - rb->file) : 1;
	const char *dir = slash ? rb->file : ".";
	struct buf p = BUF_INIT;
	struct stat st;
	int ret = 0;

	*out = NULL;
	if (cli_path) {
		*out = xstrdup(cli_path);
		return 0;
	}
	if (rb->inventory.s && rb->inventory.s[0] == '/')
		buf_adds(&p, rb->inventory.s);
	else
		buf_addf(&p, "%.*s/%s", dirlen, dir,
			 rb->inventory.s ? rb->inventory.s : "inventory.yml");
	if (stat(buf_str(&p), &st) == 0) {
		*out = buf_detach(&p);
	} else if (rb->inventory.s) {
		diag_at(d, &rb->inventory.pos,
			"inventory: expected an inventory file (relative to the runbook), found nothing at '%s' (%s)",
			buf_str(&p), strerror(errno));
		ret = -1;
	}
	buf_release(&p);
	return ret;
}

/* What moved is the runbook's now; the rest stays inv's. */
static void drop_moved(struct inventory *inv, const struct target *moved,
		       size_t n)
{
	size_t left = 0;

	for (size_t i = 0; i < inv->n_targets; i++) {
		bool gone = false;

		for (size_t j = 0; j < n && !gone; j++)
			gone = moved[j].name == inv->targets[i].name;
		if (!gone)
			inv->targets[left++] = inv->targets[i];
	}
	inv->n_targets = left;
}

void inventory_merge(struct runbook *rb, struct inventory *inv,
		     struct diag *d)
{
	size_t keep = rb->implicit_target ? 0 : rb->n_targets;
	struct target *all = xcalloc(keep + inv->n_targets + 1, sizeof(*all));
	size_t n = 0;

	for (size_t i = 0; i < keep; i++)
		all[n++] = rb->targets[i];
	for (size_t i = 0; i < inv->n_targets; i++) {
		struct target *t = &inv->targets[i];
		struct target *twin = NULL;

		for (size_t j = 0; j < keep && !twin; j++)
			if (strcmp(all[j].name, t->name) == 0)
				twin = &all[j];
		if (!twin) {
			all[n++] = *t;
			continue;
		}
		diag_at(d, &twin->pos,
			"targets.%s: expected each target in one place, found it in the runbook and in the inventory %s:%u:%u; remove one of them (the runbook's `targets` and the inventory share one namespace)",
			t->name, inv->file, t->pos.line, t->pos.col);
		/* not taken: freed with what is left of inv */
	}
	if (rb->implicit_target && n == 0) {
		free(all);
		return;
	}
	if (rb->implicit_target) {
		struct runbook *old = xcalloc(1, sizeof(*old));

		old->targets = rb->targets;
		old->n_targets = rb->n_targets;
		runbook_free(old);
		rb->implicit_target = false;
	} else {
		free(rb->targets);
	}
	rb->targets = all;
	rb->n_targets = n;
	drop_moved(inv, all + keep, n - keep);
}
