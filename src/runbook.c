/* The model's lifetime and small shared parsers. */
#include "runbook.h"

#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"

struct src_pos strval_pos_at(const struct strval *v, size_t off)
{
	struct src_pos p = v->pos;

	if (!v->col0 || !v->s)
		return p;
	if (v->line0)
		p.line = v->line0;
	p.col = v->col0;
	for (size_t i = 0; i < off && v->s[i]; i++) {
		if (v->line0 && v->s[i] == '\n') {
			p.line++;
			p.col = v->col0;
		} else if (((unsigned char)v->s[i] & 0xc0) != 0x80) {
			p.col++;
		}
	}
	return p;
}

const char *phase_name(enum phase p)
{
	static const char *const names[] = { "preflight", "step", "verify",
					     "metric", "watch" };

	return p < PHASE_COUNT ? names[p] : "?";
}

const char *phase_key(enum phase p)
{
	static const char *const keys[] = { "preflight", "steps", "verify",
					    "metrics", "watch.steps" };

	return p < PHASE_COUNT ? keys[p] : "?";
}

static void free_kvs(struct kv *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(v[i].key);
		free(v[i].val);
	}
	free(v);
}

static void free_step(struct step *s)
{
	free(s->path);
	free(s->name.s);
	free(s->run.s);
	free(s->rollback.s);
	free(s->skip_if.s);
	free(s->dir.s);
	free(s->pattern.s);
	free(s->expect.exit_codes);
	free(s->expect.out.s);
	free(s->expect.err.s);
	free(s->expect.not_out.s);
	free(s->expect.not_err.s);
	free_kvs(s->capture, s->n_capture);
	free_kvs(s->env, s->n_env);
	for (int g = 0; g < GUARD_COUNT; g++)
		free(s->guards[g].text);
	for (size_t i = 0; i < s->n_backup; i++)
		free(s->backup[i].s);
	free(s->backup);
}

void runbook_free(struct runbook *rb)
{
	if (!rb)
		return;
	free(rb->file);
	free(rb->name.s);
	free(rb->owner.s);
	free(rb->reason.s);
	free(rb->expected.s);
	free(rb->backup_dir.s);
	for (size_t i = 0; i < rb->n_targets; i++) {
		struct target *t = &rb->targets[i];

		for (size_t j = 0; j < t->n_hosts; j++) {
			free(t->hosts[j].spec);
			free(t->hosts[j].identity);
			free(t->hosts[j].user);
			free(t->hosts[j].address);
			free_kvs(t->hosts[j].vars, t->hosts[j].n_vars);
		}
		free(t->hosts);
		free(t->name);
		free(t->identity.s);
		free(t->waves);
		free_kvs(t->vars, t->n_vars);
		free(t->from);
	}
	free(rb->targets);
	free(rb->inventory.s);
	free_kvs(rb->vars, rb->n_vars);
	for (size_t i = 0; i < rb->n_secrets; i++) {
		free(rb->secrets[i].name);
		free(rb->secrets[i].from);
	}
	free(rb->secrets);
	for (size_t i = 0; i < rb->n_redact; i++)
		free(rb->redact[i].s);
	free(rb->redact);
	for (int p = 0; p < PHASE_COUNT; p++) {
		for (size_t i = 0; i < rb->n_phase[p]; i++)
			free_step(&rb->phases[p][i]);
		free(rb->phases[p]);
	}
	for (size_t i = 0; i < rb->n_notify; i++) {
		free(rb->notify[i].name.s);
		free(rb->notify[i].run.s);
		free_kvs(rb->notify[i].env, rb->notify[i].n_env);
	}
	free(rb->notify);
	for (size_t i = 0; i < rb->n_includes; i++)
		free(rb->includes[i]);
	free(rb->includes);
	free(rb);
}

const struct target *runbook_target(const struct runbook *rb,
				    const char *name)
{
	for (size_t i = 0; i < rb->n_targets; i++)
		if (strcmp(rb->targets[i].name, name) == 0)
			return &rb->targets[i];
	return NULL;
}

const struct secret *runbook_secret(const struct runbook *rb,
				    const char *name)
{
	for (size_t i = 0; i < rb->n_secrets; i++)
		if (strcmp(rb->secrets[i].name, name) == 0)
			return &rb->secrets[i];
	return NULL;
}

const struct kv *kv_find(const struct kv *v, size_t n, const char *key)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(v[i].key, key) == 0)
			return &v[i];
	return NULL;
}

int parse_duration(const char *s, unsigned *out_ms)
{
	unsigned long long total = 0;
	const char *p = s;
	bool any = false;

	if (!*s)
		return -1;
	if (strspn(s, "0123456789") == strlen(s)) {
		if (strlen(s) > 6)
			return -1;
		total = strtoull(s, NULL, 10) * 1000;
		goto done;
	}
	while (*p) {
		unsigned long long v = 0, mult;
		size_t digits = 0;

		while (*p >= '0' && *p <= '9') {
			v = v * 10 + (unsigned)(*p++ - '0');
			if (++digits > 9)
				return -1;
		}
		if (!digits)
			return -1;
		if (p[0] == 'm' && p[1] == 's') {
			mult = 1;
			p += 2;
		} else if (*p == 's') {
			mult = 1000;
			p++;
		} else if (*p == 'm') {
			mult = 60000;
			p++;
		} else if (*p == 'h') {
			mult = 3600000;
			p++;
		} else {
			return -1;
		}
		total += v * mult;
		if (total > RB_MAX_DURATION_MS)
			return -1;
		any = true;
	}
	if (!any)
		return -1;
done:
	if (total > RB_MAX_DURATION_MS)
		return -1;
	*out_ms = (unsigned)total;
	return 0;
}

