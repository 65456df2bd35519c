/*
 * The event bus. Immediate listeners run under the bus lock on the
 * emitting thread; deferred ones get a deep copy, queued under the same
 * lock, so both kinds see one order. Only the owner thread delivers
 * the queue.
 */
#include "event.h"

#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "error.h"

struct queued {
	struct queued *next;
	struct event ev;
	struct strvec strings;	/* what ev's pointers point into */
	char **caps[2];
};

static const char *keep(struct strvec *sv, const char *s)
{
	if (!s)
		return NULL;
	strvec_push(sv, s);
	return sv->v[sv->n - 1];
}

static char **keep_vec(char *const *v, size_t n)
{
	char **out;

	if (!v)
		return NULL;
	if (n == (size_t)-1)
		for (n = 0; v[n]; n++)
			;
	out = xcalloc(n + 1, sizeof(*out));
	for (size_t i = 0; i < n; i++)
		out[i] = xstrdup(v[i]);
	return out;
}

static void free_vec(char **v)
{
	for (size_t i = 0; v && v[i]; i++)
		free(v[i]);
	free(v);
}

static struct queued *copy(const struct event *ev)
{
	struct queued *q = xcalloc(1, sizeof(*q));
	struct event *e = &q->ev;
	struct strvec *sv = &q->strings;

	*e = *ev;
	e->change_id = keep(sv, ev->change_id);
	e->host = keep(sv, ev->host);
	e->name = keep(sv, ev->name);
	e->command = keep(sv, ev->command);
	e->display = keep(sv, ev->display);
	e->rollback = keep(sv, ev->rollback);
	e->dir = keep(sv, ev->dir);
	e->metric = keep(sv, ev->metric);
	e->output = keep(sv, ev->output);
	e->why = keep(sv, ev->why);
	e->note = keep(sv, ev->note);
	e->runbook = keep(sv, ev->runbook);
	e->target = keep(sv, ev->target);
	e->diff = keep(sv, ev->diff);
	e->message = keep(sv, ev->message);
	e->env = NULL;	/* record-only fields stay with the recorder */
	e->backup = NULL;
	e->snap_out = NULL;
	e->snap_len = 0;
	q->caps[0] = keep_vec(ev->cap_names, ev->n_caps);
	q->caps[1] = keep_vec(ev->cap_values, ev->n_caps);
	e->cap_names = q->caps[0];
	e->cap_values = q->caps[1];
	if (ev->data) {
		char *d = xmalloc(ev->len + 1);

		memcpy(d, ev->data, ev->len);
		d[ev->len] = '\0';
		strvec_push_owned(sv, d);
		e->data = d;
	}
	return q;
}

static void free_queued(struct queued *q)
{
	strvec_release(&q->strings);
	free_vec(q->caps[0]);
	free_vec(q->caps[1]);
	free(q);
}

static bool wants(const struct listener *l, enum event_type t)
{
	return l->mask ? (l->mask & EV_BIT(t)) != 0 :
			 (EV_LIVE & EV_BIT(t)) == 0;
}

void bus_init(struct bus *b, const struct listener *v, size_t n)
{
	memset(b, 0, sizeof(*b));
	b->v = v;
	b->n = n;
	b->owner = pthread_self();
	pthread_mutex_init(&b->mu, NULL);
	pthread_cond_init(&b->cv, NULL);
}

/* Delivers what is queued; owner thread only, bus lock not held. */
static void drain(struct bus *b)
{
	for (;;) {
		struct queued *q;

		pthread_mutex_lock(&b->mu);
		q = b->head;
		if (q) {
			b->head = q->next;
			if (!b->head)
				b->tail = NULL;
		}
		pthread_mutex_unlock(&b->mu);
		if (!q)
			return;
		for (size_t i = 0; i < b->n; i++) {
			struct rb_error err = RB_ERROR_INIT;

			if (b->v[i].deferred && wants(&b->v[i], q->ev.type))
				(void)b->v[i].on_event(b->v[i].ctx, &q->ev, &err);
		}
		free_queued(q);
	}
}

void bus_release(struct bus *b)
{
	drain(b);
	pthread_mutex_destroy(&b->mu);
	pthread_cond_destroy(&b->cv);
}

bool bus_wants(const struct bus *b, enum event_type t)
{
	for (size_t i = 0; i < b->n; i++)
		if (wants(&b->v[i], t))
			return true;
	return false;
}

int bus_emit(struct bus *b, const struct event *ev, struct rb_error *err)
{
	bool deferred = false;
	int ret = 0;

	pthread_mutex_lock(&b->mu);
	for (size_t i = 0; i < b->n; i++) {
		if (!wants(&b->v[i], ev->type))
			continue;
		if (b->v[i].deferred)
			deferred = true;
		else if (b->v[i].on_event(b->v[i].ctx, ev, err) < 0)
			ret = -1;
	}
	if (deferred) {
		struct queued *q = copy(ev);

		if (b->tail)
			b->tail->next = q;
		else
			b->head = q;
		b->tail = q;
		pthread_cond_signal(&b->cv);
	}
	pthread_mutex_unlock(&b->mu);
	if (deferred && pthread_equal(pthread_self(), b->owner))
		drain(b);
	return ret;
}

void bus_workers(struct bus *b, size_t n)
{
	pthread_mutex_lock(&b->mu);
	b->busy += n;
	pthread_mutex_unlock(&b->mu);
}

void bus_worker_done(struct bus *b)
{
	pthread_mutex_lock(&b->mu);
	b->busy--;
	pthread_cond_signal(&b->cv);
	pthread_mutex_unlock(&b->mu);
}

void bus_run(struct bus *b)
{
	for (;;) {
		bool done;

		pthread_mutex_lock(&b->mu);
		while (!b->head && b->busy)
			pthread_cond_wait(&b->cv, &b->mu);
		done = !b->head && !b->busy;
		pthread_mutex_unlock(&b->mu);
		if (done)
			return;
		drain(b);
	}
}
