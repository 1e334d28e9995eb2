#ifndef DMANOEL_CURING_SHIM_H
#define DMANOEL_CURING_SHIM_H
/* libc headers first: liburing.h defines _GNU_SOURCE itself, and including these after it
   makes clean builds fail at random with an fd_set conflict between modules. */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/select.h>
#include <sys/eventfd.h>
#include <fcntl.h>
#include <liburing.h>

/* liburing's peek helpers are inline, but cqe iteration is a macro. */
static inline void dmanoel_uring_cq_advance(struct io_uring *ring, unsigned n) { io_uring_cq_advance(ring, n); }
static inline unsigned dmanoel_uring_sq_ready(const struct io_uring *ring) { return io_uring_sq_ready(ring); }
#endif
