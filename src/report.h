/*
 * What people and programs watching a run see: progress lines and a
 * live line on stderr, or one JSON object per event on stdout
 * (docs/apply.md). The report is a deferred listener of the engine's
 * events (event.h): it runs only on the main thread, in event order,
 * and prints nothing the event did not say. Everything it prints goes
 * through the event's redactor.
 */
#ifndef RUNBOOK_REPORT_H
#define RUNBOOK_REPORT_H

#include <stdbool.h>
#include <stddef.h>

#include "event.h"

struct change_rec;
struct runbook;
struct target;

struct report_opts {
	bool json, quiet, verbose, color;
	bool tty;		/* stderr is a terminal: a live line */
	int host_w, name_w;	/* column widths of progress lines */
};

struct report;

struct report *report_new(const struct report_opts *o);
void report_free(struct report *r);
/* The listener to hand the engine; r outlives the run. */
struct listener report_listener(struct report *r);

/* Column widths for a runbook on a target, or for a recorded change. */
void report_fit_runbook(struct report_opts *o, const struct runbook *rb,
			const struct target *t);
void report_fit_change(struct report_opts *o, const struct change_rec *c);

#endif
