/*
 * The few facts of the machine every module asks for: a monotonic
 * clock for deadlines and durations, the UTC wall time for records, and
 * paths under $HOME. One definition each.
 */
#ifndef RUNBOOK_SYS_H
#define RUNBOOK_SYS_H

/* Milliseconds of CLOCK_MONOTONIC: for deadlines and durations. */
unsigned long long sys_now_ms(void);
/* The time now as "YYYY-MM-DDTHH:MM:SS.mmmZ" (UTC). */
void sys_now_utc(char out[40]);
/* $HOME/rel (rel such as ".ssh/id_ed25519"), "/" when HOME is unset; the caller frees it. */
char *sys_home_file(const char *rel);
/*
 * Makes room for need open files: raises the soft RLIMIT_NOFILE to
 * need if it is lower (never past the hard limit). Returns the soft
 * limit now in force (commands started afterwards inherit it).
 */
unsigned long sys_fd_room(unsigned long need);

#endif
