/*
 * What the engine reports. (Transitional: the journal hook's event.)
 */
#ifndef RUNBOOK_EVENT_H
#define RUNBOOK_EVENT_H

#include <stdbool.h>
#include <stddef.h>

#include "change.h"

struct rb_error;
struct redactor;

enum jev_type {
	JEV_OPEN, JEV_STEP_BEGIN, JEV_STEP_END, JEV_ROLLBACK_BEGIN,
	JEV_ROLLBACK_END, JEV_CLOSE,
	JEV_PID,		/* the command's process group started */
	JEV_BASELINE,		/* rehearse compared preflight with its baseline */
};

/* One event for the journal hook. Strings are redacted already. */
struct journal_event {
	enum jev_type type;
	const struct redactor *red;	/* the engine's: secrets and patterns */
	const char *change_id;
	const char *host;	/* NULL for OPEN and CLOSE */
	enum phase phase;
	size_t index;
	const char *name;
	const char *command;	/* record form: secrets as {{ secrets.X }} */
	const char *rollback;	/* record form, for STEP_BEGIN; or NULL */
	bool rollback_none;
	bool rollback_masked;	/* a redact pattern changed the record form */
	bool local;		/* runs on this machine (`local: true`) */
	const char *dir;	/* record form, or NULL */
	char *const *env;	/* record forms "NAME=value", or NULL */
	unsigned timeout_ms;
	/* STEP_END */
	char *const *cap_names;
	char *const *cap_values;	/* redacted */
	size_t n_caps;
	const char *metric;	/* a metric's value, redacted */
	bool metric_after;	/* measured after verify */
	const char *output;	/* redacted head and tail of the output */
	/* JEV_PID */
	long pid;
	unsigned long long start_time;
	bool in_rollback;
	enum step_result result;	/* for *_END and CLOSE (status) */
	int exit_code;
	unsigned long long duration_ms;
	enum change_status status;	/* for CLOSE */
	bool by_hand;		/* ROLLBACK_END: the operator undid it by hand */
	/* JEV_BASELINE: came back or not, and the diff (redacted) */
	bool baseline_same;
	const char *diff;
};

struct apply_hooks {
	int (*event)(void *ctx, const struct journal_event *ev,
		     struct rb_error *err);
	void *ctx;
};

#endif
