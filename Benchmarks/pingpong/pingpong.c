// pingpong: a request/response load client over TCP for echo servers.
//
//   gcc -O2 -pthread -o pingpong pingpong.c
//   pingpong --host 127.0.0.1 --port N [--connections C] [--depth D] [--size S]
//            [--warmup SEC] [--duration SEC] [--cpu K[,K2...]] [--threads T]
//            [--busy-poll] [--stall-timeout SEC]
//
// Each connection keeps D messages of S bytes in flight (pipelined). When the whole
// S-byte echo of the oldest message has come back, that message's latency (monotonic
// clock, from when it was queued for sending to when its last byte was read) is recorded
// and the next message is sent. Echoed bytes are checked against what was sent.
// Latencies completed inside the measurement window [warmup, warmup+duration) go into a
// log-linear histogram (128 linear sub-buckets per power of two: under 0.4% error).
//
// Prints one JSON line:
//   {"connections":C,"depth":D,"size":S,"messages":N,"seconds":T,"msgs_per_s":X,
//    "p50_us":..,"p90_us":..,"p99_us":..,"p999_us":..,"max_us":..,"mean_us":..,"threads":T,
//    "client_cpu_pct":..}
// client_cpu_pct is the client's own CPU time (user + system, all threads) over the
// warmup and measurement, as a percentage of one CPU: near 100 means the client is the
// bottleneck.
// Exits 1 with a message on stderr if it cannot connect, the server closes a connection,
// the echo differs from what was sent, or no echo arrives for --stall-timeout seconds.
#define _GNU_SOURCE
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <fcntl.h>

// ---------------------------------------------------------------- histogram

#define SUB_BITS 7                      // 128 sub-buckets per power of two
#define SUB_COUNT (1u << SUB_BITS)
#define LINEAR_LIMIT (2u * SUB_COUNT)   // values below 256 ns are exact
#define HIST_SIZE (LINEAR_LIMIT + (64 - SUB_BITS - 1) * SUB_COUNT)

typedef struct {
    uint64_t counts[HIST_SIZE];
    uint64_t total;
    uint64_t max;
    uint64_t min;
    double sum;
} histogram;

static void hist_reset(histogram *h) {
    memset(h, 0, sizeof *h);
    h->min = UINT64_MAX;
}

static inline unsigned hist_index(uint64_t v) {
    if (v < LINEAR_LIMIT) return (unsigned)v;
    unsigned msb = 63u - (unsigned)__builtin_clzll(v);   // >= SUB_BITS + 1
    unsigned shift = msb - SUB_BITS;                     // >= 1
    unsigned top = (unsigned)(v >> shift);               // in [128, 255]
    return LINEAR_LIMIT + (shift - 1) * SUB_COUNT + (top - SUB_COUNT);
}

// Midpoint of the bucket: the value reported for anything that fell into it.
static uint64_t hist_value(unsigned idx) {
    if (idx < LINEAR_LIMIT) return idx;
    unsigned rel = idx - LINEAR_LIMIT;
    unsigned shift = rel / SUB_COUNT + 1;
    uint64_t top = SUB_COUNT + rel % SUB_COUNT;
    uint64_t lower = top << shift;
    return lower + ((1ull << shift) >> 1);
}

static inline void hist_record(histogram *h, uint64_t v) {
    h->counts[hist_index(v)]++;
    h->total++;
    h->sum += (double)v;
    if (v > h->max) h->max = v;
    if (v < h->min) h->min = v;
}

static void hist_merge(histogram *into, const histogram *from) {
    for (unsigned i = 0; i < HIST_SIZE; i++) into->counts[i] += from->counts[i];
    into->total += from->total;
    into->sum += from->sum;
    if (from->max > into->max) into->max = from->max;
    if (from->min < into->min) into->min = from->min;
}

