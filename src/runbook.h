/*
 * The runbook model: plain data, loaded from one YAML file by load.c and
 * checked by validate.c. Every value keeps the position it came from so
 * later checks can point at it. The model owns all its strings;
 * runbook_free() releases everything.
 *
 * A string field that was absent from the file is NULL; its pos is
 * {0, 0}. Defaults (timeout 10m, retry_delay 1s, exit 0, the implicit
 * `local` target) are filled in by the loader.
 */
#ifndef RUNBOOK_RUNBOOK_H
#define RUNBOOK_RUNBOOK_H

#include <stdbool.h>
#include <stddef.h>

#include "diag.h"

#define RB_DEFAULT_TIMEOUT_MS (10u * 60 * 1000)
#define RB_DEFAULT_RETRY_DELAY_MS 1000u
#define RB_MAX_DURATION_MS (24u * 60 * 60 * 1000)
#define RB_MAX_RETRIES 100u
#define RB_MAX_NAME 64
#define RB_MAX_STEP_NAME 200

struct strval {
	char *s;
	struct src_pos pos;
	unsigned col0;		/* column of s[0] when s maps 1:1 onto the
				   source, else 0 */
	unsigned line0;		/* line of s[0] for a literal block (|),
				   whose lines all start at col0; else 0 */
};

/* Position of byte off of v->s: exact when possible, else v->pos. */
struct src_pos strval_pos_at(const struct strval *v, size_t off);

/* A key and its value, for vars, env and capture maps. */
struct kv {
	char *key;
	struct src_pos key_pos;
	char *val;
	struct src_pos pos;
	unsigned col0, line0;	/* as in struct strval */
};

enum phase { PHASE_PREFLIGHT, PHASE_STEPS, PHASE_VERIFY, PHASE_METRICS,
	     PHASE_WATCH, PHASE_COUNT };

struct expect {
	int *exit_codes;	/* never empty: {0} by default */
	size_t n_exit;
	struct src_pos exit_pos;
	struct strval out, err, not_out, not_err;
};

/* A metric's guards (docs/format.md, "Metric guards"). */
enum guard_kind { GUARD_MAX, GUARD_MIN, GUARD_MAX_INCREASE,
		  GUARD_MAX_DECREASE, GUARD_COUNT };

struct guard {
	bool set;
	bool percent;		/* of the value before the change */
	double value;
	char *text;		/* as written, for messages */
};

struct step {
	enum phase phase;
	size_t index;		/* within its phase */
	char *path;		/* "steps[2]", for messages */
	struct src_pos pos;
	struct strval name, run, rollback, skip_if, dir, pattern;
	bool rollback_none;	/* rollback: none */
	struct expect expect;
	struct kv *capture;
	size_t n_capture;
	struct kv *env;
	size_t n_env;
	unsigned timeout_ms;
	unsigned retries;
	unsigned retry_delay_ms;
	bool local;
	bool no_baseline;	/* preflight `baseline: false`: not compared */
	struct guard guards[GUARD_COUNT];	/* metrics */
	struct strval *backup;	/* steps: paths to back up (docs/backup.md) */
	size_t n_backup;
	bool rollback_restore;	/* rollback: restore (puts the backup back) */
};

struct host {
	char *spec;		/* as written: local, [user@]host[:port] */
	struct src_pos pos;	/* of spec */
	char *identity;		/* NULL: the target's, then defaults */
	bool local;
	char *user;		/* NULL: from ssh config or $USER */
	char *address;
	unsigned port;		/* 0: from ssh config or 22 */
	struct kv *vars;	/* host vars (an inventory's; docs/fleets.md) */
	size_t n_vars;
};

/* One batch size of a serial list: a number of hosts or a percentage. */
struct wave {
	unsigned n;
	bool percent;
};

struct target {
	char *name;
	struct src_pos pos;
	struct host *hosts;
	size_t n_hosts;
	unsigned serial;	/* 0: all hosts in one batch */
	bool serial_percent;	/* serial is a percentage of the hosts */
	struct strval identity;
	/* docs/fleets.md: serial as a list (waves[0] is serial), the pause
	   between batches, the failure budget, confirmation, target vars */
	struct wave *waves;
	size_t n_waves;
	unsigned pause_ms;
	unsigned max_fail;
	bool max_fail_percent;
	bool confirm;
	struct kv *vars;
	size_t n_vars;
	char *from;		/* the inventory that defined it; NULL: the runbook */
};

/* notify: local commands run when the change starts and ends (notify.h) */
struct notify_spec {
	struct strval name;	/* NULL: "notify[N]" */
	struct strval run;	/* not a template: values come in its env */
	unsigned on;		/* `when`: NOTIFY_ON_* bits of notify.h */
	unsigned timeout_ms;
	struct kv *env;		/* "{{ secrets.NAME }}" or literal text */
	size_t n_env;
	struct src_pos pos;
};

enum secret_source { SECRET_ENV, SECRET_FILE };

struct secret {
	char *name;
	struct src_pos pos;
	enum secret_source source;
	char *from;		/* variable name or file path */
};

struct runbook {
	char *file;		/* path as given */
	unsigned version;
	struct strval name, owner, reason, expected;
	struct target *targets;	/* never empty */
	size_t n_targets;
	bool implicit_target;	/* no targets key: the one target `local` */
	struct strval inventory;	/* the `inventory` key, as written */
	struct kv *vars;
	size_t n_vars;
	struct secret *secrets;
	size_t n_secrets;
	struct strval *redact;
	size_t n_redact;
	struct step *phases[PHASE_COUNT];
	size_t n_phase[PHASE_COUNT];
	/* watch: its steps are phases[PHASE_WATCH] (docs/watch.md) */
	unsigned watch_duration_ms, watch_interval_ms;
	struct strval backup_dir;	/* NULL: the default (backup.h) */
	struct notify_spec *notify;
	size_t n_notify;
	/* files spliced in by include: (docs/reuse.md), as opened */
	char **includes;
	size_t n_includes;
};

const char *phase_name(enum phase p);
/* Key of a phase in the file: "preflight", "steps", "verify", "metrics". */
const char *phase_key(enum phase p);

void runbook_free(struct runbook *rb);
const struct target *runbook_target(const struct runbook *rb,
				    const char *name);
const struct secret *runbook_secret(const struct runbook *rb,
				    const char *name);
const struct kv *kv_find(const struct kv *v, size_t n, const char *key);

/* Hosts per batch for t: serial, a percentage of the hosts rounded up, or all. */
size_t target_batch_size(const struct target *t);

/* Parses "30s", "5m", "1h30m", "250ms" or bare seconds. 0 or -1. */
int parse_duration(const char *s, unsigned *out_ms);
/* Formats ms as the shortest duration text ("1m30s", "250ms"). */
void format_duration(unsigned ms, char out[32]);
/* Name forms of docs/format.md. */
bool is_runbook_name(const char *s);
/*
 * Fills h's user, address, port and local from h->spec: `local`,
 * [user@]host[:port] or [user@][v6addr][:port]. False when the spec
 * is none of these (fields may be partly set; runbook_free frees them).
 */
bool host_parse(struct host *h);
bool is_var_name(const char *s);
/*
 * --limit: the hosts of t that limit names, in t's order. limit is a
 * comma-separated list of host specs or globs (fnmatch: `web*`,
 * `db[12]`), each matched against the spec as written and against the
 * host name alone. out is t with fewer hosts; it borrows t's hosts
 * (free only out->hosts). -1 when a pattern matches no host, with
 * what (the pattern) set.
 */
int target_limit(const struct target *t, const char *limit,
		 struct target *out, char **what);

#endif
