/*
 * nfsbench: NFSv3 load client over libnfs's async API.
 *
 * One TCP connection (one libnfs context) keeps --depth requests in flight for
 * --warmup + --duration seconds and prints one JSON line with the rate and the latency
 * percentiles of the requests that completed inside the measured window.
 *
 *   gcc -O2 -Wall -o nfsbench nfsbench.c -lnfs
 *   nfsbench --url 'nfs://127.0.0.1/EXPORT/?version=3&nfsport=P&mountport=P' --op read4k
 *
 * Operations (one "op" is what the rate and the latencies count):
 *   read4k   READ of 4 KiB at a random 4 KiB-aligned offset of the test file
 *   write4k  WRITE (UNSTABLE, libnfs's default) of 4 KiB at a random aligned offset
 *   read1m   READ of 1 MiB, sequential through the file, wrapping at its end
 *   write1m  WRITE (UNSTABLE) of 1 MiB, sequential through the file, wrapping
 *   getattr  GETATTR of the test file's handle (nfs_fstat64_async)
 *   lookup   LOOKUP of the test file's name in the export root (raw NFS3 LOOKUP)
 *   create   create + write 4 KiB + close of a new file (nfs_creat_async,
 *            nfs_pwrite_async, nfs_close_async) in a fresh directory; the files are
 *            removed afterwards (not timed)
 *
 * Prepare phase: the test file (--file, in the export root) is reused when it has
 * --file-size bytes and spot checks of its blocks pass; otherwise it is written in full
 * (1 MiB writes, then COMMIT). Every 4 KiB block of the file carries a header (magic,
 * block index, generation, check word) and a body derived from the generation, so any
 * block read back can be checked without knowing who wrote it last. Reads check every
 * block header they return and the full body of one block per request; write runs and
 * create runs read a sample of what they wrote back at the end and check it carries this
 * run's generation. A mismatch stops the run with exit status 3 and no JSON line.
 *
 * Very deep queues of 1 MiB writes (about 512 and up) stall inside libnfs itself: it encodes
 * and buffers every queued request (depth x 1 MiB) and replies are read only after it has sent
 * them, so no request may complete inside a short window. That happens with any server.
 *
 * Exit status: 0 ok; 1 bad usage or setup failure (mount, prepare); 2 some requests
 * failed (the JSON line is still printed, with "errors"); 3 data verification failed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <nfsc/libnfs.h>
#include <nfsc/libnfs-raw.h>
#include <nfsc/libnfs-raw-nfs.h>

/* libnfs returns file handles of open files as `struct nfs_fh *` (nfs_get_fh) but keeps
 * the struct private; this is its layout in lib/libnfs-private.h (unchanged from libnfs
 * 1.x through 5.x). It is used only to build raw LOOKUP arguments and to compare handles,
 * and its length is range-checked before use. */
struct nfs_fh {
    int len;
    char *val;
};

#define BLK 4096u
#define MIB (1024u * 1024u)
#define MAGIC 0x48434e4542534e46ull /* "NFSBENCH" little-endian */

/* ------------------------------------------------------------------ utilities */

static void die(int status, const char *fmt, ...) __attribute__((noreturn, format(printf, 2, 3)));
static void die(int status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("nfsbench: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(status);
}

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t cpu_ns(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ((uint64_t)ru.ru_utime.tv_sec + (uint64_t)ru.ru_stime.tv_sec) * 1000000000ull +
           ((uint64_t)ru.ru_utime.tv_usec + (uint64_t)ru.ru_stime.tv_usec) * 1000ull;
}

/* CPU time (clock ticks) of process `pid`, all threads; -1 if it is gone. */
static long long proc_ticks(int pid) {
    char path[64], buf[2048];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    if (!p) return -1;
    unsigned long long ut = 0, st = 0;
    /* after ") ": state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime */
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2) return -1;
    return (long long)(ut + st);
}

/* Busy and total clock ticks of the whole machine (all CPUs) from /proc/stat; steal counts
 * as busy, since it is time taken from this machine too. */
static void machine_ticks(long long *busy, long long *total) {
    unsigned long long v[8] = {0};
    *busy = *total = 0;
    FILE *f = fopen("/proc/stat", "r");
    if (!f) return;
    if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5],
               &v[6], &v[7]) == 8) {
        unsigned long long t = 0;
        for (int i = 0; i < 8; i++) t += v[i];
        *total = (long long)t;
        *busy = (long long)(t - v[3] - v[4]);
    }
    fclose(f);
}

static uint64_t rng_state;
static uint64_t rng_next(void) { /* xorshift64* */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1Dull;
}

