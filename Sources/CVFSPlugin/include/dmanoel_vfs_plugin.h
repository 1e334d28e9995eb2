/*
 * dmanoel-NAS external VFS plugin ABI, version 1.
 *
 * This header is the whole contract between the server and a filesystem module that lives in
 * its own shared library. It is plain C (C99), has no dependency beyond <stddef.h> and
 * <stdint.h>, and is meant to be copied into a plugin's source tree as is.
 *
 * ─── How a plugin is loaded ────────────────────────────────────────────────────────────────
 *
 * The configuration names plugins under server.vfs:
 *
 *     "vfs": { "demofs": { "path": "/usr/local/lib/dmanoel-NAS_vfs_demofs.so",
 *                          "config": "/usr/local/etc/demofs.json" } }
 *
 * and mounts use the plugin's configured name as their "module". At start the server:
 *
 *   1. dlopen()s `path` with RTLD_NOW | RTLD_LOCAL (every undefined symbol must resolve; the
 *      plugin's own symbols stay private to it),
 *   2. looks up the one exported symbol DMANOEL_VFS_ENTRY_SYMBOL and calls it with the ABI
 *      version the server speaks,
 *   3. checks the returned table: `abi_version` must equal the server's, `size` must cover at
 *      least every required operation, and every required operation must be non-NULL,
 *   4. calls `init(config, ...)` once per mount of the plugin; each call returns a separate
 *      instance (no global state, please: one library may serve several mounts),
 *   5. asks for the root handle and from then on calls the operations below,
 *   6. calls `fini(instance)` once when the server stops. No call is in flight then, and none
 *      follows.
 *
 * ─── Versioning ────────────────────────────────────────────────────────────────────────────
 *
 * `abi_version` is bumped only for incompatible changes (a field changes meaning, a struct
 * changes layout). Compatible additions append new members at the END of
 * `struct dmanoel_vfs_plugin_ops` (and of the structs marked "extensible" below) and leave the
 * version alone; `size` tells the server how much of the table the plugin knows, and members
 * past `size` count as NULL. So: always fill `size = sizeof(struct dmanoel_vfs_plugin_ops)`
 * from the header you compiled against, and never reorder members.
 *
 * ─── Threads (read this) ───────────────────────────────────────────────────────────────────
 *
 * The server calls operations from its delegation threads, SEVERAL AT ONCE, on the same
 * instance and even on the same handle. There is no server-side lock around a plugin. A plugin
 * must therefore protect its own state (one mutex per instance is a fine start; demofs does
 * exactly that). Operations may block (disk, network): they run on threads meant for blocking
 * work, never on the server's event loops. Keep them bounded all the same: a call that never
 * returns holds a delegation thread forever.
 *
 * `init` and `fini` are called on one thread, never concurrently with anything else on the
 * same instance. Different instances may be used concurrently.
 *
 * ─── Conventions ───────────────────────────────────────────────────────────────────────────
 *
 *  - Every operation returns 0 on success or a NEGATIVE errno value (-ENOENT, -EEXIST, ...),
 *    or one of the negative DMANOEL_VFS_ERR_* codes below. Anything positive counts as -EIO.
 *    Out-parameters are only read on success.
 *  - Handles are opaque byte strings of 1..DMANOEL_VFS_HANDLE_MAX bytes, chosen by the plugin.
 *    The server prefixes its own mount id and signs them before clients see them; the plugin
 *    gets back exactly the bytes it produced. A handle must keep naming the same object for
 *    the object's whole life, across server restarts if the plugin's storage is persistent
 *    (NFS clients keep handles), and must never name a different object later: include a
 *    generation so a reused inode number yields -ESTALE, not someone else's file. Handles may
 *    come from a hostile client (after the server checked the signature, but still): validate
 *    the length and return DMANOEL_VFS_ERR_BAD_HANDLE for a malformed one, -ESTALE for one that
 *    names nothing.
 *  - Names are NUL-terminated UTF-8 (or arbitrary bytes without '/' and NUL). The server has
 *    already rejected empty names, names with '/', and names longer than DMANOEL_VFS_NAME_MAX
 *    bytes for every operation that makes or removes an entry, and "." and ".." where a real
 *    entry is required. `lookup` does receive "." and ".." (".." of the root is the root).
 *  - Permissions: the server checks POSIX mode bits itself before calling a plugin (read,
 *    write, execute/search on the objects involved; chmod/chown/utimes ownership rules). The
 *    credentials are still passed on every call so a plugin can apply rules of its own (the
 *    sticky bit, ACLs, quotas) and stamp new objects with an owner. `cred` is NULL for the
 *    calls whose VFS operation carries no caller (getattr, commit, statfs, seek).
 *  - Attributes: whenever an operation fills a `struct dmanoel_vfs_attr`, set `valid` to the
 *    fields actually filled. "Before/after" pairs (`struct dmanoel_vfs_wcc`) describe the
 *    directory an operation changed; the server passes them to NFS (wcc_data, change_info) and
 *    SMB, so fill them while holding the lock that makes the change atomic.
 *  - Time is wall-clock (CLOCK_REALTIME) seconds + nanoseconds since the Unix epoch.
 *  - Every change to data or metadata must increase the object's `change` counter (NFSv4
 *    change attribute); it must never go backwards, including across restarts.
 */
