/*
 * One lock per (notes repository, target): a flock() on
 * <gitdir>/runbook/locks/<target>.lock, taken without waiting. The
 * kernel releases it when the holder dies, however it dies, so a lock
 * can never outlive its process; the holder details written into the
 * file (pid, host, user, change, start) are information only. The fd
 * is O_CLOEXEC, so a daemon started by a step never inherits it.
 */
#ifndef RUNBOOK_LOCK_H
#define RUNBOOK_LOCK_H

#include <stdbool.h>

struct rb_error;
struct lock;

/*
 * Takes the lock of target. Busy: -1 with err (RB_ERR_BUSY) naming the
 * holder. If the holder file names a process on this host that is dead,
 * the lock is taken over and *stale is set (the caller warns).
 */
int lock_take(const char *dir, const char *target, const char *change,
	      struct lock **out, bool *stale, char **stale_info,
	      struct rb_error *err);
void lock_release(struct lock *l);

/* Who holds target's lock now ("pid 123 on host, user ..."), or NULL. */
char *lock_holder(const char *dir, const char *target);

#endif
