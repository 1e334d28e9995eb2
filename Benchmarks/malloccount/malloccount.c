/* Counts heap allocations of a process: LD_PRELOAD it and read dmanoel_malloc_count().
   Used by the benchmarks to report allocations per operation. Wraps glibc's own entry points
   (__libc_malloc and friends) so no dlsym bootstrapping is needed.
   dmanoel_malloc_trace(n) prints the call stack of the next n allocations to stderr, to find
   where an operation allocates. */
#include <stddef.h>
#include <errno.h>
#include <execinfo.h>
#include <unistd.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);

static unsigned long allocations;
static int tracing;
static __thread int inside;

unsigned long dmanoel_malloc_count(void) { return __atomic_load_n(&allocations, __ATOMIC_RELAXED); }
void dmanoel_malloc_trace(int count) { __atomic_store_n(&tracing, count, __ATOMIC_RELAXED); }

static void counted(void) {
    __atomic_add_fetch(&allocations, 1, __ATOMIC_RELAXED);
    if (__atomic_load_n(&tracing, __ATOMIC_RELAXED) > 0 && !inside) {
        inside = 1;
        __atomic_sub_fetch(&tracing, 1, __ATOMIC_RELAXED);
        void *frames[24];
        int n = backtrace(frames, 24);
        backtrace_symbols_fd(frames, n, 2);
        static const char line[] = "----\n";
        (void)!write(2, line, sizeof line - 1);
        inside = 0;
    }
}



void *malloc(size_t n) { counted(); return __libc_malloc(n); }
void *calloc(size_t n, size_t m) { counted(); return __libc_calloc(n, m); }
void *realloc(void *p, size_t n) { counted(); return __libc_realloc(p, n); }
void *memalign(size_t a, size_t n) { counted(); return __libc_memalign(a, n); }
void *aligned_alloc(size_t a, size_t n) { counted(); return __libc_memalign(a, n); }
int posix_memalign(void **out, size_t a, size_t n) {
    counted();
    void *p = __libc_memalign(a, n);
    if (!p) return ENOMEM;
    *out = p;
    return 0;
}