#ifndef DMANOEL_VFS_PLUGIN_H
#define DMANOEL_VFS_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The ABI this header describes. */
#define DMANOEL_VFS_ABI_VERSION 1u

/* The one symbol every plugin exports (see dmanoel_vfs_plugin_entry below). */
#define DMANOEL_VFS_ENTRY_SYMBOL "dmanoel_vfs_plugin_entry"

/* Largest plugin handle, in bytes. The server refuses a plugin whose handles are longer. */
#define DMANOEL_VFS_HANDLE_MAX 48u

/* Longest name of a directory entry, in bytes (without the NUL). */
#define DMANOEL_VFS_NAME_MAX 255u

/* Errors that have no errno of their own (returned negated, like errno values). */
#define DMANOEL_VFS_ERR_NOT_SYNC 10001   /* setattr: guard_ctime did not match the object's ctime */
#define DMANOEL_VFS_ERR_BAD_COOKIE 10002 /* readdir: the cookie/verifier is no longer honoured */
#define DMANOEL_VFS_ERR_BAD_HANDLE 10003 /* the handle is malformed (wrong length or layout) */

#if defined(__GNUC__) || defined(__clang__)
#define DMANOEL_VFS_EXPORT __attribute__((visibility("default")))
#else
#define DMANOEL_VFS_EXPORT
#endif

/* ─── Plain data ───────────────────────────────────────────────────────────────────────── */

/* Object types (same numbering as the server's FileType). */
enum dmanoel_vfs_type {
    DMANOEL_VFS_REGULAR = 1,
    DMANOEL_VFS_DIRECTORY = 2,
    DMANOEL_VFS_SYMLINK = 3,
    DMANOEL_VFS_BLOCK_DEVICE = 4,
    DMANOEL_VFS_CHARACTER_DEVICE = 5,
    DMANOEL_VFS_FIFO = 6,
    DMANOEL_VFS_SOCKET = 7
};

/* Attribute bits: a request mask (what the caller wants) and `valid` (what was filled). */
#define DMANOEL_VFS_ATTR_TYPE (1u << 0)
#define DMANOEL_VFS_ATTR_MODE (1u << 1)
#define DMANOEL_VFS_ATTR_NLINK (1u << 2)
#define DMANOEL_VFS_ATTR_UID (1u << 3)
#define DMANOEL_VFS_ATTR_GID (1u << 4)
#define DMANOEL_VFS_ATTR_SIZE (1u << 5)
#define DMANOEL_VFS_ATTR_SPACE_USED (1u << 6)
#define DMANOEL_VFS_ATTR_FSID (1u << 7)    /* optional: the server makes one up if missing */
#define DMANOEL_VFS_ATTR_FILEID (1u << 8)
#define DMANOEL_VFS_ATTR_ATIME (1u << 9)
#define DMANOEL_VFS_ATTR_MTIME (1u << 10)
#define DMANOEL_VFS_ATTR_CTIME (1u << 11)
#define DMANOEL_VFS_ATTR_BIRTHTIME (1u << 12)
#define DMANOEL_VFS_ATTR_CHANGE (1u << 13)
#define DMANOEL_VFS_ATTR_RDEV (1u << 14)
#define DMANOEL_VFS_ATTR_ALL ((1u << 15) - 1)

