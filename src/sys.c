/*
 * Clock, UTC time and $HOME paths. Nothing here can fail.
 */
#include "sys.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "buf.h"

unsigned long long sys_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (unsigned long long)ts.tv_sec * 1000 +
	       (unsigned long long)ts.tv_nsec / 1000000;
}

void sys_now_utc(char out[40])
{
	struct timespec ts;
	struct tm tm;
	size_t n;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = strftime(out, 40, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out + n, 40 - n, ".%03dZ", (int)(ts.tv_nsec / 1000000) % 1000);
}

char *sys_home_file(const char *rel)
{
	const char *home = getenv("HOME");
	struct buf b = BUF_INIT;

	buf_addf(&b, "%s/%s", home && *home ? home : "/", rel);
	return buf_detach(&b);
}
