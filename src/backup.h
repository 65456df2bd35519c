/*
 * Backups that `rollback: restore` puts back (docs/backup.md).
 *
 * A step's `backup: [PATH...]` is copied on the step's host, through
 * its executor, before the step runs: one tar archive per path under
 * <backup_dir>/<change-id>/<NN-step>/, a manifest naming each path,
 * its kind (file, dir, link, other, or missing: it did not exist),
 * its size and the SHA-256 of its archive. Nothing of the content
 * leaves the host: runbook gets the manifest back, records it in the
 * journal and the note, and builds the restore command, which carries
 * the manifest's own SHA-256. That command is the step's recorded
 * rollback, so a replayed `runbook rollback` restores from the same
 * backup without the runbook file, and refuses (exit 3 of the
 * command, nothing touched) when the backup is gone or differs from
 * what was recorded.
 *
 * Every value put into these shell texts is quoted here.
 */
#ifndef RUNBOOK_BACKUP_H
#define RUNBOOK_BACKUP_H

#include <stdbool.h>
#include <stddef.h>

#include "runbook.h"
#include "template.h"

struct buf;
struct diag;
struct exec;
struct ynode;

/* The default backup_dir, and where to go when it cannot be written. */
#define BACKUP_DIR_DEFAULT "/var/backups/runbook"
#define BACKUP_DIR_FALLBACK "~/.runbook/backups"
/* At most this many paths in one step's backup. */
#define BACKUP_MAX_PATHS 64
/* The exit code of the restore command when it refuses to restore. */
#define BACKUP_REFUSED 3

/*
 * Loader side: the step's `backup` list (into s->backup) and whether
 * its rollback is the word restore (s->rollback_restore); reports a
 * list that is not one, empty or relative paths, and restore without
 * a backup. n is the step's mapping.
 */
void backup_load_step(struct diag *d, const struct ynode *n, struct step *s);
/* The top-level `backup_dir`: an absolute path or one under ~/. */
void backup_load_dir(struct diag *d, const struct ynode *root,
		     struct runbook *rb);

/*
 * Whether a rendered path can be backed up: absolute, no . or ..
 * component, not /, no line break, no blank at its end. On false,
 * *why says what is wrong.
 */
bool backup_path_ok(const char *p, const char **why);

/* The directory of step s's backup under <backup_dir>/<change-id>/. */
void backup_step_dir(const struct step *s, struct buf *out);

/*
 * The shell text that takes the backup of paths (rendered, checked
 * with backup_path_ok) on a host: prints "dir D", "sum SHA256" and the
 * manifest lines "N KIND SIZE SHA256 PATH". root NULL: the default.
 */
void backup_script(struct buf *out, const char *root, const char *change_id,
		   const struct step *s, char *const *paths, size_t n);

/*
 * The restore command for the backup in dir whose manifest has
 * SHA-256 sum: checks everything first, then puts each path back
 * (removing those that were missing). No {{ in it: it is a template
 * that renders to itself.
 */
void backup_restore_script(struct buf *out, const char *dir, const char *sum);

/* A backup's manifest as the backup script printed it. */
struct backup_manifest {
	char *dir;		/* where it is on the host */
	char sum[65];		/* SHA-256 of the manifest file */
	size_t n_paths;
	size_t n_missing;
	unsigned long long bytes;	/* of the paths that existed */
};

/*
 * Reads the backup script's output (or the recorded one). -1 with
 * *why when it is not one.
 */
int backup_parse(const char *text, struct backup_manifest *out,
		 const char **why);
void backup_manifest_release(struct backup_manifest *m);

/* What one step's backup needs to run. */
struct backup_req {
	struct exec *ex;	/* where the step runs */
	const struct step *s;
	const char *root;	/* backup_dir, or NULL: the default */
	const char *change_id;
	tpl_lookup_fn lookup;	/* renders templated paths (TPL_RAW) */
	void *ctx;
	char *const *unset;	/* names removed from the command's env */
	int cancel_fd;
};

/* A backup taken: both strings are the caller's to free. */
struct backup_taken {
	char *restore;		/* the step's rollback command */
	char *record;		/* the manifest, for the journal and note */
};

/*
 * Takes step s's backup on its host. Returns 0 with out filled, or -1
 * with why saying what failed and that the step did not run (not
 * redacted: the caller redacts).
 */
int backup_take(const struct backup_req *rq, struct backup_taken *out,
		struct buf *why);

#endif