static uint64_t mix64(uint64_t x) { /* splitmix64 finaliser */
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

/* ------------------------------------------------------------------ block pattern */

/* Block layout (64-bit little-endian words): [0] MAGIC, [1] block index, [2] generation,
 * [3] mix64(index ^ mix64(gen)), [4..511] table[j] ^ mix64(gen + 1). The body depends on
 * the generation and on the word's position, so a shifted, zeroed or stale block fails. */
static uint64_t body_table[BLK / 8];

static void init_body_table(void) {
    uint64_t s = 0x6e667362656e6368ull;
    for (unsigned j = 0; j < BLK / 8; j++) body_table[j] = s = mix64(s);
}

static void write_header(uint8_t *blk, uint64_t index, uint64_t gen) {
    uint64_t h[4] = {MAGIC, index, gen, mix64(index ^ mix64(gen))};
    memcpy(blk, h, sizeof h);
}

static void fill_block(uint8_t *blk, uint64_t index, uint64_t gen) {
    uint64_t key = mix64(gen + 1), w;
    for (unsigned j = 4; j < BLK / 8; j++) {
        w = body_table[j] ^ key;
        memcpy(blk + 8 * j, &w, 8);
    }
    write_header(blk, index, gen);
}

static char verify_msg[512];

/* Checks one block: its header always, its body when `body`. want_gen 0 = any generation.
 * Returns 0, or -1 with verify_msg set. */
static int check_block(const uint8_t *blk, uint64_t want_index, uint64_t want_gen, int body) {
    uint64_t h[4];
    memcpy(h, blk, sizeof h);
    if (h[0] != MAGIC) {
        snprintf(verify_msg, sizeof verify_msg,
                 "block %" PRIu64 " (offset %" PRIu64 "): no header magic (first words %016" PRIx64
                 " %016" PRIx64 ")", want_index, want_index * BLK, h[0], h[1]);
        return -1;
    }
    if (h[1] != want_index || h[3] != mix64(h[1] ^ mix64(h[2]))) {
        snprintf(verify_msg, sizeof verify_msg,
                 "block %" PRIu64 " (offset %" PRIu64 "): header says block %" PRIu64
                 " generation %" PRIu64 "%s", want_index, want_index * BLK, h[1], h[2],
                 h[3] != mix64(h[1] ^ mix64(h[2])) ? " with a bad check word" : "");
        return -1;
    }
    if (want_gen && h[2] != want_gen) {
        snprintf(verify_msg, sizeof verify_msg,
                 "block %" PRIu64 " (offset %" PRIu64 "): generation %" PRIu64
                 " but this run wrote generation %" PRIu64 " there (a write was lost)",
                 want_index, want_index * BLK, h[2], want_gen);
        return -1;
    }
    if (body) {
        uint64_t key = mix64(h[2] + 1), w;
        for (unsigned j = 4; j < BLK / 8; j++) {
            memcpy(&w, blk + 8 * j, 8);
            if (w != (body_table[j] ^ key)) {
                snprintf(verify_msg, sizeof verify_msg,
                         "block %" PRIu64 " (offset %" PRIu64 "): body differs at byte %u "
                         "(got %016" PRIx64 ", want %016" PRIx64 ")",
                         want_index, want_index * BLK, 8 * j, w, body_table[j] ^ key);
                return -1;
            }
        }
    }
    return 0;
}

/* ------------------------------------------------------------------ histogram */

/* Log-linear: values below 256 ns exactly, above that 128 buckets per power of two.
 * A bucket is reported at its midpoint: relative error at most 1/256 (0.4%). */
#define SUB_BITS 8
#define SUB (1u << SUB_BITS)
#define HALF (SUB / 2)
#define NBUCKETS (SUB + 57 * HALF)

static uint64_t hist[NBUCKETS];
static uint64_t hist_count, hist_max, hist_sum;

static unsigned bucket_of(uint64_t v) {
    if (v < SUB) return (unsigned)v;
    int msb = 63 - __builtin_clzll(v);
    int shift = msb - (SUB_BITS - 1);
    return SUB + (unsigned)(shift - 1) * HALF + (unsigned)((v >> shift) - HALF);
}

static double bucket_mid(unsigned i) {
    if (i < SUB) return (double)i;
    unsigned shift = (i - SUB) / HALF + 1;
    uint64_t lo = ((uint64_t)((i - SUB) % HALF + HALF)) << shift;
    return (double)lo + (double)(1ull << shift) / 2.0;
}

static void hist_add(uint64_t ns) {
    hist[bucket_of(ns)]++;
    hist_count++;
    hist_sum += ns;
    if (ns > hist_max) hist_max = ns;
}

static double hist_pct_us(double p) {
    if (!hist_count) return 0;
    uint64_t rank = (uint64_t)(p * (double)hist_count + 0.999999);
    if (rank < 1) rank = 1;
    uint64_t c = 0;
    for (unsigned i = 0; i < NBUCKETS; i++) {
        c += hist[i];
        if (c >= rank) {
            double v = bucket_mid(i);
            if (v > (double)hist_max) v = (double)hist_max;
            return v / 1000.0;
        }
    }
    return (double)hist_max / 1000.0;
}

/* ------------------------------------------------------------------ options */

enum op { OP_READ4K, OP_WRITE4K, OP_READ1M, OP_WRITE1M, OP_GETATTR, OP_LOOKUP, OP_CREATE };
static const char *op_names[] = {"read4k", "write4k", "read1m", "write1m", "getattr", "lookup", "create"};

static const char *opt_url;
static enum op opt_op = OP_READ4K;
static int opt_depth = 1;
static double opt_duration = 5, opt_warmup = 1;
static uint64_t opt_file_size = 256ull * MIB;
static const char *opt_file = "nfsbench.dat";
static int opt_cpu = -1;
static int opt_fresh;
static uint64_t opt_seed;
static int opt_verify_full;
static int opt_watch_pid;

static void usage(FILE *f) {
    fprintf(f,
        "usage: nfsbench --url 'nfs://HOST/EXPORT/?version=3&nfsport=P&mountport=P' [options]\n"
        "  --op OP            read4k | write4k | read1m | write1m | getattr | lookup | create (default read4k)\n"
        "  --depth N          requests in flight on the one connection (default 1, max 1024)\n"
        "  --duration S       measured seconds (default 5)\n"
        "  --warmup S         unmeasured seconds before that (default 1)\n"
        "  --file-size BYTES  size of the test file, a multiple of 1 MiB; K/M/G suffixes (default 256M)\n"
        "  --file NAME        test file name in the export root (default nfsbench.dat)\n"
        "  --fresh            rewrite the test file even if it looks prepared\n"
        "  --verify-full      check the full body of every block read (default: every header,\n"
        "                     one full block per request)\n"
        "  --cpu K            pin this process to CPU K\n"
        "  --watch-pid PID    also report the CPU that process PID (the server) used in the\n"
        "                     measured window, and what everything else on the machine used\n"
        "  --seed N           random seed (default: from the clock)\n");
}

static uint64_t parse_size(const char *s) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || v < 0) die(1, "bad size '%s'", s);
    switch (*end) {
    case 'k': case 'K': v *= 1024; end++; break;
    case 'm': case 'M': v *= 1024 * 1024; end++; break;
    case 'g': case 'G': v *= 1024.0 * 1024 * 1024; end++; break;
    }
    if (*end == 'i' || *end == 'B') end++;
    if (*end == 'B') end++;
    if (*end) die(1, "bad size '%s'", s);
    return (uint64_t)v;
}

