/*
 * State directories; see statedir.h. Checked with lstat() after the
 * mkdir(), so a link planted before the mkdir is seen, not followed.
 */
#include "statedir.h"

#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"

static const char *user_name(uid_t uid, char buf[64])
{
	struct passwd *pw = getpwuid(uid);

	if (pw)
		snprintf(buf, 64, "%s", pw->pw_name);
	else
		snprintf(buf, 64, "uid %u", (unsigned)uid);
	return buf;
}

int state_dir(const char *path, bool create, struct rb_error *err)
{
	char a[64], b[64];
	struct stat st;

	if (create && mkdir(path, 0700) < 0 && errno != EEXIST) {
		rb_error_errno(err, RB_ERR_USAGE,
			       "cannot create runbook's state directory '%s'",
			       path);
		return -1;
	}
	if (lstat(path, &st) < 0) {
		if (errno == ENOENT && !create)
			return 1;
		rb_error_errno(err, RB_ERR_USAGE,
			       "cannot inspect runbook's state directory '%s'",
			       path);
		return -1;
	}
	if (S_ISLNK(st.st_mode)) {
		rb_error_set(err, RB_ERR_USAGE,
			     "runbook's state directory '%s' is a symbolic link; journals and locks are written only into a real directory, never through a link; nothing was run: remove the link (rm '%s') and run again",
			     path, path);
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		rb_error_set(err, RB_ERR_USAGE,
			     "runbook's state directory '%s' is not a directory; nothing was run: move it away and run again",
			     path);
		return -1;
	}
	if (st.st_uid != geteuid()) {
		rb_error_set(err, RB_ERR_USAGE,
			     "runbook's state directory '%s' belongs to %s, not to you (%s): whoever owns it can rewrite the journals and locks runbook trusts; nothing was run: use a notes repository of your own (--notes PATH), or have %s remove it",
			     path, user_name(st.st_uid, a), user_name(geteuid(), b), a);
		return -1;
	}
	if (st.st_mode & 022) {
		rb_error_set(err, RB_ERR_USAGE,
			     "runbook's state directory '%s' can be written by other users (mode %03o); nothing was run: chmod 700 '%s' and run again",
			     path, (unsigned)(st.st_mode & 0777), path);
		return -1;
	}
	return 0;
}