static uint64_t hist_percentile(const histogram *h, double p) {
    if (h->total == 0) return 0;
    uint64_t rank = (uint64_t)(p / 100.0 * (double)h->total + 0.5);
    if (rank < 1) rank = 1;
    if (rank > h->total) rank = h->total;
    uint64_t seen = 0;
    for (unsigned i = 0; i < HIST_SIZE; i++) {
        seen += h->counts[i];
        if (seen >= rank) {
            uint64_t v = hist_value(i);
            if (v > h->max) v = h->max;   // never report past the true extremes
            if (v < h->min) v = h->min;
            return v;
        }
    }
    return h->max;
}

// ---------------------------------------------------------------- options

static const char *opt_host = "127.0.0.1";
static int opt_port = -1;
static int opt_connections = 1;
static int opt_depth = 1;
static int opt_size = 64;
static double opt_warmup = 1.0;
static double opt_duration = 5.0;
static int opt_threads = 1;
static int opt_busy_poll = 0;
static double opt_stall = 5.0;
static int opt_cpus[256];
static int opt_ncpus = 0;

static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("pingpong: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static void usage(FILE *to) {
    fputs("usage: pingpong --port N [--host 127.0.0.1] [--connections 1] [--depth 1]\n"
          "                [--size 64] [--warmup 1] [--duration 5] [--cpu K[,K...]]\n"
          "                [--threads 1] [--busy-poll] [--stall-timeout 5]\n", to);
}

static long parse_long(const char *name, const char *s, long lo, long hi) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || end == s || v < lo || v > hi) {
        usage(stderr);
        die("%s needs an integer in [%ld, %ld], got '%s'", name, lo, hi, s);
    }
    return v;
}

static double parse_double(const char *name, const char *s, double lo) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || end == s || !(v >= lo)) {
        usage(stderr);
        die("%s needs a number >= %g, got '%s'", name, lo, s);
    }
    return v;
}

static void parse_args(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); exit(0); }
        if (!strcmp(a, "--busy-poll")) { opt_busy_poll = 1; continue; }
        if (i + 1 >= argc) { usage(stderr); die("unknown or incomplete option '%s'", a); }
        const char *v = argv[++i];
        if (!strcmp(a, "--host")) opt_host = v;
        else if (!strcmp(a, "--port")) opt_port = (int)parse_long(a, v, 1, 65535);
        else if (!strcmp(a, "--connections")) opt_connections = (int)parse_long(a, v, 1, 100000);
        else if (!strcmp(a, "--depth")) opt_depth = (int)parse_long(a, v, 1, 1 << 20);
        else if (!strcmp(a, "--size")) opt_size = (int)parse_long(a, v, 1, 64 << 20);
        else if (!strcmp(a, "--warmup")) opt_warmup = parse_double(a, v, 0);
        else if (!strcmp(a, "--duration")) opt_duration = parse_double(a, v, 0.001);
        else if (!strcmp(a, "--threads")) opt_threads = (int)parse_long(a, v, 1, 1024);
        else if (!strcmp(a, "--stall-timeout")) opt_stall = parse_double(a, v, 0.001);
        else if (!strcmp(a, "--cpu")) {
            char *copy = strdup(v), *save = NULL;
            for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
                if (opt_ncpus == (int)(sizeof opt_cpus / sizeof opt_cpus[0])) die("too many CPUs in --cpu");
                opt_cpus[opt_ncpus++] = (int)parse_long("--cpu", tok, 0, 4095);
            }
            free(copy);
        } else { usage(stderr); die("unknown option '%s'", a); }
    }
    if (opt_port < 0) { usage(stderr); die("--port is required"); }
    if (opt_threads > opt_connections) opt_threads = opt_connections;
}

// ---------------------------------------------------------------- connections

static inline uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

// Every byte of message k on a connection is pattern(k): a misordered, lost or
// duplicated byte shows up as a mismatch.
static inline uint8_t pattern(uint64_t k) { return (uint8_t)(k * 151u + 7u); }

