/*
 * demofs: the example dmanoel-NAS VFS plugin.
 *
 * A small but real filesystem kept in ONE data file, written append-only:
 *
 *   offset 0   64-byte header   "DMDEMOFS", format version, generation (random, goes into every
 *                               handle), creation time, root mode, CRC32C of the header
 *   offset 64  records          16-byte record header (magic "DREC", payload length, CRC32C of
 *                               type+flags+payload, type, flags) followed by the payload
 *
 * Every mutation is one record (create, write, setattr/truncate, link, remove, rename, xattr
 * set/remove, punch, allocate) carrying everything needed to redo it, including the time it
 * happened. At start the records are replayed into an in-memory index (inodes, directories,
 * extent maps); a torn record at the tail (crash during an append) is cut off. File data is
 * not copied into memory: a WRITE record holds the bytes, and the file's extent map points at
 * them, so reads are preads from the data file and holes (never-written ranges) read as zeros.
 * Extents make offsets past 4 GiB cost nothing.
 *
 * Durability: every record is written with pwritev before the call returns; FILE_SYNC /
 * DATA_SYNC writes, commit, and (unless the config says "sync": false) every metadata change
 * are followed by fdatasync(2) of the data file.
 *
 * Threads: one mutex per instance guards everything; fdatasync runs after it is released.
 *
 * Config file (JSON): {"path": "/var/lib/demofs/data.log", "sync": true}. A relative path is
 * taken relative to the directory of the config file.
 *
 * Not done (a demo): the log is never compacted, so space of overwritten data is not reclaimed;
 * atime changes from reads are kept in memory only.
 */
#define _GNU_SOURCE
#include <dmanoel_vfs_plugin.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

typedef struct dmanoel_vfs_time ts_t;
typedef struct dmanoel_vfs_handle handle_t;
typedef struct dmanoel_vfs_attr attr_t;
typedef struct dmanoel_vfs_cred cred_t;

#define HEADER_SIZE 64u
#define HEADER_VERSION 1u
#define RECORD_HEADER 16u
#define RECORD_MAGIC 0x43455244u /* "DREC" */
#define ROOT_INO 1u
#define HANDLE_LEN 16u
#define MAX_LINKS 65000u
#define MAX_XATTR_VALUE (64u * 1024u)
#define MAX_SYMLINK 4096u
#define GOLDEN 0x9E3779B97F4A7C15ull

enum record_type {
    REC_CREATE = 1,
    REC_SETATTR = 2,
    REC_WRITE = 3,
    REC_LINK = 4,
    REC_REMOVE = 5,
    REC_RENAME = 6,
    REC_XATTR_SET = 7,
    REC_XATTR_REMOVE = 8,
    REC_PUNCH = 9,
    REC_ALLOCATE = 10,
};

/* ─── CRC32C ─────────────────────────────────────────────────────────────────────────────── */

static uint32_t crc_table[256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        crc_table[i] = c;
    }
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) static uint32_t crc_hw(uint32_t crc, const uint8_t *p, size_t n) {
    uint64_t c = crc;
    while (n >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        c = _mm_crc32_u64(c, v);
        p += 8;
        n -= 8;
    }
    crc = (uint32_t)c;
    while (n--) crc = _mm_crc32_u8(crc, *p++);
    return crc;
}
#endif

/* CRC32C (Castagnoli); chainable: crc32c(crc32c(0, a), b) == crc32c(0, a ++ b). */
static uint32_t crc32c(uint32_t crc, const void *data, size_t n) {
    const uint8_t *p = data;
    crc = ~crc;
#if defined(__x86_64__)
    if (__builtin_cpu_supports("sse4.2")) return ~crc_hw(crc, p, n);
#endif
    pthread_once(&crc_once, crc_init);
    while (n--) crc = crc_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return ~crc;
}

/* ─── Little-endian encoding ─────────────────────────────────────────────────────────────── */