struct dmanoel_vfs_time {
    int64_t sec;       /* seconds since the Unix epoch */
    uint32_t nsec;     /* 0..999,999,999 */
    uint32_t reserved; /* 0 */
};

/* A plugin handle: `len` bytes of `data` (1 <= len <= DMANOEL_VFS_HANDLE_MAX). */
struct dmanoel_vfs_handle {
    uint32_t len;
    uint8_t data[DMANOEL_VFS_HANDLE_MAX];
};

/* Who makes a call. `groups` holds `ngroups` supplementary groups (AUTH_SYS carries up to 16);
   it is valid for the duration of the call only. */
struct dmanoel_vfs_cred {
    uint32_t uid;
    uint32_t gid;
    uint32_t ngroups;
    uint32_t reserved;
    const uint32_t *groups;
};

/* Attributes of one object; only the fields whose DMANOEL_VFS_ATTR_* bit is in `valid` mean
   anything. A plugin may always fill more than was asked. */
struct dmanoel_vfs_attr {
    uint32_t valid;
    uint32_t type;          /* enum dmanoel_vfs_type */
    uint32_t mode;          /* permission, set-id and sticky bits (07777), without the type */
    uint32_t nlink;
    uint32_t uid;
    uint32_t gid;
    uint32_t rdev_major;
    uint32_t rdev_minor;
    uint64_t size;          /* bytes; for a symlink the length of its target */
    uint64_t space_used;    /* bytes of storage the object occupies */
    uint64_t fsid;
    uint64_t fileid;        /* unique in the filesystem; the same for all hard links */
    uint64_t change;        /* increases on every change of data or metadata */
    struct dmanoel_vfs_time atime;
    struct dmanoel_vfs_time mtime;
    struct dmanoel_vfs_time ctime;
    struct dmanoel_vfs_time birthtime;
};

/* A directory's attributes before and after an operation changed it. */
struct dmanoel_vfs_wcc {
    struct dmanoel_vfs_attr before;
    struct dmanoel_vfs_attr after;
};

/* What setattr changes (`set` bits); fields whose bit is clear are to be left alone. */
#define DMANOEL_VFS_SET_MODE (1u << 0)
#define DMANOEL_VFS_SET_UID (1u << 1)
#define DMANOEL_VFS_SET_GID (1u << 2)
#define DMANOEL_VFS_SET_SIZE (1u << 3)      /* truncate or extend (holes read as zeros) */
#define DMANOEL_VFS_SET_ATIME (1u << 4)     /* atime = `atime` */
#define DMANOEL_VFS_SET_ATIME_NOW (1u << 5) /* atime = the plugin's clock */
#define DMANOEL_VFS_SET_MTIME (1u << 6)     /* mtime = `mtime` */
#define DMANOEL_VFS_SET_MTIME_NOW (1u << 7) /* mtime = the plugin's clock */

struct dmanoel_vfs_setattr {
    uint32_t set;
    uint32_t mode;  /* & 07777 */
    uint32_t uid;
    uint32_t gid;
    uint64_t size;
    struct dmanoel_vfs_time atime;
    struct dmanoel_vfs_time mtime;
};

/* How create treats an existing name (NFS semantics; SMB dispositions map onto these). */
enum dmanoel_vfs_create_how {
    /* Create, or open what exists: for a regular file over an existing regular file, return it
       (created = 0), truncating it if attr.set has DMANOEL_VFS_SET_SIZE; an existing directory
       gives -EISDIR; anything else that exists gives -EEXIST. */
    DMANOEL_VFS_CREATE_UNCHECKED = 0,
    /* Create; -EEXIST if the name is taken. */
    DMANOEL_VFS_CREATE_GUARDED = 1,
    /* Create once: store `verifier` with the new object. If the name exists and holds an object
       created EXCLUSIVE with the same verifier, this is a client's retry: return that object
       with created = 0. Otherwise -EEXIST. */
    DMANOEL_VFS_CREATE_EXCLUSIVE = 2
};