typedef struct {
    int fd;
    int index;
    int want_out;          // EPOLLOUT registered
    uint64_t *sent_at;     // ring of depth send times, oldest at head
    unsigned head, inflight;
    uint64_t tx_queued;    // messages queued for sending, ever
    uint64_t tx_bytes;     // bytes written, ever
    uint64_t rx_msgs;      // messages fully echoed, ever
    uint64_t rx_off;       // bytes of message rx_msgs received so far
} conn;

typedef struct {
    int id;
    int cpu;               // -1: not pinned
    conn *conns;
    int nconns;
    int ep;
    uint8_t *rbuf, *wbuf;
    size_t rbuf_size, wbuf_size;
    uint64_t warm_end, t_end;
    histogram hist;
    uint64_t measured;     // messages completed inside the window
} worker;

static void pin_to(int cpu) {
    if (cpu < 0) return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (sched_setaffinity(0, sizeof set, &set) != 0)
        die("cannot pin to CPU %d: %s", cpu, strerror(errno));
}

static int connect_one(const struct addrinfo *ai_list, int index) {
    int last_err = 0;
    for (const struct addrinfo *ai = ai_list; ai; ai = ai->ai_next) {
        int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) { last_err = errno; continue; }
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            int fl = fcntl(fd, F_GETFL);
            fcntl(fd, F_SETFL, fl | O_NONBLOCK);
            return fd;
        }
        last_err = errno;
        close(fd);
    }
    die("cannot connect to %s:%d (connection %d): %s", opt_host, opt_port, index,
        strerror(last_err ? last_err : EHOSTUNREACH));
    return -1;
}

static void set_out_interest(worker *w, conn *c, int want) {
    if (c->want_out == want) return;
    struct epoll_event ev = { .events = EPOLLIN | (want ? EPOLLOUT : 0), .data.ptr = c };
    if (epoll_ctl(w->ep, EPOLL_CTL_MOD, c->fd, &ev) != 0) die("epoll_ctl: %s", strerror(errno));
    c->want_out = want;
}

// Writes as much of the queued stream as the socket takes.
static void flush_conn(worker *w, conn *c) {
    const uint64_t size = (uint64_t)opt_size;
    for (;;) {
        uint64_t end = c->tx_queued * size;
        if (c->tx_bytes >= end) { set_out_interest(w, c, 0); return; }
        uint64_t n = end - c->tx_bytes;
        if (n > w->wbuf_size) n = w->wbuf_size;
        // Lay out the pattern for stream offsets [tx_bytes, tx_bytes + n).
        uint64_t off = c->tx_bytes, filled = 0;
        while (filled < n) {
            uint64_t k = off / size, in = off % size;
            uint64_t run = size - in;
            if (run > n - filled) run = n - filled;
            memset(w->wbuf + filled, pattern(k), run);
            filled += run;
            off += run;
        }
        ssize_t r = send(c->fd, w->wbuf, n, MSG_NOSIGNAL);
        if (r < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) { set_out_interest(w, c, 1); return; }
            die("send on connection %d failed after %llu messages: %s", c->index,
                (unsigned long long)c->rx_msgs, strerror(errno));
        }
        c->tx_bytes += (uint64_t)r;
        if ((uint64_t)r < n) { set_out_interest(w, c, 1); return; }
    }
}

static inline void queue_message(conn *c, uint64_t t) {
    unsigned slot = (c->head + c->inflight) % (unsigned)opt_depth;
    c->sent_at[slot] = t;
    c->inflight++;
    c->tx_queued++;
}

