/*
 * Secrets: loading from env or file, the one parser of a source's
 * text form, and wiping. See secrets.h.
 */
#include "secrets.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "redact.h"
#include "vars.h"

#define SECRET_FILE_MAX 65536

static int load_secret_file(const struct secret *s, struct secret_val *v,
			    struct rb_error *err)
{
	struct buf data = BUF_INIT;
	struct stat st;
	int fd = open(s->from, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	int ret = -1;

	if (fd < 0) {
		rb_error_errno(err, RB_ERR_INVALID,
			       "secret %s: expected a readable file '%s'; nothing was run, fix it and run again",
			       s->name, s->from);
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		rb_error_set(err, RB_ERR_INVALID,
			     "secret %s: expected a regular file '%s'; nothing was run",
			     s->name, s->from);
		goto out;
	}
	if (st.st_mode & S_IROTH) {
		rb_error_set(err, RB_ERR_INVALID,
			     "secret %s: expected a file only its owner can read, found '%s' readable by everyone (run chmod o-r on it); nothing was run",
			     s->name, s->from);
		goto out;
	}
	for (;;) {
		ssize_t r;

		buf_grow(&data, 4096);
		r = read(fd, data.data + data.len, 4096);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rb_error_errno(err, RB_ERR_INVALID,
				       "secret %s: cannot read '%s'; nothing was run",
				       s->name, s->from);
			goto out;
		}
		if (r == 0)
			break;
		data.len += (size_t)r;
		data.data[data.len] = '\0';
		if (data.len > SECRET_FILE_MAX) {
			rb_error_set(err, RB_ERR_INVALID,
				     "secret %s: expected at most 64 KiB in '%s'; nothing was run",
				     s->name, s->from);
			goto out;
		}
	}
	/* one trailing newline is the file's, not the secret's */
	if (data.len && data.data[data.len - 1] == '\n')
		data.data[--data.len] = '\0';
	if (data.len && data.data[data.len - 1] == '\r')
		data.data[--data.len] = '\0';
	if (strlen(buf_str(&data)) != data.len) {
		rb_error_set(err, RB_ERR_INVALID,
			     "secret %s: expected text, found a NUL byte in '%s'; nothing was run",
			     s->name, s->from);
		goto out;
	}
	v->len = data.len;
	v->value = buf_detach(&data);
	ret = 0;
out:
	if (data.data)
		explicit_bzero(data.data, data.cap);
	buf_release(&data);
	close(fd);
	return ret;
}

void secret_source_format(const struct secret *s, struct buf *out)
{
	buf_addf(out, "%s:%s", s->source == SECRET_ENV ? "env" : "file",
		 s->from);
}

int secret_source_parse(const char *src, struct secret *s)
{
	if (strncmp(src, "env:", 4) == 0 && src[4]) {
		s->source = SECRET_ENV;
		s->from = (char *)src + 4;
		return 0;
	}
	if (strncmp(src, "file:", 5) == 0 && src[5]) {
		s->source = SECRET_FILE;
		s->from = (char *)src + 5;
		return 0;
	}
	return -1;
}

/*
 * A secret is masked whole, and a secret of several lines line by line
 * too: a command that prints only some of its lines (head), or quotes
 * it line by line in an error message, must not show any of them.
 * Lines shorter than SECRET_MIN_LINE are left: masking every "}" or
 * blank line would mask everything else.
 */
#define SECRET_MIN_LINE 6

static void mask(struct redactor *red, const char *name, const char *value)
{
	const char *p = value;

	redactor_add_secret(red, name, value);
	if (!strchr(value, '\n'))
		return;
	while (*p) {
		size_t n = strcspn(p, "\n");
		size_t k = n;

		while (k && p[k - 1] == '\r')
			k--;
		if (k >= SECRET_MIN_LINE) {
			char *line = xstrndup(p, k);

			redactor_add_secret(red, name, line);
			explicit_bzero(line, k);
			free(line);
		}
		p += n + (p[n] == '\n');
	}
}

static int load_one(struct secrets *S, const struct secret *s,
		    bool for_rollback, struct redactor *red,
		    struct rb_error *err)
{
	struct secret_val *v = &S->v[S->n];

	if (s->source == SECRET_ENV) {
		const char *val = getenv(s->from);

		if (!val) {
			rb_error_set(err, RB_ERR_INVALID,
				     "secret %s: expected environment variable %s to be set%s, found it unset; nothing was run, set it and run again",
				     s->name, s->from,
				     for_rollback ? " (the rollback needs it)" : "");
			return -1;
		}
		v->value = xstrdup(val);
		v->len = strlen(val);
		strvec_push(&S->unset, s->from);
	} else if (load_secret_file(s, v, err) < 0) {
		return -1;
	}
	v->name = xstrdup(s->name);
	S->n++;
	mask(red, s->name, v->value);
	return 0;
}

int secrets_load(struct secrets *S, const struct secret *specs, size_t n,
		 bool for_rollback, struct redactor *red, struct rb_error *err)
{
	S->v = xcalloc(n + 1, sizeof(*S->v));
	for (size_t i = 0; i < n; i++)
		if (load_one(S, &specs[i], for_rollback, red, err) < 0)
			return -1;
	return 0;
}

int secrets_load_recorded(struct secrets *S, const struct varset *recorded,
			  bool placeholders, struct redactor *red,
			  struct rb_error *err)
{
	S->v = xcalloc(recorded->n + 1, sizeof(*S->v));
	for (size_t i = 0; i < recorded->n; i++) {
		struct secret s = { 0 };

		s.name = recorded->names[i];
		if (secret_source_parse(recorded->values[i], &s) < 0) {
			rb_error_set(err, RB_ERR_INVALID,
				     "secret %s: the record names an unknown source \"%s\"; nothing was run",
				     s.name, recorded->values[i]);
			return -1;
		}
		if (placeholders) {
			/* only shown, as [secret:NAME]: no need to read it */
			S->v[S->n].name = xstrdup(s.name);
			S->v[S->n++].value = xstrdup("");
			continue;
		}
		if (load_one(S, &s, true, red, err) < 0)
			return -1;
	}
	return 0;
}

const char *secrets_get(const struct secrets *S, const char *name)
{
	for (size_t i = 0; i < S->n; i++)
		if (strcmp(S->v[i].name, name) == 0)
			return S->v[i].value;
	return NULL;
}

void secrets_release(struct secrets *S)
{
	for (size_t i = 0; i < S->n; i++) {
		if (S->v[i].value) {
			explicit_bzero(S->v[i].value, S->v[i].len);
			free(S->v[i].value);
		}
		free(S->v[i].name);
	}
	free(S->v);
	strvec_release(&S->unset);
	memset(S, 0, sizeof(*S));
}