/* Arguments of create (extensible: new members go at the end). */
struct dmanoel_vfs_create {
    uint32_t type;                 /* enum dmanoel_vfs_type of the new object */
    uint32_t how;                  /* enum dmanoel_vfs_create_how */
    uint64_t verifier;             /* DMANOEL_VFS_CREATE_EXCLUSIVE only */
    const char *symlink_target;    /* DMANOEL_VFS_SYMLINK only, NUL-terminated */
    uint32_t rdev_major;           /* block and character devices only */
    uint32_t rdev_minor;
    /* Initial attributes. MODE unset: 0755 for directories, 0777 for symlinks, 0644 otherwise.
       UID/GID unset: the caller's uid and gid. ATIME/MTIME: as given, else the creation time.
       SIZE: only meaningful for UNCHECKED over an existing regular file (truncate). */
    struct dmanoel_vfs_setattr attr;
};

/* Write stability: how durable a write must be before the call returns. */
enum dmanoel_vfs_stability {
    DMANOEL_VFS_UNSTABLE = 0,  /* may stay in memory until commit */
    DMANOEL_VFS_DATA_SYNC = 1, /* data (and what is needed to read it back) on stable storage */
    DMANOEL_VFS_FILE_SYNC = 2  /* data and all metadata on stable storage */
};

/* setxattr flags. */
enum dmanoel_vfs_xattr_flags {
    DMANOEL_VFS_XATTR_EITHER = 0,
    DMANOEL_VFS_XATTR_CREATE = 1,  /* -EEXIST if it exists */
    DMANOEL_VFS_XATTR_REPLACE = 2  /* -ENODATA if it does not */
};

/* seek targets. */
enum dmanoel_vfs_seek_what {
    DMANOEL_VFS_SEEK_DATA = 0,
    DMANOEL_VFS_SEEK_HOLE = 1
};

/* Filesystem space and object counts. */
struct dmanoel_vfs_statfs {
    uint64_t total_bytes;
    uint64_t free_bytes;
    uint64_t available_bytes; /* free to unprivileged users */
    uint64_t total_files;
    uint64_t free_files;
    uint64_t available_files;
    uint32_t max_name_length; /* usually DMANOEL_VFS_NAME_MAX */
    uint32_t reserved;
};

/* One directory entry handed to a readdir callback. Everything it points to is only valid
   during the callback. */
struct dmanoel_vfs_dirent {
    const char *name;     /* NUL-terminated */
    uint32_t name_len;    /* bytes, without the NUL */
    uint32_t type;        /* enum dmanoel_vfs_type */
    uint64_t fileid;
    uint64_t cookie;      /* where a later readdir resumes to continue AFTER this entry; never 0 */
    const struct dmanoel_vfs_handle *handle; /* required when readdir's mask is not 0, else may be NULL */
    const struct dmanoel_vfs_attr *attr;     /* required when readdir's mask is not 0, else may be NULL */
};

/* Readdir callback: return 0 to accept the entry and go on, non-zero to refuse it (the reply
   is full). After a refusal the plugin stops, reports *eof = 0, and the refused entry must come
   first in the next call (resuming from the previous entry's cookie). The callback never calls
   back into the plugin, so it may run with the plugin's lock held. */
typedef int (*dmanoel_vfs_filldir_fn)(void *context, const struct dmanoel_vfs_dirent *entry);

/* ─── The operation table ──────────────────────────────────────────────────────────────── */

struct dmanoel_vfs_plugin_ops {
    /* DMANOEL_VFS_ABI_VERSION the plugin was built for. */
    uint32_t abi_version;
    /* sizeof(struct dmanoel_vfs_plugin_ops) as the plugin was compiled. */
    uint32_t size;
    /* Short name for logs and errors ("demofs"); static storage. */
    const char *name;
    /* Reserved for capability flags; 0. */
    uint64_t flags;

    /* ── Lifecycle (required) ── */

