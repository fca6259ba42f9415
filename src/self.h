/* self: this process's pid, asked of the kernel once per process instead of once per use. */
#ifndef LLM_SELF_H
#define LLM_SELF_H

#include <sys/types.h>

/* getpid() without its system call (glibc 2.25+ caches nothing): the store's owner checks and the
 * log's prefix ask for it several times a request. Right in a forked child too: a fork handler
 * forgets the parent's. */
pid_t self_pid(void);

#endif