// Reads what the socket has; completes messages; queues replacements. Returns the
// number of messages completed.
static uint64_t read_conn(worker *w, conn *c) {
    const uint64_t size = (uint64_t)opt_size;
    uint64_t completed = 0;
    for (;;) {
        ssize_t r = recv(c->fd, w->rbuf, w->rbuf_size, 0);
        if (r == 0)
            die("server closed connection %d after %llu messages", c->index,
                (unsigned long long)c->rx_msgs);
        if (r < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) break;
            die("recv on connection %d failed after %llu messages: %s", c->index,
                (unsigned long long)c->rx_msgs, strerror(errno));
        }
        uint64_t t = now_ns();
        const uint8_t *p = w->rbuf, *end = w->rbuf + r;
        while (p < end) {
            uint64_t want = size - c->rx_off;
            uint64_t have = (uint64_t)(end - p);
            uint64_t take = have < want ? have : want;
            if (c->rx_msgs * size + c->rx_off + take > c->tx_bytes)
                die("connection %d: received bytes that were never sent", c->index);
            uint8_t expect = pattern(c->rx_msgs);
            for (uint64_t i = 0; i < take; i++)
                if (p[i] != expect)
                    die("connection %d: echo mismatch in message %llu at byte %llu "
                        "(got 0x%02x, sent 0x%02x)", c->index, (unsigned long long)c->rx_msgs,
                        (unsigned long long)(c->rx_off + i), p[i], expect);
            p += take;
            c->rx_off += take;
            if (c->rx_off == size) {
                uint64_t sent = c->sent_at[c->head];
                c->head = (c->head + 1) % (unsigned)opt_depth;
                c->inflight--;
                c->rx_msgs++;
                c->rx_off = 0;
                completed++;
                if (t >= w->warm_end && t < w->t_end) {
                    hist_record(&w->hist, t - sent);
                    w->measured++;
                }
                queue_message(c, t);
            }
        }
        if ((size_t)r < w->rbuf_size) break;   // drained (saves an EAGAIN round trip)
    }
    if (completed) flush_conn(w, c);
    return completed;
}