static double parse_seconds(const char *name, const char *s) {
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end || v < 0 || v > 86400) die(1, "%s needs seconds, not '%s'", name, s);
    return v;
}

static void parse_args(int argc, char **argv) {
    static const struct option longopts[] = {
        {"url", required_argument, 0, 'u'},      {"op", required_argument, 0, 'o'},
        {"depth", required_argument, 0, 'd'},    {"duration", required_argument, 0, 't'},
        {"warmup", required_argument, 0, 'w'},   {"file-size", required_argument, 0, 's'},
        {"file", required_argument, 0, 'f'},     {"cpu", required_argument, 0, 'c'},
        {"fresh", no_argument, 0, 'F'},          {"seed", required_argument, 0, 'S'},
        {"verify-full", no_argument, 0, 'V'},    {"watch-pid", required_argument, 0, 'P'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    int c;
    char *end;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 'u': opt_url = optarg; break;
        case 'o': {
            int found = 0;
            for (unsigned i = 0; i < sizeof op_names / sizeof *op_names; i++)
                if (!strcmp(optarg, op_names[i])) { opt_op = (enum op)i; found = 1; }
            if (!found)
                die(1, "unknown --op '%s' (read4k, write4k, read1m, write1m, getattr, lookup, create)", optarg);
            break;
        }
        case 'd':
            opt_depth = (int)strtol(optarg, &end, 10);
            if (*end || opt_depth < 1 || opt_depth > 1024) die(1, "--depth needs 1..1024, not '%s'", optarg);
            break;
        case 't': opt_duration = parse_seconds("--duration", optarg); break;
        case 'w': opt_warmup = parse_seconds("--warmup", optarg); break;
        case 's': opt_file_size = parse_size(optarg); break;
        case 'f':
            if (!*optarg || strchr(optarg, '/')) die(1, "--file needs a plain file name, not '%s'", optarg);
            opt_file = optarg;
            break;
        case 'c':
            opt_cpu = (int)strtol(optarg, &end, 10);
            if (*end || opt_cpu < 0) die(1, "--cpu needs a CPU number, not '%s'", optarg);
            break;
        case 'F': opt_fresh = 1; break;
        case 'S': opt_seed = strtoull(optarg, &end, 0); if (*end) die(1, "bad --seed '%s'", optarg); break;
        case 'V': opt_verify_full = 1; break;
        case 'P':
            opt_watch_pid = (int)strtol(optarg, &end, 10);
            if (*end || opt_watch_pid <= 0) die(1, "--watch-pid needs a process id, not '%s'", optarg);
            break;
        case 'h': usage(stdout); exit(0);
        default: usage(stderr); exit(1);
        }
    }
    if (optind < argc) die(1, "unexpected argument '%s' (try --help)", argv[optind]);
    if (!opt_url) { usage(stderr); die(1, "--url is required"); }
    if (opt_duration <= 0) die(1, "--duration must be above 0");
    if (opt_file_size < MIB || opt_file_size % MIB)
        die(1, "--file-size must be a positive multiple of 1 MiB (got %" PRIu64 ")", opt_file_size);
}

/* ------------------------------------------------------------------ libnfs plumbing */

static struct nfs_context *nfs;
static struct rpc_context *rpc;
static char file_path[512];   /* "/nfsbench.dat" */
static struct nfsfh *test_fh; /* open O_RDWR for the whole run */
static struct nfs_fh *test_rawfh, *root_rawfh;
static struct nfsfh *root_fh;
static uint64_t nblocks;