static void put_le(uint8_t *p, uint64_t v, int bytes) {
    for (int i = 0; i < bytes; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *p, int bytes) {
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

struct buf {
    uint8_t *p;
    size_t len, cap;
    int oom;
};

static void b_reserve(struct buf *b, size_t n) {
    if (b->oom || b->len + n <= b->cap) return;
    size_t cap = b->cap ? b->cap * 2 : 256;
    while (cap < b->len + n) cap *= 2;
    uint8_t *p = realloc(b->p, cap);
    if (!p) {
        b->oom = 1;
        return;
    }
    b->p = p;
    b->cap = cap;
}

static void b_put(struct buf *b, const void *data, size_t n) {
    b_reserve(b, n);
    if (b->oom) return;
    if (n) memcpy(b->p + b->len, data, n);
    b->len += n;
}

static void b_int(struct buf *b, uint64_t v, int bytes) {
    b_reserve(b, (size_t)bytes);
    if (b->oom) return;
    put_le(b->p + b->len, v, bytes);
    b->len += (size_t)bytes;
}

static void b_u32(struct buf *b, uint32_t v) { b_int(b, v, 4); }
static void b_u64(struct buf *b, uint64_t v) { b_int(b, v, 8); }
static void b_time(struct buf *b, ts_t t) {
    b_u64(b, (uint64_t)t.sec);
    b_u32(b, t.nsec);
}
static void b_bytes(struct buf *b, const void *p, uint32_t n) {
    b_u32(b, n);
    b_put(b, p, n);
}

struct cur {
    const uint8_t *p;
    size_t len, pos;
    int bad;
};

static uint64_t c_int(struct cur *c, int bytes) {
    if (c->bad || c->len - c->pos < (size_t)bytes) {
        c->bad = 1;
        return 0;
    }
    uint64_t v = get_le(c->p + c->pos, bytes);
    c->pos += (size_t)bytes;
    return v;
}
static uint32_t c_u32(struct cur *c) { return (uint32_t)c_int(c, 4); }
static uint64_t c_u64(struct cur *c) { return c_int(c, 8); }
static ts_t c_time(struct cur *c) {
    ts_t t = {0, 0, 0};
    t.sec = (int64_t)c_u64(c);
    t.nsec = c_u32(c);
    return t;
}
static const uint8_t *c_bytes(struct cur *c, uint32_t *n) {
    *n = c_u32(c);
    if (c->bad || c->len - c->pos < *n) {
        c->bad = 1;
        return NULL;
    }
    const uint8_t *p = c->p + c->pos;
    c->pos += *n;
    return p;
}

/* ─── In-memory index ────────────────────────────────────────────────────────────────────── */

struct extent {
    uint64_t off, len, log; /* file bytes [off, off+len) live at data-file offset `log` */
};

struct dent {
    struct dent *hnext;
    uint64_t ino, cookie, hash;
    uint32_t name_len;
    int live;
    char name[];
};

struct xattr {
    struct xattr *next;
    char *name;
    uint8_t *value;
    size_t len;
};

struct inode {
    struct inode *hnext;
    uint64_t ino;
    uint32_t type, mode, uid, gid, nlink, rdev_major, rdev_minor;
    uint64_t size, change, verifier;
    int has_verifier;
    ts_t atime, mtime, ctime, birth;
    /* symlinks */
    char *target;
    uint32_t target_len;
    /* directories: entries ordered by cookie (removed ones linger as tombstones until the
       array is compacted), and a hash of live entries by name */
    uint64_t parent, next_cookie;
    struct dent **ents;
    size_t nents, cap_ents, live_ents;
    struct dent **dhash;
    size_t dhash_cap;
    /* regular files: sorted, non-overlapping extents */
    struct extent *ext;
    size_t next, cap_ext;
    uint64_t space;
    struct xattr *xattrs;
};

struct demofs {
    pthread_mutex_t lock;
    int fd;
    char *path;
    int sync_metadata;
    int broken; /* an append succeeded but applying it in memory failed: refuse further work */
    uint64_t generation, fsid, end, next_ino, change;
    struct inode **itab;
    size_t itab_cap, icount;
};

static ts_t now_ts(void) {
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    ts_t r = {(int64_t)t.tv_sec, (uint32_t)t.tv_nsec, 0};
    return r;
}

static int ts_eq(ts_t a, ts_t b) { return a.sec == b.sec && a.nsec == b.nsec; }

static uint64_t hash_name(const char *name, size_t len) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < len; i++) {
        h ^= (uint8_t)name[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

/* Inode table (chained hash on the inode number). */

static size_t ino_slot(const struct demofs *fs, uint64_t ino) {
    return (size_t)((ino * GOLDEN) >> 32) & (fs->itab_cap - 1);
}

static struct inode *itab_get(const struct demofs *fs, uint64_t ino) {
    for (struct inode *n = fs->itab[ino_slot(fs, ino)]; n; n = n->hnext)
        if (n->ino == ino) return n;
    return NULL;
}

static int itab_put(struct demofs *fs, struct inode *n) {
    if (fs->icount + 1 > fs->itab_cap) {
        size_t cap = fs->itab_cap * 2;
        struct inode **table = calloc(cap, sizeof *table);
        if (table) {
            struct inode **old = fs->itab;
            size_t old_cap = fs->itab_cap;
            fs->itab = table;
            fs->itab_cap = cap;
            for (size_t i = 0; i < old_cap; i++) {
                for (struct inode *m = old[i], *next; m; m = next) {
                    next = m->hnext;
                    size_t s = ino_slot(fs, m->ino);
                    m->hnext = table[s];
                    table[s] = m;
                }
            }
            free(old);
        } /* else: keep the old table, chains just get longer */
    }
    size_t s = ino_slot(fs, n->ino);
    n->hnext = fs->itab[s];
    fs->itab[s] = n;
    fs->icount++;
    return 0;
}

static void inode_free(struct inode *n) {
    for (size_t i = 0; i < n->nents; i++) free(n->ents[i]);
    free(n->ents);
    free(n->dhash);
    free(n->ext);
    free(n->target);
    for (struct xattr *x = n->xattrs, *next; x; x = next) {
        next = x->next;
        free(x->name);
        free(x->value);
        free(x);
    }
    free(n);
}

static void itab_del(struct demofs *fs, struct inode *n) {
    struct inode **p = &fs->itab[ino_slot(fs, n->ino)];
    while (*p && *p != n) p = &(*p)->hnext;
    if (*p) {
        *p = n->hnext;
        fs->icount--;
    }
}

/* Frees an object once nothing links to it. */
static void release(struct demofs *fs, struct inode *n) {
    if (n->nlink == 0 || (n->type == DMANOEL_VFS_DIRECTORY && n->nlink <= 1)) {
        itab_del(fs, n);
        inode_free(n);
    }
}

/* Directory entries. */

static struct dent *dir_find(const struct inode *d, const char *name, size_t len) {
    if (!d->dhash_cap) return NULL;
    uint64_t h = hash_name(name, len);
    for (struct dent *e = d->dhash[h & (d->dhash_cap - 1)]; e; e = e->hnext)
        if (e->hash == h && e->name_len == len && memcmp(e->name, name, len) == 0) return e;
    return NULL;
}

static void dir_hash_grow(struct inode *d) {
    size_t cap = d->dhash_cap ? d->dhash_cap * 2 : 16;
    struct dent **table = calloc(cap, sizeof *table);
    if (!table) return;
    for (size_t i = 0; i < d->dhash_cap; i++) {
        for (struct dent *e = d->dhash[i], *next; e; e = next) {
            next = e->hnext;
            e->hnext = table[e->hash & (cap - 1)];
            table[e->hash & (cap - 1)] = e;
        }
    }
    free(d->dhash);
    d->dhash = table;
    d->dhash_cap = cap;
}

static int dir_add(struct inode *d, const char *name, size_t len, uint64_t ino) {
    if (d->nents == d->cap_ents) {
        size_t cap = d->cap_ents ? d->cap_ents * 2 : 8;
        struct dent **ents = realloc(d->ents, cap * sizeof *ents);
        if (!ents) return -ENOMEM;
        d->ents = ents;
        d->cap_ents = cap;
    }
    if (d->live_ents + 1 > d->dhash_cap) dir_hash_grow(d);
    if (!d->dhash_cap) return -ENOMEM;
    struct dent *e = malloc(sizeof *e + len + 1);
    if (!e) return -ENOMEM;
    memcpy(e->name, name, len);
    e->name[len] = 0;
    e->name_len = (uint32_t)len;
    e->ino = ino;
    e->cookie = d->next_cookie++;
    e->hash = hash_name(name, len);
    e->live = 1;
    size_t s = e->hash & (d->dhash_cap - 1);
    e->hnext = d->dhash[s];
    d->dhash[s] = e;
    d->ents[d->nents++] = e;
    d->live_ents++;
    return 0;
}

/* Unlinks `e` from the name hash and leaves it as a tombstone; may compact (freeing
   tombstones, `e` included). */
static void dir_del(struct inode *d, struct dent *e) {
    struct dent **p = &d->dhash[e->hash & (d->dhash_cap - 1)];
    while (*p && *p != e) p = &(*p)->hnext;
    if (*p) *p = e->hnext;
    e->live = 0;
    d->live_ents--;
    if (d->nents >= 64 && d->live_ents * 2 < d->nents) {
        size_t j = 0;
        for (size_t i = 0; i < d->nents; i++) {
            if (d->ents[i]->live) d->ents[j++] = d->ents[i];
            else free(d->ents[i]);
        }
        d->nents = j;
    }
}

/* Index of the first entry (live or not) whose cookie is greater than `cookie`. */
static size_t dir_first_after(const struct inode *d, uint64_t cookie) {
    size_t lo = 0, hi = d->nents;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (d->ents[mid]->cookie <= cookie) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

/* Extents. */

static size_t ext_first_ending_after(const struct inode *n, uint64_t pos) {
    size_t lo = 0, hi = n->next;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (n->ext[mid].off + n->ext[mid].len <= pos) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

/* Drops the coverage of [start, end) and, with `ins` (which covers exactly that range), puts
   it in its place. */
static int ext_replace(struct inode *n, uint64_t start, uint64_t end, const struct extent *ins) {
    if (start >= end) return 0;
    size_t i0 = ext_first_ending_after(n, start);
    size_t i1 = i0;
    while (i1 < n->next && n->ext[i1].off < end) i1++;
    struct extent pieces[3];
    size_t k = 0;
    uint64_t removed = 0;
    for (size_t i = i0; i < i1; i++) {
        uint64_t a = n->ext[i].off > start ? n->ext[i].off : start;
        uint64_t e = n->ext[i].off + n->ext[i].len;
        uint64_t b = e < end ? e : end;
        removed += b - a;
    }
    if (i1 > i0 && n->ext[i0].off < start) {
        struct extent left = {n->ext[i0].off, start - n->ext[i0].off, n->ext[i0].log};
        pieces[k++] = left;
    }
    if (ins) pieces[k++] = *ins;
    if (i1 > i0) {
        struct extent last = n->ext[i1 - 1];
        uint64_t last_end = last.off + last.len;
        if (last_end > end) {
            struct extent right = {end, last_end - end, last.log + (end - last.off)};
            pieces[k++] = right;
        }
    }
    if (i1 == i0 && k == 0) return 0; /* nothing to drop, nothing to add */
    size_t count = n->next - (i1 - i0) + k;
    if (count > n->cap_ext) {
        size_t cap = n->cap_ext ? n->cap_ext * 2 : 4;
        while (cap < count) cap *= 2;
        struct extent *ext = realloc(n->ext, cap * sizeof *ext);
        if (!ext) return -ENOMEM;
        n->ext = ext;
        n->cap_ext = cap;
    }
    memmove(n->ext + i0 + k, n->ext + i1, (n->next - i1) * sizeof *n->ext);
    memcpy(n->ext + i0, pieces, k * sizeof *pieces);
    n->next = count;
    n->space = n->space - removed + (ins ? ins->len : 0);
    return 0;
}

static int file_truncate(struct inode *n, uint64_t size) {
    if (size < n->size) {
        int rc = ext_replace(n, size, UINT64_MAX, NULL);
        if (rc) return rc;
    }
    n->size = size;
    return 0;
}

/* Handles: inode number + the data file's generation, little endian. */

static void make_handle(const struct demofs *fs, uint64_t ino, handle_t *h) {
    memset(h, 0, sizeof *h);
    h->len = HANDLE_LEN;
    put_le(h->data, ino, 8);
    put_le(h->data + 8, fs->generation, 8);
}

static int get_inode(const struct demofs *fs, const handle_t *h, struct inode **out) {
    if (!h || h->len != HANDLE_LEN) return -DMANOEL_VFS_ERR_BAD_HANDLE;
    if (get_le(h->data + 8, 8) != fs->generation) return -ESTALE;
    struct inode *n = itab_get(fs, get_le(h->data, 8));
    if (!n) return -ESTALE;
    *out = n;
    return 0;
}

static int get_dir(const struct demofs *fs, const handle_t *h, struct inode **out) {
    int rc = get_inode(fs, h, out);
    if (rc) return rc;
    return (*out)->type == DMANOEL_VFS_DIRECTORY ? 0 : -ENOTDIR;
}

static void fill_attr(const struct demofs *fs, const struct inode *n, attr_t *a) {
    if (!a) return;
    memset(a, 0, sizeof *a);
    a->valid = DMANOEL_VFS_ATTR_ALL;
    a->type = n->type;
    a->mode = n->mode;
    a->nlink = n->nlink;
    a->uid = n->uid;
    a->gid = n->gid;
    a->rdev_major = n->rdev_major;
    a->rdev_minor = n->rdev_minor;
    a->size = n->type == DMANOEL_VFS_SYMLINK ? n->target_len : n->size;
    a->space_used = n->space;
    a->fsid = fs->fsid;
    a->fileid = n->ino;
    a->change = n->change;
    a->atime = n->atime;
    a->mtime = n->mtime;
    a->ctime = n->ctime;
    a->birthtime = n->birth;
}

static void touch(struct demofs *fs, struct inode *n, int data, ts_t now) {
    n->change = ++fs->change;
    n->ctime = now;
    if (data) n->mtime = now;
}

static int check_name(const char *name) {
    if (!name) return -EINVAL;
    size_t len = strlen(name);
    if (len > DMANOEL_VFS_NAME_MAX) return -ENAMETOOLONG;
    if (len == 0 || strcmp(name, ".") == 0 || strcmp(name, "..") == 0 || memchr(name, '/', len)) return -EINVAL;
    return 0;
}

/* In a sticky directory only root, the entry's owner or the directory's owner may remove or
   rename an entry. */
static int check_sticky(const struct inode *dir, const struct inode *n, const cred_t *cred) {
    if ((dir->mode & 01000) && cred && cred->uid != 0 && cred->uid != n->uid && cred->uid != dir->uid) return -EPERM;
    return 0;
}

/* ─── Applying records (live and at replay) ──────────────────────────────────────────────── */

struct create_rec {
    uint64_t parent, ino, verifier;
    const char *name, *target;
    uint32_t name_len, target_len, type, mode, uid, gid, rdev_major, rdev_minor, has_verifier;
    ts_t atime, mtime, now;
};

static int apply_create(struct demofs *fs, const struct create_rec *r) {
    struct inode *dir = itab_get(fs, r->parent);
    if (!dir || dir->type != DMANOEL_VFS_DIRECTORY) return -ENOTDIR;
    if (dir_find(dir, r->name, r->name_len) || itab_get(fs, r->ino) || r->ino <= ROOT_INO) return -EEXIST;
    if (r->type < DMANOEL_VFS_REGULAR || r->type > DMANOEL_VFS_SOCKET) return -EINVAL;
    struct inode *n = calloc(1, sizeof *n);
    if (!n) return -ENOMEM;
    n->ino = r->ino;
    n->type = r->type;
    n->mode = r->mode & 07777;
    n->uid = r->uid;
    n->gid = r->gid;
    n->rdev_major = r->rdev_major;
    n->rdev_minor = r->rdev_minor;
    n->nlink = r->type == DMANOEL_VFS_DIRECTORY ? 2 : 1;
    n->birth = n->ctime = r->now;
    n->atime = r->atime;
    n->mtime = r->mtime;
    n->has_verifier = r->has_verifier != 0;
    n->verifier = r->verifier;
    if (r->type == DMANOEL_VFS_SYMLINK) {
        n->target = malloc((size_t)r->target_len + 1);
        if (!n->target) {
            free(n);
            return -ENOMEM;
        }
        memcpy(n->target, r->target, r->target_len);
        n->target[r->target_len] = 0;
        n->target_len = r->target_len;
    }
    if (dir_add(dir, r->name, r->name_len, r->ino) != 0) {
        inode_free(n);
        return -ENOMEM;
    }
    n->change = ++fs->change;
    if (r->type == DMANOEL_VFS_DIRECTORY) {
        n->parent = dir->ino;
        n->next_cookie = 1;
        dir->nlink++;
    }
    itab_put(fs, n);
    dir->mtime = r->now;
    touch(fs, dir, 0, r->now);
    if (r->ino >= fs->next_ino) fs->next_ino = r->ino + 1;
    return 0;
}

struct setattr_rec {
    uint64_t ino, size;
    uint32_t set, mode, uid, gid;
    ts_t atime, mtime, now;
};

static int apply_setattr(struct demofs *fs, const struct setattr_rec *r) {
    struct inode *n = itab_get(fs, r->ino);
    if (!n) return -ESTALE;
    if (r->set & DMANOEL_VFS_SET_SIZE) {
        if (n->type != DMANOEL_VFS_REGULAR) return -EINVAL;
        int rc = file_truncate(n, r->size);
        if (rc) return rc;
    }
    if (r->set & DMANOEL_VFS_SET_MODE) n->mode = r->mode & 07777;
    if (r->set & DMANOEL_VFS_SET_UID) n->uid = r->uid;
    if (r->set & DMANOEL_VFS_SET_GID) n->gid = r->gid;
    if (r->set & DMANOEL_VFS_SET_ATIME) n->atime = r->atime;
    else if (r->set & DMANOEL_VFS_SET_ATIME_NOW) n->atime = r->now;
    if (r->set & DMANOEL_VFS_SET_MTIME) n->mtime = r->mtime;
    else if (r->set & DMANOEL_VFS_SET_MTIME_NOW) n->mtime = r->now;
    else if (r->set & DMANOEL_VFS_SET_SIZE) n->mtime = r->now;
    if (r->set) touch(fs, n, 0, r->now);
    return 0;
}

static int apply_write(struct demofs *fs, uint64_t ino, uint64_t off, uint64_t len, uint64_t log, ts_t now) {
    struct inode *n = itab_get(fs, ino);
    if (!n) return -ESTALE;
    if (n->type != DMANOEL_VFS_REGULAR) return -EINVAL;
    if (len) {
        struct extent e = {off, len, log};
        int rc = ext_replace(n, off, off + len, &e);
        if (rc) return rc;
        if (off + len > n->size) n->size = off + len;
    }
    touch(fs, n, 1, now);
    return 0;
}

static int apply_link(struct demofs *fs, uint64_t ino, uint64_t dirino, const char *name, uint32_t len, ts_t now) {
    struct inode *n = itab_get(fs, ino), *dir = itab_get(fs, dirino);
    if (!n || !dir) return -ESTALE;
    if (dir->type != DMANOEL_VFS_DIRECTORY) return -ENOTDIR;
    if (n->type == DMANOEL_VFS_DIRECTORY) return -EISDIR;
    if (dir_find(dir, name, len)) return -EEXIST;
    int rc = dir_add(dir, name, len, ino);
    if (rc) return rc;
    n->nlink++;
    touch(fs, n, 0, now);
    dir->mtime = now;
    touch(fs, dir, 0, now);
    return 0;
}

static int apply_remove(struct demofs *fs, uint64_t dirino, const char *name, uint32_t len, ts_t now) {
    struct inode *dir = itab_get(fs, dirino);
    if (!dir || dir->type != DMANOEL_VFS_DIRECTORY) return -ENOTDIR;
    struct dent *e = dir_find(dir, name, len);
    if (!e) return -ENOENT;
    struct inode *n = itab_get(fs, e->ino);
    if (!n) return -ESTALE;
    if (n->type == DMANOEL_VFS_DIRECTORY) {
        if (n->live_ents) return -ENOTEMPTY;
        dir_del(dir, e);
        dir->nlink--;
        dir->mtime = now;
        touch(fs, dir, 0, now);
        n->nlink = 0;
    } else {
        dir_del(dir, e);
        dir->mtime = now;
        touch(fs, dir, 0, now);
        n->nlink--;
        touch(fs, n, 0, now);
    }
    release(fs, n);
    return 0;
}

static int apply_rename(struct demofs *fs, uint64_t from, const char *name, uint32_t len, uint64_t to,
                        const char *new_name, uint32_t new_len, ts_t now) {
    struct inode *fd = itab_get(fs, from), *td = itab_get(fs, to);
    if (!fd || !td || fd->type != DMANOEL_VFS_DIRECTORY || td->type != DMANOEL_VFS_DIRECTORY) return -ENOTDIR;
    struct dent *e = dir_find(fd, name, len);
    if (!e) return -ENOENT;
    struct inode *n = itab_get(fs, e->ino);
    if (!n) return -ESTALE;
    struct dent *ex = dir_find(td, new_name, new_len);
    if (ex && ex->ino == n->ino) return 0;
    if (td->nents == td->cap_ents) {
        /* make room first so nothing below can fail half-way */
        size_t cap = td->cap_ents ? td->cap_ents * 2 : 8;
        struct dent **ents = realloc(td->ents, cap * sizeof *ents);
        if (!ents) return -ENOMEM;
        td->ents = ents;
        td->cap_ents = cap;
    }
    if (ex) {
        struct inode *x = itab_get(fs, ex->ino);
        if (!x) return -ESTALE;
        if (x->type == DMANOEL_VFS_DIRECTORY && x->live_ents) return -ENOTEMPTY;
        dir_del(td, ex);
        if (x->type == DMANOEL_VFS_DIRECTORY) {
            x->nlink = 0;
            td->nlink--;
        } else {
            x->nlink--;
            touch(fs, x, 0, now);
        }
        release(fs, x);
    }
    uint64_t ino = n->ino;
    dir_del(fd, e);
    if (dir_add(td, new_name, new_len, ino) != 0) return -ENOMEM;
    if (n->type == DMANOEL_VFS_DIRECTORY && fd != td) {
        n->parent = td->ino;
        fd->nlink--;
        td->nlink++;
    }
    touch(fs, n, 0, now);
    fd->mtime = now;
    touch(fs, fd, 0, now);
    if (td != fd) {
        td->mtime = now;
        touch(fs, td, 0, now);
    }
    return 0;
}

static struct xattr *xattr_find(const struct inode *n, const char *name, size_t len) {
    for (struct xattr *x = n->xattrs; x; x = x->next)
        if (strlen(x->name) == len && memcmp(x->name, name, len) == 0) return x;
    return NULL;
}

static int apply_xattr_set(struct demofs *fs, uint64_t ino, const char *name, uint32_t len, const uint8_t *value,
                           uint32_t vlen, ts_t now) {
    struct inode *n = itab_get(fs, ino);
    if (!n) return -ESTALE;
    uint8_t *copy = malloc(vlen ? vlen : 1);
    if (!copy) return -ENOMEM;
    if (vlen) memcpy(copy, value, vlen);
    struct xattr *x = xattr_find(n, name, len);
    if (!x) {
        x = calloc(1, sizeof *x);
        char *nm = malloc((size_t)len + 1);
        if (!x || !nm) {
            free(x);
            free(nm);
            free(copy);
            return -ENOMEM;
        }
        memcpy(nm, name, len);
        nm[len] = 0;
        x->name = nm;
        x->next = n->xattrs;
        n->xattrs = x;
    }
    free(x->value);
    x->value = copy;
    x->len = vlen;
    touch(fs, n, 0, now);
    return 0;
}

static int apply_xattr_remove(struct demofs *fs, uint64_t ino, const char *name, uint32_t len, ts_t now) {
    struct inode *n = itab_get(fs, ino);
    if (!n) return -ESTALE;
    for (struct xattr **p = &n->xattrs; *p; p = &(*p)->next) {
        struct xattr *x = *p;
        if (strlen(x->name) == len && memcmp(x->name, name, len) == 0) {
            *p = x->next;
            free(x->name);
            free(x->value);
            free(x);
            touch(fs, n, 0, now);
            return 0;
        }
    }
    return -ENODATA;
}

static int apply_punch(struct demofs *fs, uint64_t ino, uint64_t off, uint64_t len, ts_t now) {
    struct inode *n = itab_get(fs, ino);
    if (!n) return -ESTALE;
    if (n->type != DMANOEL_VFS_REGULAR) return -EINVAL;
    uint64_t end = off + len < off ? UINT64_MAX : off + len;
    if (end > n->size) end = n->size;
    if (off < end) {
        int rc = ext_replace(n, off, end, NULL);
        if (rc) return rc;
    }
    touch(fs, n, 1, now);
    return 0;
}

static int apply_allocate(struct demofs *fs, uint64_t ino, uint64_t end, ts_t now) {
    struct inode *n = itab_get(fs, ino);
    if (!n) return -ESTALE;
    if (n->type != DMANOEL_VFS_REGULAR) return -EINVAL;
    if (end > n->size) n->size = end;
    touch(fs, n, 0, now);
    return 0;
}

/* Decodes one record and applies it. `data_pos` is where the payload starts in the file. */
static int apply_record(struct demofs *fs, uint16_t type, const uint8_t *payload, size_t len, uint64_t data_pos) {
    struct cur c = {payload, len, 0, 0};
    uint32_t n1 = 0, n2 = 0;
    const uint8_t *s1, *s2;
    int rc;
    switch (type) {
    case REC_CREATE: {
        struct create_rec r;
        memset(&r, 0, sizeof r);
        r.parent = c_u64(&c);
        r.name = (const char *)c_bytes(&c, &r.name_len);
        r.ino = c_u64(&c);
        r.type = c_u32(&c);
        r.mode = c_u32(&c);
        r.uid = c_u32(&c);
        r.gid = c_u32(&c);
        r.rdev_major = c_u32(&c);
        r.rdev_minor = c_u32(&c);
        r.atime = c_time(&c);
        r.mtime = c_time(&c);
        r.now = c_time(&c);
        r.has_verifier = c_u32(&c);
        r.verifier = c_u64(&c);
        r.target = (const char *)c_bytes(&c, &r.target_len);
        if (c.bad) return -EIO;
        return apply_create(fs, &r);
    }
    case REC_SETATTR: {
        struct setattr_rec r;
        r.ino = c_u64(&c);
        r.set = c_u32(&c);
        r.mode = c_u32(&c);
        r.uid = c_u32(&c);
        r.gid = c_u32(&c);
        r.size = c_u64(&c);
        r.atime = c_time(&c);
        r.mtime = c_time(&c);
        r.now = c_time(&c);
        if (c.bad) return -EIO;
        return apply_setattr(fs, &r);
    }
    case REC_WRITE: {
        uint64_t ino = c_u64(&c), off = c_u64(&c);
        ts_t now = c_time(&c);
        uint32_t count = c_u32(&c);
        if (c.bad || len - c.pos != count) return -EIO;
        return apply_write(fs, ino, off, count, data_pos + c.pos, now);
    }
    case REC_LINK: {
        uint64_t ino = c_u64(&c), dir = c_u64(&c);
        s1 = c_bytes(&c, &n1);
        ts_t now = c_time(&c);
        if (c.bad) return -EIO;
        return apply_link(fs, ino, dir, (const char *)s1, n1, now);
    }
    case REC_REMOVE: {
        uint64_t dir = c_u64(&c);
        s1 = c_bytes(&c, &n1);
        ts_t now = c_time(&c);
        if (c.bad) return -EIO;
        return apply_remove(fs, dir, (const char *)s1, n1, now);
    }
    case REC_RENAME: {
        uint64_t from = c_u64(&c);
        s1 = c_bytes(&c, &n1);
        uint64_t to = c_u64(&c);
        s2 = c_bytes(&c, &n2);
        ts_t now = c_time(&c);
        if (c.bad) return -EIO;
        return apply_rename(fs, from, (const char *)s1, n1, to, (const char *)s2, n2, now);
    }
    case REC_XATTR_SET: {
        uint64_t ino = c_u64(&c);
        s1 = c_bytes(&c, &n1);
        s2 = c_bytes(&c, &n2);
        ts_t now = c_time(&c);
        if (c.bad) return -EIO;
        return apply_xattr_set(fs, ino, (const char *)s1, n1, s2, n2, now);
    }
    case REC_XATTR_REMOVE: {
        uint64_t ino = c_u64(&c);
        s1 = c_bytes(&c, &n1);
        ts_t now = c_time(&c);
        if (c.bad) return -EIO;
        return apply_xattr_remove(fs, ino, (const char *)s1, n1, now);
    }
    case REC_PUNCH: {
        uint64_t ino = c_u64(&c), off = c_u64(&c), plen = c_u64(&c);
        ts_t now = c_time(&c);
        if (c.bad) return -EIO;
        return apply_punch(fs, ino, off, plen, now);
    }
    case REC_ALLOCATE: {
        uint64_t ino = c_u64(&c), end = c_u64(&c);
        ts_t now = c_time(&c);
        if (c.bad) return -EIO;
        return apply_allocate(fs, ino, end, now);
    }
    default:
        rc = -EIO;
        break;
    }
    return rc;
}

/* ─── The data file ──────────────────────────────────────────────────────────────────────── */

static int pread_full(int fd, void *buf, size_t count, uint64_t offset) {
    uint8_t *p = buf;
    while (count) {
        ssize_t n = pread(fd, p, count, (off_t)offset);
        if (n < 0) {
            if (errno == EINTR) continue;
            return -errno;
        }
        if (n == 0) return -EIO; /* the data file is shorter than the index says */
        p += n;
        count -= (size_t)n;
        offset += (uint64_t)n;
    }
    return 0;
}

static int pwritev_full(int fd, struct iovec *iov, int iovcnt, uint64_t offset) {
    while (iovcnt > 0) {
        ssize_t n = pwritev(fd, iov, iovcnt, (off_t)offset);
        if (n < 0) {
            if (errno == EINTR) continue;
            return -errno;
        }
        if (n == 0) return -EIO;
        offset += (uint64_t)n;
        while (iovcnt > 0 && (size_t)n >= iov->iov_len) {
            n -= (ssize_t)iov->iov_len;
            iov++;
            iovcnt--;
        }
        if (iovcnt > 0) {
            iov->iov_base = (uint8_t *)iov->iov_base + n;
            iov->iov_len -= (size_t)n;
        }
    }
    return 0;
}

/* Appends one record: `fixed` then `data` as its payload. Sets `*data_pos` (if given) to where
   `data` landed. On failure the file is cut back so no partial record remains. */
static int log_append(struct demofs *fs, uint16_t type, const struct buf *fixed, const void *data, size_t dlen,
                      uint64_t *data_pos) {
    if (fixed->oom) return -ENOMEM;
    if (fixed->len + dlen > UINT32_MAX) return -EFBIG;
    uint32_t plen = (uint32_t)(fixed->len + dlen);
    uint8_t hdr[RECORD_HEADER];
    put_le(hdr, RECORD_MAGIC, 4);
    put_le(hdr + 4, plen, 4);
    put_le(hdr + 12, type, 2);
    put_le(hdr + 14, 0, 2);
    uint32_t crc = crc32c(0, hdr + 12, 4);
    crc = crc32c(crc, fixed->p, fixed->len);
    if (dlen) crc = crc32c(crc, data, dlen);
    put_le(hdr + 8, crc, 4);
    struct iovec iov[3] = {
        {hdr, RECORD_HEADER},
        {fixed->p, fixed->len},
        {(void *)data, dlen},
    };
    int rc = pwritev_full(fs->fd, iov, dlen ? 3 : 2, fs->end);
    if (rc) {
        if (ftruncate(fs->fd, (off_t)fs->end) != 0) fs->broken = 1;
        return rc;
    }
    if (data_pos) *data_pos = fs->end + RECORD_HEADER + fixed->len;
    fs->end += RECORD_HEADER + plen;
    return 0;
}

/* Appends a record and applies it: the one path every mutation takes. */
static int commit_record(struct demofs *fs, uint16_t type, struct buf *fixed, const void *data, size_t dlen) {
    uint64_t data_pos = 0;
    int rc = log_append(fs, type, fixed, data, dlen, &data_pos);
    if (rc == 0) {
        /* The payload is `fixed` followed by `data`; decoding reads only the fixed part (a WRITE
           record's data is referenced by its position in the file, never read back here). */
        rc = apply_record(fs, type, fixed->p, fixed->len + dlen, data_pos - fixed->len);
        if (rc) fs->broken = 1; /* the log has it, memory does not: stop before they diverge */
    }
    free(fixed->p);
    fixed->p = NULL;
    return rc;
}

static int sync_file(struct demofs *fs) {
    while (fdatasync(fs->fd) != 0) {
        if (errno != EINTR) return -errno;
    }
    return 0;
}

static int sync_metadata(struct demofs *fs, int rc) {
    if (rc == 0 && fs->sync_metadata) return sync_file(fs);
    return rc;
}

/* ─── Operations ─────────────────────────────────────────────────────────────────────────── */

#define ENTER(fs)                                                                                                      \
    struct demofs *fs = instance;                                                                                      \
    pthread_mutex_lock(&fs->lock);                                                                                     \
    if (fs->broken) {                                                                                                  \
        pthread_mutex_unlock(&fs->lock);                                                                               \
        return -EIO;                                                                                                   \
    }

#define LEAVE(fs, rc)                                                                                                  \
    do {                                                                                                               \
        pthread_mutex_unlock(&fs->lock);                                                                               \
        return (rc);                                                                                                   \
    } while (0)

static int op_root_handle(void *instance, handle_t *out) {
    struct demofs *fs = instance;
    make_handle(fs, ROOT_INO, out);
    return 0;
}

static int op_getattr(void *instance, const cred_t *cred, const handle_t *h, uint32_t mask, attr_t *out) {
    (void)cred;
    (void)mask;
    ENTER(fs);
    struct inode *n;
    int rc = get_inode(fs, h, &n);
    if (rc == 0) fill_attr(fs, n, out);
    LEAVE(fs, rc);
}

static int op_lookup(void *instance, const cred_t *cred, const handle_t *dirh, const char *name, uint32_t mask,
                     handle_t *out, attr_t *attr) {
    (void)cred;
    (void)mask;
    ENTER(fs);
    struct inode *dir, *n;
    int rc = get_dir(fs, dirh, &dir);
    if (rc) LEAVE(fs, rc);
    size_t len = strlen(name);
    if (len > DMANOEL_VFS_NAME_MAX) LEAVE(fs, -ENAMETOOLONG);
    uint64_t ino;
    if (strcmp(name, ".") == 0) {
        ino = dir->ino;
    } else if (strcmp(name, "..") == 0) {
        ino = dir->parent;
    } else {
        struct dent *e = dir_find(dir, name, len);
        if (!e) LEAVE(fs, -ENOENT);
        ino = e->ino;
    }
    n = itab_get(fs, ino);
    if (!n) LEAVE(fs, -ESTALE);
    make_handle(fs, ino, out);
    fill_attr(fs, n, attr);
    LEAVE(fs, 0);
}

static void put_setattr(struct buf *b, uint64_t ino, uint32_t set, uint32_t mode, uint32_t uid, uint32_t gid,
                        uint64_t size, ts_t atime, ts_t mtime, ts_t now) {
    b_u64(b, ino);
    b_u32(b, set);
    b_u32(b, mode);
    b_u32(b, uid);
    b_u32(b, gid);
    b_u64(b, size);
    b_time(b, atime);
    b_time(b, mtime);
    b_time(b, now);
}

static int op_setattr(void *instance, const cred_t *cred, const handle_t *h, const struct dmanoel_vfs_setattr *ch,
                      const ts_t *guard_ctime, attr_t *before, attr_t *after) {
    (void)cred;
    ENTER(fs);
    struct inode *n;
    int rc = get_inode(fs, h, &n);
    if (rc) LEAVE(fs, rc);
    fill_attr(fs, n, before);
    if (guard_ctime && !ts_eq(*guard_ctime, n->ctime)) LEAVE(fs, -DMANOEL_VFS_ERR_NOT_SYNC);
    uint32_t set = ch->set & 0xff;
    if (set & DMANOEL_VFS_SET_SIZE) {
        if (n->type == DMANOEL_VFS_DIRECTORY) LEAVE(fs, -EISDIR);
        if (n->type != DMANOEL_VFS_REGULAR) LEAVE(fs, -EINVAL);
        if (ch->size > (uint64_t)INT64_MAX) LEAVE(fs, -EFBIG);
    }
    if (set) {
        struct buf b = {0};
        put_setattr(&b, n->ino, set, ch->mode, ch->uid, ch->gid, ch->size, ch->atime, ch->mtime, now_ts());
        rc = commit_record(fs, REC_SETATTR, &b, NULL, 0);
        if (rc) LEAVE(fs, rc);
    }
    fill_attr(fs, n, after);
    pthread_mutex_unlock(&fs->lock);
    return set ? sync_metadata(fs, 0) : 0;
}

static int op_create(void *instance, const cred_t *cred, const handle_t *dirh, const char *name,
                     const struct dmanoel_vfs_create *args, handle_t *out, attr_t *attr, struct dmanoel_vfs_wcc *wcc,
                     int *created) {
    int rc = check_name(name);
    if (rc) return rc;
    ENTER(fs);
    struct inode *dir;
    rc = get_dir(fs, dirh, &dir);
    if (rc) LEAVE(fs, rc);
    fill_attr(fs, dir, &wcc->before);
    size_t len = strlen(name);
    ts_t now = now_ts();
    struct dent *e = dir_find(dir, name, len);
    if (e) {
        struct inode *x = itab_get(fs, e->ino);
        if (!x) LEAVE(fs, -ESTALE);
        int wrote = 0;
        switch (args->how) {
        case DMANOEL_VFS_CREATE_GUARDED:
            LEAVE(fs, -EEXIST);
        case DMANOEL_VFS_CREATE_EXCLUSIVE:
            if (!x->has_verifier || x->verifier != args->verifier) LEAVE(fs, -EEXIST);
            break;
        default:
            if (args->type != DMANOEL_VFS_REGULAR) LEAVE(fs, -EEXIST);
            if (x->type != DMANOEL_VFS_REGULAR) LEAVE(fs, x->type == DMANOEL_VFS_DIRECTORY ? -EISDIR : -EEXIST);
            if (args->attr.set & DMANOEL_VFS_SET_SIZE) {
                if (args->attr.size > (uint64_t)INT64_MAX) LEAVE(fs, -EFBIG);
                struct buf b = {0};
                put_setattr(&b, x->ino, DMANOEL_VFS_SET_SIZE, 0, 0, 0, args->attr.size, now, now, now);
                rc = commit_record(fs, REC_SETATTR, &b, NULL, 0);
                if (rc) LEAVE(fs, rc);
                wrote = 1;
            }
            break;
        }
        make_handle(fs, x->ino, out);
        fill_attr(fs, x, attr);
        fill_attr(fs, dir, &wcc->after);
        *created = 0;
        pthread_mutex_unlock(&fs->lock);
        return wrote ? sync_metadata(fs, 0) : 0;
    }

    uint32_t type = args->type;
    switch (type) {
    case DMANOEL_VFS_REGULAR:
    case DMANOEL_VFS_DIRECTORY:
    case DMANOEL_VFS_SYMLINK:
    case DMANOEL_VFS_BLOCK_DEVICE:
    case DMANOEL_VFS_CHARACTER_DEVICE:
    case DMANOEL_VFS_FIFO:
    case DMANOEL_VFS_SOCKET:
        break;
    default:
        LEAVE(fs, -EINVAL);
    }
    const char *target = "";
    if (type == DMANOEL_VFS_SYMLINK) {
        if (!args->symlink_target) LEAVE(fs, -EINVAL);
        target = args->symlink_target;
        if (strlen(target) > MAX_SYMLINK) LEAVE(fs, -ENAMETOOLONG);
    }
    const struct dmanoel_vfs_setattr *ia = &args->attr;
    uint32_t mode = type == DMANOEL_VFS_DIRECTORY ? 0755 : type == DMANOEL_VFS_SYMLINK ? 0777 : 0644;
    if (ia->set & DMANOEL_VFS_SET_MODE) mode = ia->mode;
    uint64_t ino = fs->next_ino;
    int is_device = type == DMANOEL_VFS_BLOCK_DEVICE || type == DMANOEL_VFS_CHARACTER_DEVICE;
    struct buf b = {0};
    b_u64(&b, dir->ino);
    b_bytes(&b, name, (uint32_t)len);
    b_u64(&b, ino);
    b_u32(&b, type);
    b_u32(&b, mode & 07777);
    b_u32(&b, (ia->set & DMANOEL_VFS_SET_UID) ? ia->uid : (cred ? cred->uid : 0));
    b_u32(&b, (ia->set & DMANOEL_VFS_SET_GID) ? ia->gid : (cred ? cred->gid : 0));
    b_u32(&b, is_device ? args->rdev_major : 0);
    b_u32(&b, is_device ? args->rdev_minor : 0);
    b_time(&b, (ia->set & DMANOEL_VFS_SET_ATIME) ? ia->atime : now);
    b_time(&b, (ia->set & DMANOEL_VFS_SET_MTIME) ? ia->mtime : now);
    b_time(&b, now);
    b_u32(&b, args->how == DMANOEL_VFS_CREATE_EXCLUSIVE);
    b_u64(&b, args->how == DMANOEL_VFS_CREATE_EXCLUSIVE ? args->verifier : 0);
    b_bytes(&b, target, (uint32_t)strlen(target));
    rc = commit_record(fs, REC_CREATE, &b, NULL, 0);
    if (rc) LEAVE(fs, rc);
    struct inode *n = itab_get(fs, ino);
    make_handle(fs, ino, out);
    fill_attr(fs, n, attr);
    fill_attr(fs, dir, &wcc->after);
    *created = 1;
    pthread_mutex_unlock(&fs->lock);
    return sync_metadata(fs, 0);
}

static int file_read(struct demofs *fs, const struct inode *n, uint64_t off, uint8_t *buf, size_t count, size_t *got,
                     int *eof) {
    if (off >= n->size) {
        *got = 0;
        *eof = 1;
        return 0;
    }
    uint64_t end = (uint64_t)count > n->size - off ? n->size : off + count;
    uint64_t pos = off;
    size_t i = ext_first_ending_after(n, pos);
    while (pos < end) {
        if (i < n->next && n->ext[i].off <= pos) {
            const struct extent *e = &n->ext[i];
            uint64_t stop = e->off + e->len < end ? e->off + e->len : end;
            int rc = pread_full(fs->fd, buf + (pos - off), (size_t)(stop - pos), e->log + (pos - e->off));
            if (rc) return rc;
            pos = stop;
            i++;
        } else {
            uint64_t stop = i < n->next && n->ext[i].off < end ? n->ext[i].off : end;
            memset(buf + (pos - off), 0, (size_t)(stop - pos));
            pos = stop;
        }
    }
    *got = (size_t)(end - off);
    *eof = end == n->size;
    return 0;
}

static int op_read(void *instance, const cred_t *cred, const handle_t *h, uint64_t offset, void *buf, size_t count,
                   size_t *bytes_read, int *eof, attr_t *after) {
    (void)cred;
    ENTER(fs);
    struct inode *n;
    int rc = get_inode(fs, h, &n);
    if (rc) LEAVE(fs, rc);
    if (n->type == DMANOEL_VFS_DIRECTORY) LEAVE(fs, -EISDIR);
    if (n->type != DMANOEL_VFS_REGULAR) LEAVE(fs, -EINVAL);
    rc = file_read(fs, n, offset, buf, count, bytes_read, eof);
    if (rc) LEAVE(fs, rc);
    n->atime = now_ts(); /* kept in memory only: logging every read would double the I/O */
    fill_attr(fs, n, after);
    LEAVE(fs, 0);
}

static int op_write(void *instance, const cred_t *cred, const handle_t *h, uint64_t offset, const void *buf,
                    size_t count, uint32_t stability, size_t *written, uint32_t *stability_done, attr_t *before,
                    attr_t *after) {
    (void)cred;
    ENTER(fs);
    struct inode *n;
    int rc = get_inode(fs, h, &n);
    if (rc) LEAVE(fs, rc);
    if (n->type == DMANOEL_VFS_DIRECTORY) LEAVE(fs, -EISDIR);
    if (n->type != DMANOEL_VFS_REGULAR) LEAVE(fs, -EINVAL);
    if (offset > (uint64_t)INT64_MAX || (uint64_t)count > (uint64_t)INT64_MAX - offset) LEAVE(fs, -EFBIG);
    if ((uint64_t)count > UINT32_MAX - 64) LEAVE(fs, -EINVAL);
    fill_attr(fs, n, before);
    struct buf b = {0};
    b_u64(&b, n->ino);
    b_u64(&b, offset);
    b_time(&b, now_ts());
    b_u32(&b, (uint32_t)count);
    uint64_t ino = n->ino;
    rc = commit_record(fs, REC_WRITE, &b, buf, count);
    if (rc) LEAVE(fs, rc);
    fill_attr(fs, itab_get(fs, ino), after);
    pthread_mutex_unlock(&fs->lock);
    *written = count;
    if (stability == DMANOEL_VFS_UNSTABLE) {
        *stability_done = DMANOEL_VFS_UNSTABLE;
        return 0;
    }
    *stability_done = DMANOEL_VFS_FILE_SYNC; /* one file holds data and metadata alike */
    return sync_file(fs);
}

static int op_commit(void *instance, const cred_t *cred, const handle_t *h, uint64_t offset, uint64_t count,
                     attr_t *after) {
    (void)cred;
    (void)offset;
    (void)count;
    ENTER(fs);
    struct inode *n;
    int rc = get_inode(fs, h, &n);
    if (rc) LEAVE(fs, rc);
    fill_attr(fs, n, after);
    pthread_mutex_unlock(&fs->lock);
    return sync_file(fs);
}

static uint64_t dir_verifier(const struct demofs *fs, const struct inode *dir) {
    return (dir->ino * GOLDEN) ^ fs->generation;
}

static int op_readdir(void *instance, const cred_t *cred, const handle_t *dirh, uint64_t cookie, uint64_t verifier,
                      uint32_t max_entries, uint32_t mask, dmanoel_vfs_filldir_fn fill, void *context,
                      uint64_t *verifier_out, int *eof, attr_t *dir_attr) {
    (void)cred;
    ENTER(fs);
    struct inode *dir;
    int rc = get_dir(fs, dirh, &dir);
    if (rc) LEAVE(fs, rc);
    uint64_t current = dir_verifier(fs, dir);
    if (cookie != 0 && verifier != 0 && verifier != current) LEAVE(fs, -DMANOEL_VFS_ERR_BAD_COOKIE);
    if (cookie >= dir->next_cookie) LEAVE(fs, -DMANOEL_VFS_ERR_BAD_COOKIE);
    size_t i = dir_first_after(dir, cookie);
    uint32_t delivered = 0;
    for (; i < dir->nents; i++) {
        const struct dent *e = dir->ents[i];
        if (!e->live) continue;
        if (delivered >= max_entries) break;
        const struct inode *n = itab_get(fs, e->ino);
        if (!n) continue;
        handle_t h;
        attr_t a;
        struct dmanoel_vfs_dirent d;
        d.name = e->name;
        d.name_len = e->name_len;
        d.type = n->type;
        d.fileid = n->ino;
        d.cookie = e->cookie;
        d.handle = NULL;
        d.attr = NULL;
        if (mask) {
            make_handle(fs, n->ino, &h);
            fill_attr(fs, n, &a);
            d.handle = &h;
            d.attr = &a;
        }
        if (fill(context, &d) != 0) break;
        delivered++;
    }
    while (i < dir->nents && !dir->ents[i]->live) i++;
    *eof = i == dir->nents;
    *verifier_out = current;
    fill_attr(fs, dir, dir_attr);
    LEAVE(fs, 0);
}

static int op_readlink(void *instance, const cred_t *cred, const handle_t *h, char *buf, size_t buf_len,
                       size_t *target_len) {
    (void)cred;
    ENTER(fs);
    struct inode *n;
    int rc = get_inode(fs, h, &n);
    if (rc) LEAVE(fs, rc);
    if (n->type != DMANOEL_VFS_SYMLINK) LEAVE(fs, -EINVAL);
    *target_len = n->target_len;
    if (n->target_len > buf_len) LEAVE(fs, -ERANGE);
    memcpy(buf, n->target, n->target_len);
    LEAVE(fs, 0);
}

static void put_name_record(struct buf *b, const char *name, ts_t now) {
    b_bytes(b, name, (uint32_t)strlen(name));
    b_time(b, now);
}

static int op_link(void *instance, const cred_t *cred, const handle_t *h, const handle_t *dirh, const char *name,
                   attr_t *file_after, struct dmanoel_vfs_wcc *wcc) {
    (void)cred;
    int rc = check_name(name);
    if (rc) return rc;
    ENTER(fs);
    struct inode *n, *dir;
    if ((rc = get_inode(fs, h, &n)) || (rc = get_dir(fs, dirh, &dir))) LEAVE(fs, rc);
    if (n->type == DMANOEL_VFS_DIRECTORY) LEAVE(fs, -EISDIR);
    if (dir_find(dir, name, strlen(name))) LEAVE(fs, -EEXIST);
    if (n->nlink >= MAX_LINKS) LEAVE(fs, -EMLINK);
    fill_attr(fs, dir, &wcc->before);
    struct buf b = {0};
    b_u64(&b, n->ino);
    b_u64(&b, dir->ino);
    put_name_record(&b, name, now_ts());
    rc = commit_record(fs, REC_LINK, &b, NULL, 0);
    if (rc) LEAVE(fs, rc);
    fill_attr(fs, n, file_after);
    fill_attr(fs, dir, &wcc->after);
    pthread_mutex_unlock(&fs->lock);
    return sync_metadata(fs, 0);
}

static int remove_common(void *instance, const cred_t *cred, const handle_t *dirh, const char *name,
                         struct dmanoel_vfs_wcc *wcc, int want_dir) {
    int rc = check_name(name);
    if (rc) return rc;
    ENTER(fs);
    struct inode *dir;
    if ((rc = get_dir(fs, dirh, &dir))) LEAVE(fs, rc);
    struct dent *e = dir_find(dir, name, strlen(name));
    if (!e) LEAVE(fs, -ENOENT);
    struct inode *n = itab_get(fs, e->ino);
    if (!n) LEAVE(fs, -ESTALE);
    if (want_dir) {
        if (n->type != DMANOEL_VFS_DIRECTORY) LEAVE(fs, -ENOTDIR);
        if (n->live_ents) LEAVE(fs, -ENOTEMPTY);
    } else if (n->type == DMANOEL_VFS_DIRECTORY) {
        LEAVE(fs, -EISDIR);
    }
    if ((rc = check_sticky(dir, n, cred))) LEAVE(fs, rc);
    fill_attr(fs, dir, &wcc->before);
    struct buf b = {0};
    b_u64(&b, dir->ino);
    put_name_record(&b, name, now_ts());
    rc = commit_record(fs, REC_REMOVE, &b, NULL, 0);
    if (rc) LEAVE(fs, rc);
    fill_attr(fs, dir, &wcc->after);
    pthread_mutex_unlock(&fs->lock);
    return sync_metadata(fs, 0);
}

static int op_remove(void *instance, const cred_t *cred, const handle_t *dirh, const char *name,
                     struct dmanoel_vfs_wcc *wcc) {
    return remove_common(instance, cred, dirh, name, wcc, 0);
}

static int op_rmdir(void *instance, const cred_t *cred, const handle_t *dirh, const char *name,
                    struct dmanoel_vfs_wcc *wcc) {
    return remove_common(instance, cred, dirh, name, wcc, 1);
}

static int op_rename(void *instance, const cred_t *cred, const handle_t *fromh, const char *name, const handle_t *toh,
                     const char *new_name, struct dmanoel_vfs_wcc *from_wcc, struct dmanoel_vfs_wcc *to_wcc) {
    int rc = check_name(name);
    if (rc == 0) rc = check_name(new_name);
    if (rc) return rc;
    ENTER(fs);
    struct inode *from, *to;
    if ((rc = get_dir(fs, fromh, &from)) || (rc = get_dir(fs, toh, &to))) LEAVE(fs, rc);
    struct dent *e = dir_find(from, name, strlen(name));
    if (!e) LEAVE(fs, -ENOENT);
    struct inode *n = itab_get(fs, e->ino);
    if (!n) LEAVE(fs, -ESTALE);
    fill_attr(fs, from, &from_wcc->before);
    fill_attr(fs, to, &to_wcc->before);
    struct dent *ex = dir_find(to, new_name, strlen(new_name));
    if (ex && ex->ino == n->ino) {
        from_wcc->after = from_wcc->before;
        to_wcc->after = to_wcc->before;
        LEAVE(fs, 0);
    }
    if (n->type == DMANOEL_VFS_DIRECTORY) {
        /* a directory may not move into its own subtree */
        uint64_t a = to->ino;
        for (;;) {
            if (a == n->ino) LEAVE(fs, -EINVAL);
            const struct inode *up = itab_get(fs, a);
            if (!up || up->parent == a) break;
            a = up->parent;
        }
    }
    if ((rc = check_sticky(from, n, cred))) LEAVE(fs, rc);
    if (ex) {
        struct inode *x = itab_get(fs, ex->ino);
        if (!x) LEAVE(fs, -ESTALE);
        int nd = n->type == DMANOEL_VFS_DIRECTORY, xd = x->type == DMANOEL_VFS_DIRECTORY;
        if (nd && !xd) LEAVE(fs, -ENOTDIR);
        if (!nd && xd) LEAVE(fs, -EISDIR);
        if (xd && x->live_ents) LEAVE(fs, -ENOTEMPTY);
        if ((rc = check_sticky(to, x, cred))) LEAVE(fs, rc);
    }
    struct buf b = {0};
    b_u64(&b, from->ino);
    b_bytes(&b, name, (uint32_t)strlen(name));
    b_u64(&b, to->ino);
    put_name_record(&b, new_name, now_ts());
    rc = commit_record(fs, REC_RENAME, &b, NULL, 0);
    if (rc) LEAVE(fs, rc);
    fill_attr(fs, from, &from_wcc->after);
    fill_attr(fs, to, &to_wcc->after);
    pthread_mutex_unlock(&fs->lock);
    return sync_metadata(fs, 0);
}

static int op_statfs(void *instance, const cred_t *cred, const handle_t *h, struct dmanoel_vfs_statfs *out) {
    (void)cred;
    ENTER(fs);
    struct inode *n;
    int rc = get_inode(fs, h, &n);
    if (rc) LEAVE(fs, rc);
    struct statvfs sv;
    if (fstatvfs(fs->fd, &sv) != 0) LEAVE(fs, -errno);
    memset(out, 0, sizeof *out);
    out->total_bytes = (uint64_t)sv.f_blocks * sv.f_frsize;
    out->free_bytes = (uint64_t)sv.f_bfree * sv.f_frsize;
    out->available_bytes = (uint64_t)sv.f_bavail * sv.f_frsize;
    out->total_files = 1ull << 32;
    out->free_files = out->total_files - fs->icount;
    out->available_files = out->free_files;
    out->max_name_length = DMANOEL_VFS_NAME_MAX;
    LEAVE(fs, 0);
}

static int op_getxattr(void *instance, const cred_t *cred, const handle_t *h, const char *name, void *buf,
                       size_t buf_len, size_t *value_len) {
    (void)cred;
    ENTER(fs);
    struct inode *n;
    int rc = get_inode(fs, h, &n);
    if (rc) LEAVE(fs, rc);
    const struct xattr *x = xattr_find(n, name, strlen(name));
    if (!x) LEAVE(fs, -ENODATA);
    *value_len = x->len;
    if (x->len > buf_len) LEAVE(fs, -ERANGE);
    if (x->len) memcpy(buf, x->value, x->len);
    LEAVE(fs, 0);
}

static int op_setxattr(void *instance, const cred_t *cred, const handle_t *h, const char *name, const void *value,
                       size_t value_len, uint32_t flags) {
    (void)cred;
    size_t len = name ? strlen(name) : 0;
    if (len == 0 || len > DMANOEL_VFS_NAME_MAX) return -EINVAL;
    if (value_len > MAX_XATTR_VALUE) return -ERANGE;
    ENTER(fs);
    struct inode *n;
    int rc = get_inode(fs, h, &n);
    if (rc) LEAVE(fs, rc);
    int exists = xattr_find(n, name, len) != NULL;
    if (flags == DMANOEL_VFS_XATTR_CREATE && exists) LEAVE(fs, -EEXIST);
    if (flags == DMANOEL_VFS_XATTR_REPLACE && !exists) LEAVE(fs, -ENODATA);
    struct buf b = {0};
    b_u64(&b, n->ino);
    b_bytes(&b, name, (uint32_t)len);
    b_bytes(&b, value, (uint32_t)value_len);
    b_time(&b, now_ts());
    rc = commit_record(fs, REC_XATTR_SET, &b, NULL, 0);
    pthread_mutex_unlock(&fs->lock);
    return sync_metadata(fs, rc);
}

static int cmp_names(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int op_listxattr(void *instance, const cred_t *cred, const handle_t *h, char *buf, size_t buf_len,
                        size_t *list_len) {
    (void)cred;
    ENTER(fs);
    struct inode *n;
    int rc = get_inode(fs, h, &n);
    if (rc) LEAVE(fs, rc);
    size_t count = 0, total = 0;
    for (const struct xattr *x = n->xattrs; x; x = x->next) {
        count++;
        total += strlen(x->name) + 1;
    }
    *list_len = total;
    if (total > buf_len) LEAVE(fs, -ERANGE);
    const char **names = malloc((count ? count : 1) * sizeof *names);
    if (!names) LEAVE(fs, -ENOMEM);
    size_t i = 0;
    for (const struct xattr *x = n->xattrs; x; x = x->next) names[i++] = x->name;
    qsort(names, count, sizeof *names, cmp_names);
    size_t at = 0;
    for (i = 0; i < count; i++) {
        size_t l = strlen(names[i]) + 1;
        memcpy(buf + at, names[i], l);
        at += l;
    }
    free(names);
    LEAVE(fs, 0);
}

static int op_removexattr(void *instance, const cred_t *cred, const handle_t *h, const char *name) {
    (void)cred;
    ENTER(fs);
    struct inode *n;
    int rc = get_inode(fs, h, &n);
    if (rc) LEAVE(fs, rc);
    size_t len = strlen(name);
    if (len > DMANOEL_VFS_NAME_MAX || !xattr_find(n, name, len)) LEAVE(fs, -ENODATA);
    struct buf b = {0};
    b_u64(&b, n->ino);
    b_bytes(&b, name, (uint32_t)len);
    b_time(&b, now_ts());
    rc = commit_record(fs, REC_XATTR_REMOVE, &b, NULL, 0);
    pthread_mutex_unlock(&fs->lock);
    return sync_metadata(fs, rc);
}

static int regular_file(const struct inode *n) {
    if (n->type == DMANOEL_VFS_REGULAR) return 0;
    return n->type == DMANOEL_VFS_DIRECTORY ? -EISDIR : -EINVAL;
}

static int op_allocate(void *instance, const cred_t *cred, const handle_t *h, uint64_t offset, uint64_t length) {
    (void)cred;
    ENTER(fs);
    struct inode *n;
    int rc = get_inode(fs, h, &n);
    if (rc == 0) rc = regular_file(n);
    if (rc) LEAVE(fs, rc);
    if (offset > (uint64_t)INT64_MAX || length > (uint64_t)INT64_MAX - offset) LEAVE(fs, -EFBIG);
    struct buf b = {0};
    b_u64(&b, n->ino);
    b_u64(&b, offset + length);
    b_time(&b, now_ts());
    rc = commit_record(fs, REC_ALLOCATE, &b, NULL, 0);
    pthread_mutex_unlock(&fs->lock);
    return sync_metadata(fs, rc);
}

static int op_deallocate(void *instance, const cred_t *cred, const handle_t *h, uint64_t offset, uint64_t length) {
    (void)cred;
    ENTER(fs);
    struct inode *n;
    int rc = get_inode(fs, h, &n);
    if (rc == 0) rc = regular_file(n);
    if (rc) LEAVE(fs, rc);
    struct buf b = {0};
    b_u64(&b, n->ino);
    b_u64(&b, offset);
    b_u64(&b, length);
    b_time(&b, now_ts());
    rc = commit_record(fs, REC_PUNCH, &b, NULL, 0);
    pthread_mutex_unlock(&fs->lock);
    return sync_metadata(fs, rc);
}

static int op_seek(void *instance, const cred_t *cred, const handle_t *h, uint64_t offset, uint32_t what,
                   uint64_t *result, int *eof) {
    (void)cred;
    ENTER(fs);
    struct inode *n;
    int rc = get_inode(fs, h, &n);
    if (rc == 0) rc = regular_file(n);
    if (rc) LEAVE(fs, rc);
    if (offset >= n->size) LEAVE(fs, -ENODATA);
    size_t i = ext_first_ending_after(n, offset);
    if (what == DMANOEL_VFS_SEEK_DATA) {
        if (i >= n->next || n->ext[i].off >= n->size) LEAVE(fs, -ENODATA);
        *result = n->ext[i].off > offset ? n->ext[i].off : offset;
        *eof = 0;
        LEAVE(fs, 0);
    }
    /* SEEK_HOLE: walk contiguous extents from offset */
    uint64_t pos = offset;
    while (i < n->next && n->ext[i].off <= pos) {
        pos = n->ext[i].off + n->ext[i].len;
        i++;
    }
    if (pos >= n->size) {
        *result = n->size;
        *eof = 1;
    } else {
        *result = pos;
        *eof = 0;
    }
    LEAVE(fs, 0);
}

/* ─── Configuration ──────────────────────────────────────────────────────────────────────── */

struct json {
    const char *p;
    size_t len, pos;
};

static void j_ws(struct json *j) {
    while (j->pos < j->len && (j->p[j->pos] == ' ' || j->p[j->pos] == '\t' || j->p[j->pos] == '\n' || j->p[j->pos] == '\r'))
        j->pos++;
}

static void utf8_put(struct buf *b, uint32_t cp) {
    uint8_t o[4];
    size_t n;
    if (cp < 0x80) {
        o[0] = (uint8_t)cp;
        n = 1;
    } else if (cp < 0x800) {
        o[0] = (uint8_t)(0xC0 | (cp >> 6));
        o[1] = (uint8_t)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        o[0] = (uint8_t)(0xE0 | (cp >> 12));
        o[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (uint8_t)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        o[0] = (uint8_t)(0xF0 | (cp >> 18));
        o[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
        o[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        o[3] = (uint8_t)(0x80 | (cp & 0x3F));
        n = 4;
    }
    b_put(b, o, n);
}

static int j_hex4(struct json *j, uint32_t *out) {
    if (j->len - j->pos < 4) return -1;
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        char c = j->p[j->pos++];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (uint32_t)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (uint32_t)(c - 'A' + 10);
        else return -1;
    }
    *out = v;
    return 0;
}

/* Parses a string at the cursor into a malloc'd, NUL-terminated copy (NULL on error). */
static char *j_string(struct json *j) {
    if (j->pos >= j->len || j->p[j->pos] != '"') return NULL;
    j->pos++;
    struct buf b = {0};
    while (j->pos < j->len) {
        unsigned char c = (unsigned char)j->p[j->pos++];
        if (c == '"') {
            b_put(&b, "", 1);
            if (b.oom || memchr(b.p, 0, b.len - 1)) break; /* no NUL inside paths */
            return (char *)b.p;
        }
        if (c < 0x20) break;
        if (c != '\\') {
            b_put(&b, &c, 1);
            continue;
        }
        if (j->pos >= j->len) break;
        char e = j->p[j->pos++];
        uint32_t cp;
        switch (e) {
        case '"': b_put(&b, "\"", 1); break;
        case '\\': b_put(&b, "\\", 1); break;
        case '/': b_put(&b, "/", 1); break;
        case 'b': b_put(&b, "\b", 1); break;
        case 'f': b_put(&b, "\f", 1); break;
        case 'n': b_put(&b, "\n", 1); break;
        case 'r': b_put(&b, "\r", 1); break;
        case 't': b_put(&b, "\t", 1); break;
        case 'u':
            if (j_hex4(j, &cp)) goto fail;
            if (cp >= 0xD800 && cp < 0xDC00) {
                uint32_t lo;
                if (j->len - j->pos < 6 || j->p[j->pos] != '\\' || j->p[j->pos + 1] != 'u') goto fail;
                j->pos += 2;
                if (j_hex4(j, &lo) || lo < 0xDC00 || lo >= 0xE000) goto fail;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            } else if (cp >= 0xDC00 && cp < 0xE000) {
                goto fail;
            }
            utf8_put(&b, cp);
            break;
        default:
            goto fail;
        }
    }
fail:
    free(b.p);
    return NULL;
}

static int j_skip(struct json *j, int depth) {
    if (depth > 64) return -1;
    j_ws(j);
    if (j->pos >= j->len) return -1;
    char c = j->p[j->pos];
    if (c == '"') {
        char *s = j_string(j);
        if (!s) return -1;
        free(s);
        return 0;
    }
    if (c == '{' || c == '[') {
        char close = c == '{' ? '}' : ']';
        j->pos++;
        j_ws(j);
        if (j->pos < j->len && j->p[j->pos] == close) {
            j->pos++;
            return 0;
        }
        for (;;) {
            if (c == '{') {
                j_ws(j);
                char *k = j_string(j);
                if (!k) return -1;
                free(k);
                j_ws(j);
                if (j->pos >= j->len || j->p[j->pos] != ':') return -1;
                j->pos++;
            }
            if (j_skip(j, depth + 1)) return -1;
            j_ws(j);
            if (j->pos >= j->len) return -1;
            if (j->p[j->pos] == ',') {
                j->pos++;
                continue;
            }
            if (j->p[j->pos] == close) {
                j->pos++;
                return 0;
            }
            return -1;
        }
    }
    /* number or literal */
    size_t start = j->pos;
    while (j->pos < j->len && j->p[j->pos] && strchr("+-.0123456789eEtrufalsn", j->p[j->pos])) j->pos++;
    return j->pos > start ? 0 : -1;
}

static void set_error(char *err, size_t len, const char *fmt, ...) {
    if (!err || !len) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, len, fmt, ap);
    va_end(ap);
}

#define EXAMPLE_CONFIG "{\"path\": \"/var/lib/demofs/data.log\"}"

/* Reads {"path": STRING, "sync": BOOL} (other keys are ignored). */
static int parse_config(const char *config_path, char **path_out, int *sync_out, char *err, size_t errlen) {
    if (!config_path || !*config_path) {
        set_error(err, errlen, "no config file: demofs needs one naming its data file, e.g. %s", EXAMPLE_CONFIG);
        return -1;
    }
    FILE *f = fopen(config_path, "rb");
    if (!f) {
        set_error(err, errlen, "cannot read config %s: %s", config_path, strerror(errno));
        return -1;
    }
    struct buf text = {0};
    char chunk[4096];
    size_t got;
    while ((got = fread(chunk, 1, sizeof chunk, f)) > 0) {
        b_put(&text, chunk, got);
        if (text.len > (1u << 20)) break;
    }
    int read_error = ferror(f);
    fclose(f);
    if (read_error || text.oom || text.len > (1u << 20)) {
        set_error(err, errlen, "cannot read config %s: %s", config_path, read_error ? "read error" : "larger than 1 MiB");
        free(text.p);
        return -1;
    }
    struct json j = {(const char *)text.p, text.len, 0};
    char *path = NULL;
    int sync = 1, ok = 0;
    j_ws(&j);
    if (j.pos < j.len && j.p[j.pos] == '{') {
        j.pos++;
        j_ws(&j);
        if (j.pos < j.len && j.p[j.pos] == '}') {
            j.pos++;
            ok = 1;
        } else {
            for (;;) {
                j_ws(&j);
                char *key = j_string(&j);
                if (!key) break;
                j_ws(&j);
                if (j.pos >= j.len || j.p[j.pos] != ':') {
                    free(key);
                    break;
                }
                j.pos++;
                j_ws(&j);
                int fail = 0;
                if (strcmp(key, "path") == 0) {
                    char *value = j_string(&j);
                    if (!value) {
                        set_error(err, errlen, "config %s: \"path\" must be a string naming the data file, e.g. %s",
                                  config_path, EXAMPLE_CONFIG);
                        free(key);
                        free(path);
                        free(text.p);
                        return -1;
                    }
                    free(path);
                    path = value;
                } else if (strcmp(key, "sync") == 0) {
                    if (j.len - j.pos >= 4 && memcmp(j.p + j.pos, "true", 4) == 0) {
                        sync = 1;
                        j.pos += 4;
                    } else if (j.len - j.pos >= 5 && memcmp(j.p + j.pos, "false", 5) == 0) {
                        sync = 0;
                        j.pos += 5;
                    } else {
                        set_error(err, errlen, "config %s: \"sync\" must be true or false", config_path);
                        free(key);
                        free(path);
                        free(text.p);
                        return -1;
                    }
                } else {
                    fail = j_skip(&j, 0);
                }
                free(key);
                if (fail) break;
                j_ws(&j);
                if (j.pos < j.len && j.p[j.pos] == ',') {
                    j.pos++;
                    continue;
                }
                if (j.pos < j.len && j.p[j.pos] == '}') {
                    j.pos++;
                    ok = 1;
                }
                break;
            }
        }
        j_ws(&j);
        if (j.pos != j.len) ok = 0;
    }
    if (!ok) {
        set_error(err, errlen, "config %s: not a JSON object (error near byte %zu); expected e.g. %s", config_path,
                  j.pos, EXAMPLE_CONFIG);
        free(path);
        free(text.p);
        return -1;
    }
    free(text.p);
    if (!path) {
        set_error(err, errlen, "config %s: missing \"path\" (the file demofs keeps its data in), e.g. %s", config_path,
                  EXAMPLE_CONFIG);
        return -1;
    }
    if (!*path) {
        set_error(err, errlen, "config %s: \"path\" is empty; name the data file, e.g. %s", config_path,
                  EXAMPLE_CONFIG);
        free(path);
        return -1;
    }
    if (path[0] != '/') {
        /* relative to the config file's directory */
        const char *slash = strrchr(config_path, '/');
        size_t dlen = slash ? (size_t)(slash - config_path) : 1;
        const char *dir = slash ? config_path : ".";
        size_t total = dlen + 1 + strlen(path) + 1;
        char *full = malloc(total);
        if (!full) {
            free(path);
            set_error(err, errlen, "out of memory");
            return -1;
        }
        snprintf(full, total, "%.*s/%s", (int)dlen, dir, path);
        free(path);
        path = full;
    }
    *path_out = path;
    *sync_out = sync;
    return 0;
}

/* ─── Lifecycle ──────────────────────────────────────────────────────────────────────────── */

static void demofs_free(struct demofs *fs) {
    if (fs->itab) {
        for (size_t i = 0; i < fs->itab_cap; i++) {
            for (struct inode *n = fs->itab[i], *next; n; n = next) {
                next = n->hnext;
                inode_free(n);
            }
        }
        free(fs->itab);
    }
    if (fs->fd >= 0) close(fs->fd);
    free(fs->path);
    pthread_mutex_destroy(&fs->lock);
    free(fs);
}

static int write_header(struct demofs *fs, ts_t created, char *err, size_t errlen) {
    uint8_t h[HEADER_SIZE];
    memset(h, 0, sizeof h);
    memcpy(h, "DMDEMOFS", 8);
    put_le(h + 8, HEADER_VERSION, 4);
    put_le(h + 12, HEADER_SIZE, 4);
    put_le(h + 16, fs->generation, 8);
    put_le(h + 24, (uint64_t)created.sec, 8);
    put_le(h + 32, created.nsec, 4);
    put_le(h + 36, 0777, 4);
    put_le(h + 60, crc32c(0, h, 60), 4);
    struct iovec iov = {h, sizeof h};
    int rc = pwritev_full(fs->fd, &iov, 1, 0);
    if (rc == 0 && ftruncate(fs->fd, HEADER_SIZE) != 0) rc = -errno;
    if (rc == 0 && fsync(fs->fd) != 0) rc = -errno;
    if (rc) {
        set_error(err, errlen, "cannot initialise data file %s: %s", fs->path, strerror(-rc));
        return -1;
    }
    /* make the new file's directory entry durable too */
    char *dir = strdup(fs->path);
    if (dir) {
        char *slash = strrchr(dir, '/');
        if (slash) {
            if (slash == dir) slash[1] = 0;
            else *slash = 0;
            int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            if (dfd >= 0) {
                fsync(dfd);
                close(dfd);
            }
        }
        free(dir);
    }
    return 0;
}

static int read_header(struct demofs *fs, ts_t *created, uint32_t *root_mode, char *err, size_t errlen) {
    uint8_t h[HEADER_SIZE];
    int rc = pread_full(fs->fd, h, sizeof h, 0);
    if (rc) {
        set_error(err, errlen, "cannot read data file %s: %s", fs->path, strerror(-rc));
        return -1;
    }
    if (memcmp(h, "DMDEMOFS", 8) != 0) {
        set_error(err, errlen, "%s is not a demofs data file (bad magic); point \"path\" at a new or demofs file",
                  fs->path);
        return -1;
    }
    if (get_le(h + 60, 4) != crc32c(0, h, 60)) {
        set_error(err, errlen, "data file %s: header checksum mismatch (damaged file)", fs->path);
        return -1;
    }
    uint32_t version = (uint32_t)get_le(h + 8, 4);
    if (version != HEADER_VERSION || get_le(h + 12, 4) != HEADER_SIZE) {
        set_error(err, errlen, "data file %s: format version %u, this demofs reads version %u", fs->path, version,
                  HEADER_VERSION);
        return -1;
    }
    fs->generation = get_le(h + 16, 8);
    created->sec = (int64_t)get_le(h + 24, 8);
    created->nsec = (uint32_t)get_le(h + 32, 4);
    created->reserved = 0;
    *root_mode = (uint32_t)get_le(h + 36, 4);
    return 0;
}

static int replay(struct demofs *fs, char *err, size_t errlen) {
    struct stat st;
    if (fstat(fs->fd, &st) != 0) {
        set_error(err, errlen, "cannot stat data file %s: %s", fs->path, strerror(errno));
        return -1;
    }
    uint64_t size = (uint64_t)st.st_size, pos = HEADER_SIZE;
    uint8_t *payload = NULL;
    size_t cap = 0;
    while (size - pos >= RECORD_HEADER) {
        uint8_t hdr[RECORD_HEADER];
        if (pread_full(fs->fd, hdr, sizeof hdr, pos) != 0) break;
        uint64_t plen = get_le(hdr + 4, 4);
        if (get_le(hdr, 4) != RECORD_MAGIC || plen > size - pos - RECORD_HEADER) break;
        if (plen > cap) {
            uint8_t *p = realloc(payload, plen);
            if (!p) {
                free(payload);
                set_error(err, errlen, "out of memory replaying %s", fs->path);
                return -1;
            }
            payload = p;
            cap = plen;
        }
        if (plen && pread_full(fs->fd, payload, plen, pos + RECORD_HEADER) != 0) break;
        uint32_t crc = crc32c(0, hdr + 12, 4);
        crc = crc32c(crc, payload, plen);
        if (crc != get_le(hdr + 8, 4)) break;
        uint16_t type = (uint16_t)get_le(hdr + 12, 2);
        int rc = apply_record(fs, type, payload, plen, pos + RECORD_HEADER);
        if (rc) {
            set_error(err, errlen, "data file %s: record at offset %llu (type %u) does not apply (%s); the file is damaged",
                      fs->path, (unsigned long long)pos, type, strerror(-rc > 4095 ? EIO : -rc));
            free(payload);
            return -1;
        }
        pos += RECORD_HEADER + plen;
    }
    free(payload);
    if (pos < size) {
        /* a record torn by a crash during its append: it was never acknowledged, drop it */
        if (ftruncate(fs->fd, (off_t)pos) != 0 || fsync(fs->fd) != 0) {
            set_error(err, errlen, "data file %s: cannot cut the torn record at offset %llu: %s", fs->path,
                      (unsigned long long)pos, strerror(errno));
            return -1;
        }
    }
    fs->end = pos;
    return 0;
}

static void *op_init(const char *config_path, char *err, size_t errlen) {
    struct demofs *fs = calloc(1, sizeof *fs);
    if (!fs) {
        set_error(err, errlen, "out of memory");
        return NULL;
    }
    fs->fd = -1;
    pthread_mutex_init(&fs->lock, NULL);
    fs->itab_cap = 1024;
    fs->itab = calloc(fs->itab_cap, sizeof *fs->itab);
    if (!fs->itab) {
        set_error(err, errlen, "out of memory");
        demofs_free(fs);
        return NULL;
    }
    if (parse_config(config_path, &fs->path, &fs->sync_metadata, err, errlen) != 0) {
        demofs_free(fs);
        return NULL;
    }
    fs->fd = open(fs->path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fs->fd < 0) {
        set_error(err, errlen, "cannot open data file %s: %s", fs->path, strerror(errno));
        demofs_free(fs);
        return NULL;
    }
    if (flock(fs->fd, LOCK_EX | LOCK_NB) != 0) {
        set_error(err, errlen, "data file %s is in use by another demofs instance (%s)", fs->path,
                  errno == EWOULDBLOCK ? "locked" : strerror(errno));
        demofs_free(fs);
        return NULL;
    }
    struct stat st;
    if (fstat(fs->fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        set_error(err, errlen, "data file %s is not a regular file", fs->path);
        demofs_free(fs);
        return NULL;
    }
    ts_t created;
    uint32_t root_mode = 0777;
    if ((uint64_t)st.st_size < HEADER_SIZE) {
        /* new (or a header never completed, so no record can exist yet) */
        uint64_t gen = 0;
        if (getrandom(&gen, sizeof gen, 0) != (ssize_t)sizeof gen) {
            struct timespec t;
            clock_gettime(CLOCK_MONOTONIC, &t);
            gen = ((uint64_t)t.tv_nsec << 32) ^ (uint64_t)t.tv_sec ^ ((uint64_t)getpid() << 16);
        }
        fs->generation = gen | 1;
        created = now_ts();
        if (write_header(fs, created, err, errlen) != 0) {
            demofs_free(fs);
            return NULL;
        }
    } else if (read_header(fs, &created, &root_mode, err, errlen) != 0) {
        demofs_free(fs);
        return NULL;
    }
    fs->fsid = fs->generation >> 8;
    struct inode *root = calloc(1, sizeof *root);
    if (!root) {
        set_error(err, errlen, "out of memory");
        demofs_free(fs);
        return NULL;
    }
    root->ino = ROOT_INO;
    root->type = DMANOEL_VFS_DIRECTORY;
    root->mode = root_mode & 07777;
    root->nlink = 2;
    root->parent = ROOT_INO;
    root->next_cookie = 1;
    root->atime = root->mtime = root->ctime = root->birth = created;
    root->change = 1;
    fs->change = 1;
    fs->next_ino = ROOT_INO + 1;
    itab_put(fs, root);
    if (replay(fs, err, errlen) != 0) {
        demofs_free(fs);
        return NULL;
    }
    return fs;
}

static void op_fini(void *instance) {
    struct demofs *fs = instance;
    if (!fs) return;
    sync_file(fs);
    demofs_free(fs);
}

static const struct dmanoel_vfs_plugin_ops demofs_ops = {
    .abi_version = DMANOEL_VFS_ABI_VERSION,
    .size = sizeof(struct dmanoel_vfs_plugin_ops),
    .name = "demofs",
    .flags = 0,
    .init = op_init,
    .fini = op_fini,
    .root_handle = op_root_handle,
    .getattr = op_getattr,
    .lookup = op_lookup,
    .setattr = op_setattr,
    .create = op_create,
    .read = op_read,
    .write = op_write,
    .commit = op_commit,
    .readdir = op_readdir,
    .readlink = op_readlink,
    .link = op_link,
    .remove = op_remove,
    .rmdir = op_rmdir,
    .rename = op_rename,
    .statfs = op_statfs,
    .getxattr = op_getxattr,
    .setxattr = op_setxattr,
    .listxattr = op_listxattr,
    .removexattr = op_removexattr,
    .allocate = op_allocate,
    .deallocate = op_deallocate,
    .seek = op_seek,
};

DMANOEL_VFS_EXPORT const struct dmanoel_vfs_plugin_ops *dmanoel_vfs_plugin_entry(uint32_t server_abi_version) {
    (void)server_abi_version; /* the server compares versions and reports a mismatch */
    return &demofs_ops;
}