    /* Creates an instance from the plugin's configuration file (`config_path` may be NULL when
       the server configuration names none). On failure returns NULL after writing a one-line,
       NUL-terminated reason to `error_out` (at most `error_len` bytes, truncated), which the
       server shows as "plugin NAME: init failed: REASON": say what is wrong and how to fix it. */
    void *(*init)(const char *config_path, char *error_out, size_t error_len);

    /* Releases an instance: flush, close, free. Called once, with no other call in flight. */
    void (*fini)(void *instance);

    /* ── Namespace and attributes (required) ── */

    /* The handle of the root directory. Called right after init; must not change afterwards. */
    int (*root_handle)(void *instance, struct dmanoel_vfs_handle *out);

    /* Attributes of `handle`; `mask` says which are wanted (0 is possible: just check that the
       handle is valid). -ESTALE if the object no longer exists. */
    int (*getattr)(void *instance, const struct dmanoel_vfs_cred *cred, const struct dmanoel_vfs_handle *handle,
                   uint32_t mask, struct dmanoel_vfs_attr *out);

    /* Looks `name` up in directory `dir` ("." is `dir`, ".." its parent, the root's parent is
       the root). -ENOTDIR if `dir` is not a directory, -ENOENT if there is no such entry,
       -ENAMETOOLONG for a name over DMANOEL_VFS_NAME_MAX. Fills `out` and, per `mask`, `attr`. */
    int (*lookup)(void *instance, const struct dmanoel_vfs_cred *cred, const struct dmanoel_vfs_handle *dir,
                  const char *name, uint32_t mask, struct dmanoel_vfs_handle *out, struct dmanoel_vfs_attr *attr);

    /* Applies `changes`. With a non-NULL `guard_ctime`, changes nothing and returns
       -DMANOEL_VFS_ERR_NOT_SYNC unless the object's ctime equals it. SIZE on a directory is
       -EISDIR, on anything but a regular file -EINVAL; setting SIZE without MTIME* also sets
       mtime to now. Any change sets ctime to now and bumps `change`. Fills full attributes
       before and after. */
    int (*setattr)(void *instance, const struct dmanoel_vfs_cred *cred, const struct dmanoel_vfs_handle *handle,
                   const struct dmanoel_vfs_setattr *changes, const struct dmanoel_vfs_time *guard_ctime,
                   struct dmanoel_vfs_attr *before, struct dmanoel_vfs_attr *after);

    /* Creates `name` in `dir` per `args` (see struct dmanoel_vfs_create for the rules on
       existing names). Sets `*created` to 1 when a new object was made, 0 when an existing one
       is returned. Fills the object's handle and full attributes and the directory's wcc. A new
       directory has nlink 2 and adds 1 to its parent's nlink. Devices other than block and
       character: -EINVAL. */
    int (*create)(void *instance, const struct dmanoel_vfs_cred *cred, const struct dmanoel_vfs_handle *dir,
                  const char *name, const struct dmanoel_vfs_create *args, struct dmanoel_vfs_handle *out,
                  struct dmanoel_vfs_attr *attr, struct dmanoel_vfs_wcc *dir_wcc, int *created);

    /* ── Data (required) ── */

    /* Reads up to `count` bytes at `offset` into `buf` (the caller's, `count` bytes long). Holes
       read as zeros. Sets `*bytes_read` (less than `count` only at the end of file) and `*eof`
       (1 when the read reached the end of file; an offset at or past the end reads 0 bytes with
       eof 1). -EISDIR on a directory, -EINVAL on anything else that is not a regular file.
       `after` receives the attributes after the read. */
    int (*read)(void *instance, const struct dmanoel_vfs_cred *cred, const struct dmanoel_vfs_handle *handle,
                uint64_t offset, void *buf, size_t count, size_t *bytes_read, int *eof, struct dmanoel_vfs_attr *after);

    /* Writes `count` bytes from `buf` at `offset`, extending the file as needed (a gap becomes a
       hole). `stability` is what the caller needs; set `*stability_done` to what was achieved
       (at least that). -EFBIG if offset + count passes INT64_MAX. Sets mtime and ctime. */
    int (*write)(void *instance, const struct dmanoel_vfs_cred *cred, const struct dmanoel_vfs_handle *handle,
                 uint64_t offset, const void *buf, size_t count, uint32_t stability, size_t *written,
                 uint32_t *stability_done, struct dmanoel_vfs_attr *before, struct dmanoel_vfs_attr *after);