/* ------------------------------------------------------------------ prepare */

static uint64_t prep_gen;
static int prep_inflight, prep_failed;
static char prep_err[256];
static uint64_t prep_next_off;
static uint8_t *prep_bufs[8];

static void prep_issue(int slot);

static void prep_write_cb(int err, struct nfs_context *n, void *data, void *priv) {
    (void)n;
    int slot = (int)(intptr_t)priv;
    prep_inflight--;
    if (err < 0 || (uint32_t)err != MIB) {
        if (!prep_failed)
            snprintf(prep_err, sizeof prep_err, "%s", err < 0 ? (char *)data : "short write");
        prep_failed = 1;
        return;
    }
    if (!prep_failed) prep_issue(slot);
}

static void prep_issue(int slot) {
    if (prep_next_off >= opt_file_size) return;
    uint64_t off = prep_next_off;
    prep_next_off += MIB;
    uint8_t *buf = prep_bufs[slot];
    for (uint64_t b = 0; b < MIB / BLK; b++) write_header(buf + b * BLK, off / BLK + b, prep_gen);
    if (nfs_pwrite_async(nfs, test_fh, off, MIB, buf, prep_write_cb, (void *)(intptr_t)slot) < 0)
        die(1, "prepare: cannot queue WRITE: %s", nfs_get_error(nfs));
    prep_inflight++;
}

/* Reads block `index` synchronously and checks it fully. Returns 0 or -1 (verify_msg). */
static int sync_check_block(struct nfsfh *fh, uint64_t index, uint64_t want_index, uint64_t want_gen) {
    static uint8_t buf[BLK];
    int n = nfs_pread(nfs, fh, index * BLK, BLK, buf);
    if (n != (int)BLK) {
        snprintf(verify_msg, sizeof verify_msg, "READ of block %" PRIu64 " returned %d (%s)", index, n,
                 n < 0 ? nfs_get_error(nfs) : "short read");
        return -1;
    }
    return check_block(buf, want_index, want_gen, 1);
}

static const char *prepare_state = "reused";

static void prepare(void) {
    struct nfs_stat_64 st;
    nblocks = opt_file_size / BLK;
    int have = nfs_stat64(nfs, file_path, &st) == 0;
    if (have && !S_ISREG(st.nfs_mode)) die(1, "prepare: %s exists and is not a regular file", file_path);
    int reuse = 0;
    if (have && st.nfs_size == opt_file_size && !opt_fresh) {
        if (nfs_open(nfs, file_path, O_RDWR, &test_fh) < 0)
            die(1, "prepare: cannot open %s: %s", file_path, nfs_get_error(nfs));
        reuse = 1;
        uint64_t probes[34];
        probes[0] = 0;
        probes[1] = nblocks - 1;
        for (int i = 2; i < 34; i++) probes[i] = rng_next() % nblocks;
        for (int i = 0; i < 34 && reuse; i++)
            if (sync_check_block(test_fh, probes[i], probes[i], 0) < 0) reuse = 0;
        if (!reuse) {
            fprintf(stderr, "nfsbench: %s does not hold the expected pattern (%s); rewriting it\n",
                    file_path, verify_msg);
            nfs_close(nfs, test_fh);
            test_fh = NULL;
        }
    }
    if (reuse) return;

    prepare_state = "written";
    if (nfs_create(nfs, file_path, O_RDWR | O_TRUNC, 0644, &test_fh) < 0)
        die(1, "prepare: cannot create %s: %s", file_path, nfs_get_error(nfs));
    prep_gen = 1 + rng_next() % 1000000000ull;
    for (int i = 0; i < 8; i++) {
        prep_bufs[i] = malloc(MIB);
        if (!prep_bufs[i]) die(1, "out of memory");
        for (uint64_t b = 0; b < MIB / BLK; b++) fill_block(prep_bufs[i] + b * BLK, b, prep_gen);
    }
    prep_next_off = 0;
    for (int i = 0; i < 8; i++) prep_issue(i);
    while (prep_inflight > 0) {
        struct pollfd p = {.fd = nfs_get_fd(nfs), .events = (short)nfs_which_events(nfs)};
        int r = poll(&p, 1, 100);
        if (r < 0 && errno != EINTR) die(1, "poll: %s", strerror(errno));
        if (nfs_service(nfs, r > 0 ? p.revents : 0) < 0)
            die(1, "prepare: connection failed: %s", nfs_get_error(nfs));
    }
    if (prep_failed) die(1, "prepare: writing %s failed: %s", file_path, prep_err);
    if (nfs_fsync(nfs, test_fh) < 0) die(1, "prepare: COMMIT of %s failed: %s", file_path, nfs_get_error(nfs));
    for (int i = 0; i < 8; i++) free(prep_bufs[i]);
    if (nfs_stat64(nfs, file_path, &st) < 0 || st.nfs_size != opt_file_size)
        die(3, "prepare: %s has %" PRIu64 " bytes after writing %" PRIu64, file_path,
            (uint64_t)st.nfs_size, opt_file_size);
    for (int i = 0; i < 34; i++) {
        uint64_t b = i == 0 ? 0 : i == 1 ? nblocks - 1 : rng_next() % nblocks;
        if (sync_check_block(test_fh, b, b, prep_gen) < 0)
            die(3, "prepare: read-back of %s failed: %s", file_path, verify_msg);
    }
}