static void *worker_main(void *arg) {
    worker *w = arg;
    pin_to(w->cpu);
    const int maxev = 256;
    struct epoll_event events[256];
    uint64_t t = now_ns();
    for (int i = 0; i < w->nconns; i++) {
        conn *c = &w->conns[i];
        for (int d = 0; d < opt_depth; d++) queue_message(c, t);
        flush_conn(w, c);
    }
    uint64_t stall_ns = (uint64_t)(opt_stall * 1e9);
    uint64_t last_progress = now_ns();
    int timeout_ms = opt_busy_poll ? 0 : 50;
    for (;;) {
        int n = epoll_wait(w->ep, events, maxev, timeout_ms);
        if (n < 0) {
            if (errno == EINTR) continue;
            die("epoll_wait: %s", strerror(errno));
        }
        uint64_t progress = 0;
        for (int i = 0; i < n; i++) {
            conn *c = events[i].data.ptr;
            if (events[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) progress += read_conn(w, c);
            if (events[i].events & EPOLLOUT) flush_conn(w, c);
        }
        uint64_t now = now_ns();
        if (now >= w->t_end) break;
        if (progress) last_progress = now;
        else if (now - last_progress > stall_ns)
            die("no echo for %.1f s (thread %d); is the server echoing?", opt_stall, w->id);
    }
    return NULL;
}

int main(int argc, char **argv) {
    parse_args(argc, argv);
    signal(SIGPIPE, SIG_IGN);

    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
    struct addrinfo *ai = NULL;
    char port_s[16];
    snprintf(port_s, sizeof port_s, "%d", opt_port);
    int gai = getaddrinfo(opt_host, port_s, &hints, &ai);
    if (gai != 0) die("cannot resolve %s: %s", opt_host, gai_strerror(gai));

    // Pin the main thread first so connections are made (and their memory touched)
    // where the first worker runs.
    pin_to(opt_ncpus ? opt_cpus[0] : -1);

    int nthreads = opt_threads;
    worker *workers = calloc((size_t)nthreads, sizeof *workers);
    conn *conns = calloc((size_t)opt_connections, sizeof *conns);
    uint64_t *times = calloc((size_t)opt_connections * (size_t)opt_depth, sizeof *times);
    if (!workers || !conns || !times) die("out of memory");

    size_t wbuf_size = (size_t)opt_size * (size_t)opt_depth;
    if (wbuf_size > (256u << 10)) wbuf_size = 256u << 10;
    if (wbuf_size < 4096) wbuf_size = 4096;

    for (int i = 0; i < opt_connections; i++) {
        conns[i].fd = connect_one(ai, i);
        conns[i].index = i;
        conns[i].sent_at = times + (size_t)i * (size_t)opt_depth;
    }
    freeaddrinfo(ai);

    int per = opt_connections / nthreads, extra = opt_connections % nthreads, next = 0;
    for (int t = 0; t < nthreads; t++) {
        worker *w = &workers[t];
        w->id = t;
        w->cpu = opt_ncpus ? opt_cpus[t % opt_ncpus] : -1;
        w->conns = conns + next;
        w->nconns = per + (t < extra ? 1 : 0);
        next += w->nconns;
        w->ep = epoll_create1(EPOLL_CLOEXEC);
        if (w->ep < 0) die("epoll_create1: %s", strerror(errno));
        w->rbuf_size = 64u << 10;
        w->rbuf = malloc(w->rbuf_size);
        w->wbuf_size = wbuf_size;
        w->wbuf = malloc(wbuf_size);
        if (!w->rbuf || !w->wbuf) die("out of memory");
        hist_reset(&w->hist);
        for (int i = 0; i < w->nconns; i++) {
            struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &w->conns[i] };
            if (epoll_ctl(w->ep, EPOLL_CTL_ADD, w->conns[i].fd, &ev) != 0)
                die("epoll_ctl: %s", strerror(errno));
        }
    }

    struct rusage ru0, ru1;
    getrusage(RUSAGE_SELF, &ru0);
    uint64_t start = now_ns();
    uint64_t warm_end = start + (uint64_t)(opt_warmup * 1e9);
    uint64_t t_end = warm_end + (uint64_t)(opt_duration * 1e9);
    for (int t = 0; t < nthreads; t++) { workers[t].warm_end = warm_end; workers[t].t_end = t_end; }

    pthread_t *tids = calloc((size_t)nthreads, sizeof *tids);
    for (int t = 1; t < nthreads; t++)
        if (pthread_create(&tids[t], NULL, worker_main, &workers[t]) != 0) die("pthread_create failed");
    worker_main(&workers[0]);
    for (int t = 1; t < nthreads; t++) pthread_join(tids[t], NULL);
    uint64_t finish = now_ns();
    getrusage(RUSAGE_SELF, &ru1);
#define TV_NS(tv) ((double)(tv).tv_sec * 1e9 + (double)(tv).tv_usec * 1e3)
    double cpu_ns = TV_NS(ru1.ru_utime) - TV_NS(ru0.ru_utime) + TV_NS(ru1.ru_stime) - TV_NS(ru0.ru_stime);
    double cpu_pct = 100.0 * cpu_ns / (double)(finish - start);

    histogram *all = malloc(sizeof *all);
    if (!all) die("out of memory");
    hist_reset(all);
    uint64_t messages = 0;
    for (int t = 0; t < nthreads; t++) { hist_merge(all, &workers[t].hist); messages += workers[t].measured; }
    if (messages == 0) die("no message completed inside the measurement window");

    double seconds = (double)(t_end - warm_end) / 1e9;
    printf("{\"connections\":%d,\"depth\":%d,\"size\":%d,\"messages\":%llu,\"seconds\":%.3f,"
           "\"msgs_per_s\":%.1f,\"p50_us\":%.2f,\"p90_us\":%.2f,\"p99_us\":%.2f,\"p999_us\":%.2f,"
           "\"max_us\":%.2f,\"mean_us\":%.2f,\"threads\":%d,\"client_cpu_pct\":%.1f}\n",
           opt_connections, opt_depth, opt_size, (unsigned long long)messages, seconds,
           (double)messages / seconds,
           hist_percentile(all, 50) / 1e3, hist_percentile(all, 90) / 1e3,
           hist_percentile(all, 99) / 1e3, hist_percentile(all, 99.9) / 1e3,
           all->max / 1e3, all->sum / (double)all->total / 1e3, nthreads, cpu_pct);
    fflush(stdout);
    for (int i = 0; i < opt_connections; i++) close(conns[i].fd);
    return 0;
}
