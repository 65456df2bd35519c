/*
 * Target locks. The truth is the flock; the text in the file says who
 * took it. Holder text is written after the lock is held, so a reader
 * that finds the lock busy reads the current holder's details.
 */
#include "lock.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "error.h"
#include "statedir.h"

struct lock {
	int fd;
};

/* dir/locks/target.lock; NULL with err when locks/ fails its checks. */
static char *lock_path(const char *dir, const char *target, bool create,
		       struct rb_error *err)
{
	struct buf b = BUF_INIT;

	buf_addf(&b, "%s/locks", dir);
	if (state_dir(buf_str(&b), create, err) != 0) {
		buf_release(&b);
		return NULL;
	}
	buf_addf(&b, "/%s.lock", target);
	return buf_detach(&b);
}

static char *read_info(int fd)
{
	char text[512];
	ssize_t n = pread(fd, text, sizeof(text) - 1, 0);

	if (n <= 0)
		return NULL;
	text[n] = '\0';
	text[strcspn(text, "\n")] = '\0';
	return xstrdup(text);
}

/* The name of this host as the holder text gives it. */
static void this_host(char *out, size_t len)
{
	out[0] = '\0';
	if (gethostname(out, len - 1) < 0 || out[0] == '\0')
		snprintf(out, len, "localhost");
	out[len - 1] = '\0';
}

/*
 * Whether the holder text names a dead process on this host. The text
 * is "pid <pid> on <host>, user <user>, ..." as lock_take() writes it;
 * anything else names no process this can judge.
 */
static bool holder_dead(const char *info)
{
	char me[256] = "";
	const char *host, *end;
	char *num_end;
	long pid;

	if (!info || strncmp(info, "pid ", 4) != 0 ||
	    info[4] < '0' || info[4] > '9')
		return false;
	errno = 0;
	pid = strtol(info + 4, &num_end, 10);
	if (errno || pid <= 0 || pid > INT_MAX ||
	    strncmp(num_end, " on ", 4) != 0)
		return false;
	host = num_end + 4;
	end = strstr(host, ", user ");
	if (!end)
		return false;
	this_host(me, sizeof(me));
	if ((size_t)(end - host) != strlen(me) ||
	    memcmp(host, me, (size_t)(end - host)) != 0)
		return false;
	return kill((pid_t)pid, 0) < 0 && errno == ESRCH;
}

int lock_take(const char *dir, const char *target, const char *change,
	      struct lock **out, bool *stale, char **stale_info,
	      struct rb_error *err)
{
	char *path = lock_path(dir, target, true, err);
	int fd = path ? open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW,
			     0600) : -1;
	char host[256], when[32];
	const char *user = getenv("USER");
	struct buf info = BUF_INIT;
	time_t now = time(NULL);
	struct tm tm;
	char *prev;

	*stale = false;
	*stale_info = NULL;
	if (!path)
		return -1;
	if (fd < 0) {
		rb_error_errno(err, RB_ERR_BUSY, "cannot open lock '%s'", path);
		free(path);
		return -1;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		char *who = read_info(fd);

		rb_error_set(err, RB_ERR_BUSY,
			     "target %s is locked by another runbook (%s); nothing was run, try again when it has finished",
			     target, who ? who : "holder unknown");
		free(who);
		close(fd);
		free(path);
		return -1;
	}
	prev = read_info(fd);
	if (prev && holder_dead(prev)) {
		*stale = true;
		*stale_info = prev;
		prev = NULL;
	}
	free(prev);
	this_host(host, sizeof(host));
	if (!user) {
		struct passwd *pw = getpwuid(getuid());

		user = pw ? pw->pw_name : "unknown";
	}
	gmtime_r(&now, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	buf_addf(&info, "pid %ld on %s, user %s, change %s, since %s\n",
		 (long)getpid(), host, user, change, when);
	if (ftruncate(fd, 0) < 0 ||
	    pwrite(fd, info.data, info.len, 0) != (ssize_t)info.len) {
		/* the details are information only: the flock is held */
	}
	buf_release(&info);
	free(path);
	*out = xcalloc(1, sizeof(**out));
	(*out)->fd = fd;
	return 0;
}

void lock_release(struct lock *l)
{
	if (!l)
		return;
	/* details left behind mean the holder died holding the lock */
	if (ftruncate(l->fd, 0) < 0) {
		/* information only */
	}
	flock(l->fd, LOCK_UN);
	close(l->fd);
	free(l);
}

char *lock_holder(const char *dir, const char *target)
{
	struct rb_error err = RB_ERROR_INIT;
	char *path = lock_path(dir, target, false, &err), *who = NULL;
	int fd = path ? open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW) : -1;

	free(path);
	if (fd < 0)
		return NULL;
	if (flock(fd, LOCK_SH | LOCK_NB) < 0 && errno == EWOULDBLOCK)
		who = read_info(fd);
	else
		flock(fd, LOCK_UN);
	close(fd);
	return who;
}