/* ------------------------------------------------------------------ the measured loop */

struct slot {
    int id;
    uint64_t t0;
    uint64_t off;    /* read/write offset, or create sequence number */
    uint8_t *buf;    /* write data */
    struct nfsfh *cfh;
    char path[256];
    int failed;      /* create chain: a step failed */
    LOOKUP3args largs;
};

static struct slot *slots;
static int inflight;
static uint64_t t_start, t_measure, t_end, last_completion;
static uint64_t cpu_at_measure, cpu_at_end;
static int measuring, ended;
static uint64_t ops_done, bytes_done, errors, verified_blocks, all_completions;
static char first_error[512];
static uint64_t run_gen;
static uint64_t seq_off;      /* next sequential offset (1 MiB ops) */
static uint64_t create_seq;   /* next file number (create) */
static char create_dir[96];
static uint64_t recent[64];   /* offsets (or create numbers) of recent successful writes */
static unsigned recent_n;

static void issue(struct slot *s);

static long long srv_at_measure = -1, srv_at_end = -1, busy_at_measure, busy_at_end, tot_at_measure, tot_at_end;

static void sample_start(void) {
    measuring = 1;
    cpu_at_measure = cpu_ns();
    if (opt_watch_pid) srv_at_measure = proc_ticks(opt_watch_pid);
    machine_ticks(&busy_at_measure, &tot_at_measure);
}

static void sample_end(void) {
    ended = 1;
    cpu_at_end = cpu_ns();
    if (opt_watch_pid) srv_at_end = proc_ticks(opt_watch_pid);
    machine_ticks(&busy_at_end, &tot_at_end);
}

static void note_time(uint64_t t) {
    if (!measuring && t >= t_measure) sample_start();
    if (!ended && t >= t_end) sample_end();
}

static void fail_request(const char *what, int err, const char *msg) {
    errors++;
    if (!first_error[0])
        snprintf(first_error, sizeof first_error, "%s: %s (%d)", what, msg ? msg : strerror(-err), err);
}

static void verify_failed(const char *what) {
    die(3, "data verification failed on %s: %s", what, verify_msg);
}

/* A request (or the create chain) finished; count it and start the next one. */
static void complete(struct slot *s, int ok, uint64_t bytes) {
    uint64_t t = now_ns();
    last_completion = t;
    all_completions++;
    note_time(t);
    if (ok && t >= t_measure && t < t_end) {
        hist_add(t - s->t0);
        ops_done++;
        bytes_done += bytes;
    }
    issue(s);
}

static void read_cb(int err, struct nfs_context *n, void *data, void *priv) {
    (void)n;
    struct slot *s = priv;
    uint32_t want = opt_op == OP_READ4K ? BLK : MIB;
    if (err < 0) { fail_request("READ", err, data); complete(s, 0, 0); return; }
    if ((uint32_t)err != want) {
        snprintf(verify_msg, sizeof verify_msg, "READ of %u bytes at offset %" PRIu64 " returned %d bytes",
                 want, s->off, err);
        verify_failed("READ");
    }
    const uint8_t *buf = data;
    uint64_t first = s->off / BLK, nb = want / BLK;
    uint64_t full = nb == 1 ? 0 : rng_next() % nb;
    for (uint64_t b = 0; b < nb; b++)
        if (check_block(buf + b * BLK, first + b, 0, opt_verify_full || b == full) < 0) verify_failed("READ");
    verified_blocks += nb;
    complete(s, 1, want);
}

static void write_cb(int err, struct nfs_context *n, void *data, void *priv) {
    (void)n;
    struct slot *s = priv;
    uint32_t want = opt_op == OP_WRITE4K ? BLK : MIB;
    if (err < 0) { fail_request("WRITE", err, data); complete(s, 0, 0); return; }
    if ((uint32_t)err != want) {
        char m[64];
        snprintf(m, sizeof m, "short write: %d of %u bytes", err, want);
        fail_request("WRITE", -EIO, m);
        complete(s, 0, 0);
        return;
    }
    recent[recent_n++ % 64] = s->off;
    complete(s, 1, want);
}

static void getattr_cb(int err, struct nfs_context *n, void *data, void *priv) {
    (void)n;
    struct slot *s = priv;
    if (err < 0) { fail_request("GETATTR", err, data); complete(s, 0, 0); return; }
    struct nfs_stat_64 *st = data;
    if (st->nfs_size != opt_file_size || !S_ISREG(st->nfs_mode)) {
        snprintf(verify_msg, sizeof verify_msg, "GETATTR says size %" PRIu64 ", mode %o; want a regular file of %" PRIu64,
                 (uint64_t)st->nfs_size, (unsigned)st->nfs_mode, opt_file_size);
        verify_failed("GETATTR");
    }
    complete(s, 1, 0);
}

