#ifndef DMANOEL_RUNTIME_SHIMS_H
#define DMANOEL_RUNTIME_SHIMS_H
/* GNU-only calls (CPU_SET, pthread_setaffinity_np, sched_getcpu) compiled here so that no
   header Swift imports defines _GNU_SOURCE. */
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>

/* Pins the calling thread to one CPU. Returns 0 or an errno value. */
int dmanoel_pin_current_thread(int cpu);
/* The CPU the calling thread runs on now, or -1. */
int dmanoel_current_cpu(void);
/* Writes up to `capacity` CPU numbers of the process affinity mask; returns how many, or -1. */
int dmanoel_affinity_cpus(int32_t *cpus, int capacity);
/* Kernel thread id of the calling thread. */
int dmanoel_gettid(void);
/* Sets the calling thread's name (15 characters at most are kept). */
void dmanoel_set_thread_name(const char *name);
/* accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC): returns the new fd or -errno. */
int dmanoel_accept_nonblocking(int fd);
#endif