void format_duration(unsigned ms, char out[32])
{
	unsigned h = ms / 3600000, m = ms / 60000 % 60, s = ms / 1000 % 60;
	unsigned rest = ms % 1000;
	size_t n = 0;

	/* the form parse_duration() reads back: 1h30m, 1s500ms, 0ms */
	out[0] = '\0';
	if (h)
		n += (size_t)snprintf(out + n, 32 - n, "%uh", h);
	if (m)
		n += (size_t)snprintf(out + n, 32 - n, "%um", m);
	if (s)
		n += (size_t)snprintf(out + n, 32 - n, "%us", s);
	if (rest || ms == 0)
		snprintf(out + n, 32 - n, "%ums", rest);
}

bool is_runbook_name(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > RB_MAX_NAME || strstr(s, ".."))
		return false;
	if (!((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= '0' && s[0] <= '9')))
		return false;
	for (size_t i = 1; i < n; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return false;
	}
	return true;
}

bool is_var_name(const char *s)
{
	if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
	      *s == '_'))
		return false;
	for (s++; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '_'))
			return false;
	return true;
}

size_t target_batch_size(const struct target *t)
{
	size_t n = t->n_hosts;

	if (t->serial == 0 || n == 0)
		return n ? n : 1;
	if (t->serial_percent) {
		size_t k = (n * t->serial + 99) / 100;

		return k ? k : 1;
	}
	return t->serial < n ? t->serial : n;
}

bool host_parse(struct host *h)
{
	const char *s = h->spec, *at = strrchr(s, '@'), *hp, *colon;
	size_t hl;

	if (strcmp(s, "local") == 0) {
		h->local = true;
		return true;
	}
	if (strpbrk(s, " \t\r\n/\\'\"`$;&|<>(){}*?!"))
		return false;
	if (at) {
		if (at == s)
			return false;
		h->user = xstrndup(s, (size_t)(at - s));
		if (strchr(h->user, '@') || strchr(h->user, ':'))
			return false;
		hp = at + 1;
	} else {
		hp = s;
	}
	if (*hp == '[') {
		const char *end = strchr(hp, ']');

		if (!end || end == hp + 1)
			return false;
		h->address = xstrndup(hp + 1, (size_t)(end - hp - 1));
		colon = end[1] == ':' ? end + 1 : NULL;
		if (end[1] && !colon)
			return false;
	} else {
		colon = strchr(hp, ':');
		hl = colon ? (size_t)(colon - hp) : strlen(hp);
		if (hl == 0 || hp[0] == '-')
			return false;
		h->address = xstrndup(hp, hl);
	}
	if (colon) {
		const char *port = colon + 1;
		unsigned long v;

		if (!*port || strlen(port) > 5 ||
		    strspn(port, "0123456789") != strlen(port))
			return false;
		v = strtoul(port, NULL, 10);
		if (v == 0 || v > 65535)
			return false;
		h->port = (unsigned)v;
	}
	return true;
}

/* Whether pattern names h: its spec as written, or its host name. */
static bool limit_names(const char *pattern, const struct host *h)
{
	struct host p = { 0 };
	bool hit = fnmatch(pattern, h->spec, 0) == 0;

	if (!hit) {
		p.spec = h->spec;
		if (host_parse(&p) && p.address)
			hit = fnmatch(pattern, p.address, 0) == 0;
		free(p.user);
		free(p.address);
	}
	return hit;
}

int target_limit(const struct target *t, const char *limit,
		 struct target *out, char **what)
{
	char *list = xstrdup(limit), *save = NULL, *pat;
	bool *keep = xcalloc(t->n_hosts + 1, sizeof(*keep));
	int ret = 0;

	*out = *t;
	for (pat = strtok_r(list, ",", &save); pat && !ret;
	     pat = strtok_r(NULL, ",", &save)) {
		bool any = false;

		for (size_t h = 0; h < t->n_hosts; h++)
			if (limit_names(pat, &t->hosts[h]))
				any = keep[h] = true;
		if (!any) {
			*what = xstrdup(pat);
			ret = -1;
		}
	}
	out->hosts = xcalloc(t->n_hosts + 1, sizeof(*out->hosts));
	out->n_hosts = 0;
	for (size_t h = 0; h < t->n_hosts; h++)
		if (keep[h])
			out->hosts[out->n_hosts++] = t->hosts[h];
	if (!ret && !out->n_hosts) {
		*what = xstrdup(limit);
		ret = -1;
	}
	free(keep);
	free(list);
	return ret;
}