    /* Makes earlier UNSTABLE writes to `handle` in the range durable (count 0: to the end).
       Fills the attributes after. */
    int (*commit)(void *instance, const struct dmanoel_vfs_cred *cred, const struct dmanoel_vfs_handle *handle,
                  uint64_t offset, uint64_t count, struct dmanoel_vfs_attr *after);

    /* ── Directories (required) ── */

    /* Lists `dir` from after `cookie` (0: from the start), calling `fill` for at most
       `max_entries` entries. "." and ".." are NOT listed. Cookies are positive, stable for an
       entry's life and never reused in the directory, so a listing resumes correctly across
       creates and removes. `*verifier_out` receives the directory's cookie verifier; a call
       with cookie != 0 and a non-zero `verifier` different from the current one, or with a
       cookie the directory never handed out, returns -DMANOEL_VFS_ERR_BAD_COOKIE. `*eof` is 1
       when no entry follows the last one delivered. With a non-zero `mask`, each entry carries
       its handle and attributes (READDIRPLUS). `dir_attr` receives the directory's
       attributes. -ENOTDIR if `dir` is not a directory. */
    int (*readdir)(void *instance, const struct dmanoel_vfs_cred *cred, const struct dmanoel_vfs_handle *dir,
                   uint64_t cookie, uint64_t verifier, uint32_t max_entries, uint32_t mask,
                   dmanoel_vfs_filldir_fn fill, void *context, uint64_t *verifier_out, int *eof,
                   struct dmanoel_vfs_attr *dir_attr);

    /* Copies a symlink's target (no NUL added) into `buf` and sets `*target_len` to its full
       length; if it does not fit in `buf_len` bytes, returns -ERANGE with `*target_len` set so
       the server can retry with a bigger buffer. -EINVAL if the object is not a symlink. */
    int (*readlink)(void *instance, const struct dmanoel_vfs_cred *cred, const struct dmanoel_vfs_handle *handle,
                    char *buf, size_t buf_len, size_t *target_len);

    /* Adds `name` in `dir` as another link to `handle` (nlink + 1, ctime). -EISDIR if `handle`
       is a directory, -EEXIST if the name is taken, -EMLINK past the plugin's link limit.
       Fills the file's attributes after and the directory's wcc. */
    int (*link)(void *instance, const struct dmanoel_vfs_cred *cred, const struct dmanoel_vfs_handle *handle,
                const struct dmanoel_vfs_handle *dir, const char *name, struct dmanoel_vfs_attr *file_after,
                struct dmanoel_vfs_wcc *dir_wcc);

    /* Removes the non-directory `name` from `dir` (-ENOENT, -EISDIR for a directory; in a sticky
       directory only root, the entry's owner or the directory's owner may: -EPERM). The object
       goes away with its last link. */
    int (*remove)(void *instance, const struct dmanoel_vfs_cred *cred, const struct dmanoel_vfs_handle *dir,
                  const char *name, struct dmanoel_vfs_wcc *dir_wcc);

    /* Removes the empty directory `name` from `dir` (-ENOENT, -ENOTDIR, -ENOTEMPTY, sticky rule
       as for remove). The parent's nlink drops by 1. */
    int (*rmdir)(void *instance, const struct dmanoel_vfs_cred *cred, const struct dmanoel_vfs_handle *dir,
                 const char *name, struct dmanoel_vfs_wcc *dir_wcc);

    /* Renames `from_dir`/`name` to `to_dir`/`new_name`, atomically replacing a compatible target
       (non-directory over non-directory, directory over EMPTY directory). Rules: -ENOENT if the
       source does not exist; when source and target are the same object, succeed and change
       nothing; moving a directory into its own subtree: -EINVAL; directory over non-directory:
       -ENOTDIR; non-directory over directory: -EISDIR; over a non-empty directory: -ENOTEMPTY;
       sticky rule for both the source and a replaced target. Fills both directories' wcc (the
       same directory may be both). */
    int (*rename)(void *instance, const struct dmanoel_vfs_cred *cred, const struct dmanoel_vfs_handle *from_dir,
                  const char *name, const struct dmanoel_vfs_handle *to_dir, const char *new_name,
                  struct dmanoel_vfs_wcc *from_wcc, struct dmanoel_vfs_wcc *to_wcc);