static void lookup_cb(struct rpc_context *r, int status, void *data, void *priv) {
    (void)r;
    struct slot *s = priv;
    if (status != RPC_STATUS_SUCCESS) {
        fail_request("LOOKUP", -EIO, status == RPC_STATUS_ERROR ? (char *)data : "cancelled");
        complete(s, 0, 0);
        return;
    }
    LOOKUP3res *res = data;
    if (res->status != NFS3_OK) {
        char m[64];
        snprintf(m, sizeof m, "NFS3 status %d", (int)res->status);
        fail_request("LOOKUP", -EIO, m);
        complete(s, 0, 0);
        return;
    }
    nfs_fh3 *o = &res->LOOKUP3res_u.resok.object;
    if ((int)o->data.data_len != test_rawfh->len || memcmp(o->data.data_val, test_rawfh->val, o->data.data_len)) {
        snprintf(verify_msg, sizeof verify_msg, "LOOKUP of %s returned a %u-byte handle that differs from "
                 "the one the file was opened with (%d bytes)", opt_file, o->data.data_len, test_rawfh->len);
        verify_failed("LOOKUP");
    }
    complete(s, 1, 0);
}

static void create_close_cb(int err, struct nfs_context *n, void *data, void *priv) {
    (void)n;
    struct slot *s = priv;
    s->cfh = NULL;
    if (err < 0 && !s->failed) { fail_request("close", err, data); s->failed = 1; }
    if (!s->failed) recent[recent_n++ % 64] = s->off;
    complete(s, !s->failed, BLK);
}

static void create_write_cb(int err, struct nfs_context *n, void *data, void *priv) {
    (void)n;
    struct slot *s = priv;
    if (err < 0 || (uint32_t)err != BLK) {
        fail_request("WRITE", err < 0 ? err : -EIO, err < 0 ? (char *)data : "short write");
        s->failed = 1; /* still close the file; the chain counts as failed */
    }
    if (nfs_close_async(nfs, s->cfh, create_close_cb, s) < 0)
        die(1, "cannot queue close: %s", nfs_get_error(nfs));
}

static void create_cb(int err, struct nfs_context *n, void *data, void *priv) {
    (void)n;
    struct slot *s = priv;
    if (err < 0) { fail_request("CREATE", err, data); complete(s, 0, 0); return; }
    s->cfh = data;
    if (nfs_pwrite_async(nfs, s->cfh, 0, BLK, s->buf, create_write_cb, s) < 0)
        die(1, "cannot queue WRITE: %s", nfs_get_error(nfs));
}

static void issue(struct slot *s) {
    uint64_t t = now_ns();
    note_time(t);
    if (t >= t_end) { inflight--; return; }
    s->t0 = t;
    s->failed = 0;
    int r = 0;
    switch (opt_op) {
    case OP_READ4K:
        s->off = (rng_next() % nblocks) * BLK;
        r = nfs_pread_async(nfs, test_fh, s->off, BLK, read_cb, s);
        break;
    case OP_READ1M:
        s->off = seq_off;
        seq_off = (seq_off + MIB) % opt_file_size;
        r = nfs_pread_async(nfs, test_fh, s->off, MIB, read_cb, s);
        break;
    case OP_WRITE4K:
        s->off = (rng_next() % nblocks) * BLK;
        write_header(s->buf, s->off / BLK, run_gen);
        r = nfs_pwrite_async(nfs, test_fh, s->off, BLK, s->buf, write_cb, s);
        break;
    case OP_WRITE1M:
        s->off = seq_off;
        seq_off = (seq_off + MIB) % opt_file_size;
        for (uint64_t b = 0; b < MIB / BLK; b++) write_header(s->buf + b * BLK, s->off / BLK + b, run_gen);
        r = nfs_pwrite_async(nfs, test_fh, s->off, MIB, s->buf, write_cb, s);
        break;
    case OP_GETATTR:
        r = nfs_fstat64_async(nfs, test_fh, getattr_cb, s);
        break;
    case OP_LOOKUP:
        r = rpc_nfs3_lookup_async(rpc, lookup_cb, &s->largs, s);
        break;
    case OP_CREATE:
        s->off = create_seq++;
        snprintf(s->path, sizeof s->path, "%s/f%" PRIu64, create_dir, s->off);
        r = nfs_creat_async(nfs, s->path, 0644, create_cb, s);
        break;
    }
    if (r < 0) die(1, "cannot queue a %s request: %s", op_names[opt_op], nfs_get_error(nfs));
}

/* ------------------------------------------------------------------ after the run */

static void check_writes(void) {
    unsigned n = recent_n < 64 ? recent_n : 64;
    if (opt_op == OP_WRITE4K || opt_op == OP_WRITE1M) {
        uint64_t nb = opt_op == OP_WRITE4K ? 1 : MIB / BLK;
        for (unsigned i = 0; i < n && i < (opt_op == OP_WRITE4K ? 64u : 8u); i++) {
            uint64_t off = recent[(recent_n - 1 - i) % 64];
            for (uint64_t b = 0; b < nb; b++) {
                uint64_t idx = off / BLK + b;
                if (sync_check_block(test_fh, idx, idx, run_gen) < 0) verify_failed("read-back after the write run");
                verified_blocks++;
            }
        }
    } else if (opt_op == OP_CREATE) {
        static uint8_t buf[BLK];
        for (unsigned i = 0; i < n && i < 16; i++) {
            uint64_t k = recent[(recent_n - 1 - i) % 64];
            char path[256];
            struct nfsfh *fh;
            snprintf(path, sizeof path, "%s/f%" PRIu64, create_dir, k);
            if (nfs_open(nfs, path, O_RDONLY, &fh) < 0) {
                snprintf(verify_msg, sizeof verify_msg, "cannot open created file %s: %s", path, nfs_get_error(nfs));
                verify_failed("read-back of created files");
            }
            int got = nfs_pread(nfs, fh, 0, BLK, buf);
            if (got != (int)BLK) {
                snprintf(verify_msg, sizeof verify_msg, "created file %s: READ returned %d", path, got);
                verify_failed("read-back of created files");
            }
            if (check_block(buf, 0, run_gen, 1) < 0) verify_failed(path);
            verified_blocks++;
            nfs_close(nfs, fh);
        }
    }
}

