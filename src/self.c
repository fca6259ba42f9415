#include "self.h"

#include <pthread.h>
#include <unistd.h>

static pid_t pid; /* 0: not asked yet in this process */

static void forget(void)
{
	pid = 0;
}

pid_t self_pid(void)
{
	if (!pid) {
		static int registered;
		/* Registered once: pthread_atfork handlers are inherited by forked children. */
		if (!registered && pthread_atfork(NULL, NULL, forget) == 0)
			registered = 1;
		if (!registered)
			return getpid(); /* no handler, no cache: always right */
		pid = getpid();
	}
	return pid;
}