    /* Space and object counts of the filesystem `handle` is in. */
    int (*statfs)(void *instance, const struct dmanoel_vfs_cred *cred, const struct dmanoel_vfs_handle *handle,
                  struct dmanoel_vfs_statfs *out);

    /* ── Optional operations: NULL means "not supported" (clients get EOPNOTSUPP) ── */

    /* Copies the value of xattr `name` into `buf` and sets `*value_len` to its full length;
       -ERANGE (with `*value_len` set) if it does not fit in `buf_len`; -ENODATA if absent. */
    int (*getxattr)(void *instance, const struct dmanoel_vfs_cred *cred, const struct dmanoel_vfs_handle *handle,
                    const char *name, void *buf, size_t buf_len, size_t *value_len);

    /* Sets xattr `name` (flags: enum dmanoel_vfs_xattr_flags). -EINVAL for an empty name or one
       over DMANOEL_VFS_NAME_MAX bytes, -ERANGE for a value the plugin will not store. */
    int (*setxattr)(void *instance, const struct dmanoel_vfs_cred *cred, const struct dmanoel_vfs_handle *handle,
                    const char *name, const void *value, size_t value_len, uint32_t flags);

    /* Writes the names of all xattrs, each followed by a NUL (the listxattr(2) format, sorted),
       into `buf`, and sets `*list_len` to the full length; -ERANGE if it does not fit. */
    int (*listxattr)(void *instance, const struct dmanoel_vfs_cred *cred, const struct dmanoel_vfs_handle *handle,
                     char *buf, size_t buf_len, size_t *list_len);

    /* Removes xattr `name`; -ENODATA if absent. */
    int (*removexattr)(void *instance, const struct dmanoel_vfs_cred *cred, const struct dmanoel_vfs_handle *handle,
                       const char *name);

    /* Reserves space for offset..offset+length (fallocate without punching) and extends the
       size to cover it. */
    int (*allocate)(void *instance, const struct dmanoel_vfs_cred *cred, const struct dmanoel_vfs_handle *handle,
                    uint64_t offset, uint64_t length);

    /* Punches a hole: the range reads as zeros afterwards; the size does not change. */
    int (*deallocate)(void *instance, const struct dmanoel_vfs_cred *cred, const struct dmanoel_vfs_handle *handle,
                      uint64_t offset, uint64_t length);

    /* The first offset at or after `offset` that starts data (SEEK_DATA) or a hole (SEEK_HOLE;
       the end of file counts as a hole, reported with *eof = 1). -ENODATA when `offset` is at or
       past the end, or when no data follows for SEEK_DATA. */
    int (*seek)(void *instance, const struct dmanoel_vfs_cred *cred, const struct dmanoel_vfs_handle *handle,
                uint64_t offset, uint32_t what, uint64_t *result, int *eof);

    /* New members of later compatible revisions go here. */
};

/*
 * The entry point. The server calls it once per dlopen with the ABI version it speaks. Return
 * your table (static storage, alive until the library is unloaded) with YOUR abi_version
 * filled in — the server compares and reports a mismatch by number — or NULL if you refuse to
 * work with the server's version. Do nothing else here: setup belongs in init.
 */
typedef const struct dmanoel_vfs_plugin_ops *(*dmanoel_vfs_plugin_entry_fn)(uint32_t server_abi_version);

DMANOEL_VFS_EXPORT const struct dmanoel_vfs_plugin_ops *dmanoel_vfs_plugin_entry(uint32_t server_abi_version);

/* The ABI version compiled into this copy of the header (for Swift, which cannot import the
   macro with its `u` suffix in every context). Defined in dmanoel_vfs_plugin.c of the server;
   plugins need not define or call it. */
uint32_t dmanoel_vfs_header_abi_version(void);

#ifdef __cplusplus
}
#endif

#endif /* DMANOEL_VFS_PLUGIN_H */