/* Removes the files the create run made (not timed), keeping up to 64 REMOVEs in flight. */
static uint64_t rm_next;
static int rm_inflight;
static void rm_issue(void);
static void rm_cb(int err, struct nfs_context *n, void *data, void *priv) {
    (void)n; (void)data; (void)priv; (void)err; /* ENOENT for files whose CREATE failed */
    rm_inflight--;
    rm_issue();
}
static void rm_issue(void) {
    while (rm_inflight < 64 && rm_next < create_seq) {
        char path[256];
        snprintf(path, sizeof path, "%s/f%" PRIu64, create_dir, rm_next++);
        if (nfs_unlink_async(nfs, path, rm_cb, NULL) < 0) die(1, "cannot queue REMOVE: %s", nfs_get_error(nfs));
        rm_inflight++;
    }
}
static void remove_created(void) {
    rm_issue();
    while (rm_inflight > 0) {
        struct pollfd p = {.fd = nfs_get_fd(nfs), .events = (short)nfs_which_events(nfs)};
        int r = poll(&p, 1, 100);
        if (r < 0 && errno != EINTR) die(1, "poll: %s", strerror(errno));
        if (nfs_service(nfs, r > 0 ? p.revents : 0) < 0) die(1, "cleanup: connection failed: %s", nfs_get_error(nfs));
    }
    if (nfs_rmdir(nfs, create_dir) < 0)
        fprintf(stderr, "nfsbench: warning: cannot remove %s: %s\n", create_dir, nfs_get_error(nfs));
}

/* ------------------------------------------------------------------ main */

int main(int argc, char **argv) {
    parse_args(argc, argv);
    signal(SIGPIPE, SIG_IGN);
    if (opt_cpu >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(opt_cpu, &set);
        if (sched_setaffinity(0, sizeof set, &set) < 0) die(1, "cannot pin to CPU %d: %s", opt_cpu, strerror(errno));
    }
    rng_state = opt_seed ? opt_seed : (now_ns() ^ ((uint64_t)getpid() << 32));
    if (!rng_state) rng_state = 1;
    init_body_table();

    nfs = nfs_init_context();
    if (!nfs) die(1, "cannot create a libnfs context");
    struct nfs_url *url = nfs_parse_url_dir(nfs, opt_url);
    if (!url) die(1, "bad --url '%s': %s", opt_url, nfs_get_error(nfs));
    if (nfs_mount(nfs, url->server, url->path) < 0)
        die(1, "cannot mount %s:%s: %s (is an NFSv3 server with MOUNT listening on the URL's ports?)",
            url->server, url->path, nfs_get_error(nfs));
    rpc = nfs_get_rpc_context(nfs);
    snprintf(file_path, sizeof file_path, "/%s", opt_file);

    prepare();

    test_rawfh = nfs_get_fh(test_fh);
    if (!test_rawfh || test_rawfh->len <= 0 || test_rawfh->len > 64)
        die(1, "unexpected file handle layout from libnfs (length %d)", test_rawfh ? test_rawfh->len : -1);
    if (opt_op == OP_LOOKUP) {
        if (nfs_open(nfs, "/", O_RDONLY, &root_fh) < 0)
            die(1, "cannot open the export root for LOOKUP: %s", nfs_get_error(nfs));
        root_rawfh = nfs_get_fh(root_fh);
        if (!root_rawfh || root_rawfh->len <= 0 || root_rawfh->len > 64)
            die(1, "unexpected directory handle layout from libnfs");
    }
    if (opt_op == OP_CREATE) {
        snprintf(create_dir, sizeof create_dir, "/nfsbench-create.%d.%" PRIu64, (int)getpid(), rng_next() % 1000000);
        if (nfs_mkdir(nfs, create_dir) < 0) die(1, "cannot make %s: %s", create_dir, nfs_get_error(nfs));
    }

    run_gen = 1 + rng_next() % 1000000000ull;
    slots = calloc((size_t)opt_depth, sizeof *slots);
    if (!slots) die(1, "out of memory");
    for (int i = 0; i < opt_depth; i++) {
        struct slot *s = &slots[i];
        s->id = i;
        if (opt_op == OP_WRITE4K || opt_op == OP_WRITE1M || opt_op == OP_CREATE) {
            uint32_t size = opt_op == OP_WRITE1M ? MIB : BLK;
            s->buf = malloc(size);
            if (!s->buf) die(1, "out of memory");
            /* The body depends only on the generation; each request rewrites the headers. */
            for (uint32_t b = 0; b < size / BLK; b++) fill_block(s->buf + b * BLK, b, run_gen);
        }
        if (opt_op == OP_LOOKUP) {
            s->largs.what.dir.data.data_len = (u_int)root_rawfh->len;
            s->largs.what.dir.data.data_val = root_rawfh->val;
            s->largs.what.name = (char *)opt_file;
        }
    }
    seq_off = opt_op == OP_READ1M || opt_op == OP_WRITE1M ? (rng_next() % (opt_file_size / MIB)) * MIB : 0;

    t_start = now_ns();
    t_measure = t_start + (uint64_t)(opt_warmup * 1e9);
    t_end = t_measure + (uint64_t)(opt_duration * 1e9);
    last_completion = t_start;
    if (opt_warmup == 0) sample_start();
    inflight = opt_depth;
    for (int i = 0; i < opt_depth; i++) issue(&slots[i]);
    while (inflight > 0) {
        struct pollfd p = {.fd = nfs_get_fd(nfs), .events = (short)nfs_which_events(nfs)};
        int r = poll(&p, 1, 100);
        if (r < 0 && errno != EINTR) die(1, "poll: %s", strerror(errno));
        if (nfs_service(nfs, r > 0 ? p.revents : 0) < 0)
            die(1, "connection failed during the run (%" PRIu64 " requests completed): %s", all_completions,
                nfs_get_error(nfs));
        uint64_t t = now_ns();
        note_time(t);
        if (t - last_completion > 10ull * 1000000000ull)
            die(1, "the server stopped answering: no reply for 10 s with %d requests in flight", inflight);
    }
    if (!ended) sample_end();

    check_writes();
    if (opt_op == OP_CREATE) remove_created();
    if (root_fh) nfs_close(nfs, root_fh);
    nfs_close(nfs, test_fh);
    uint64_t readmax = nfs_get_readmax(nfs), writemax = nfs_get_writemax(nfs);
    nfs_destroy_url(url);
    nfs_destroy_context(nfs);

    double secs = opt_duration;
    double cpu_pct = 100.0 * (double)(cpu_at_end - cpu_at_measure) / (opt_duration * 1e9);
    /* Server and machine CPU, as % of one CPU over the window (ticks -> seconds). */
    double tck = (double)sysconf(_SC_CLK_TCK);
    int ncpu = (int)sysconf(_SC_NPROCESSORS_ONLN);
    double per_cpu_ticks = tot_at_end > tot_at_measure ? (double)(tot_at_end - tot_at_measure) / ncpu
                                                       : opt_duration * tck;
    double machine_pct = 100.0 * (double)(busy_at_end - busy_at_measure) / per_cpu_ticks;
    double srv_pct = -1;
    if (opt_watch_pid && srv_at_measure >= 0 && srv_at_end >= 0)
        srv_pct = 100.0 * (double)(srv_at_end - srv_at_measure) / per_cpu_ticks;
    double other_pct = machine_pct - cpu_pct - (srv_pct > 0 ? srv_pct : 0);
    if (other_pct < 0) other_pct = 0;
    char srv_json[64] = "";
    if (opt_watch_pid) {
        if (srv_pct >= 0) snprintf(srv_json, sizeof srv_json, ",\"server_cpu_pct\":%.1f", srv_pct);
        else snprintf(srv_json, sizeof srv_json, ",\"server_cpu_pct\":null");
    }
    printf("{\"op\":\"%s\",\"depth\":%d,\"ops\":%" PRIu64 ",\"seconds\":%.3f,\"ops_per_s\":%.1f,"
           "\"mb_per_s\":%.2f,\"p50_us\":%.2f,\"p90_us\":%.2f,\"p99_us\":%.2f,\"p999_us\":%.2f,"
           "\"max_us\":%.2f,\"mean_us\":%.2f,\"errors\":%" PRIu64 ",\"verified_blocks\":%" PRIu64 ","
           "\"client_cpu_pct\":%.1f%s,\"other_cpu_pct\":%.1f,\"file_size\":%" PRIu64 ",\"prepare\":\"%s\",\"readmax\":%" PRIu64
           ",\"writemax\":%" PRIu64 "}\n",
           op_names[opt_op], opt_depth, ops_done, secs, (double)ops_done / secs,
           (double)bytes_done / secs / 1e6, hist_pct_us(0.50), hist_pct_us(0.90), hist_pct_us(0.99),
           hist_pct_us(0.999), (double)hist_max / 1000.0,
           hist_count ? (double)hist_sum / (double)hist_count / 1000.0 : 0.0, errors, verified_blocks, cpu_pct,
           srv_json, other_pct, opt_file_size, prepare_state, readmax, writemax);
    fflush(stdout);
    if (errors) {
        fprintf(stderr, "nfsbench: %" PRIu64 " %s request(s) failed; the first: %s\n", errors, op_names[opt_op],
                first_error);
        return 2;
    }
    if (ops_done == 0) {
        fprintf(stderr, "nfsbench: no %s request completed inside the measured window\n", op_names[opt_op]);
        return 2;
    }
    return 0;
}
