#ifndef DMANOEL_LINUXFS_SHIMS_H
#define DMANOEL_LINUXFS_SHIMS_H
/* Linux-only calls for the linux and io_uring VFS modules (openat2, file handles, statx,
   per-thread credentials, renameat2, fallocate, copy_file_range, getdents64), compiled here so
   that no header Swift imports defines _GNU_SOURCE. Every function returns a result >= 0 or a
   negative errno value; none reads or leaves errno for the caller. */
#include <stdint.h>
#include <stddef.h>

/* Largest kernel file handle (MAX_HANDLE_SZ). */
#define LFS_MAX_HANDLE 128

/* RESOLVE_* flags of openat2(2), repeated here so Swift needs no kernel headers. */
#define LFS_RESOLVE_NO_XDEV 0x01
#define LFS_RESOLVE_NO_MAGICLINKS 0x02
#define LFS_RESOLVE_NO_SYMLINKS 0x04
#define LFS_RESOLVE_BENEATH 0x08

/* The statx(2) fields the VFS uses, flattened. */
typedef struct {
    uint32_t mask;          /* STATX_* bits the kernel filled */
    uint32_t mode;          /* type and permission bits */
    uint32_t nlink;
    uint32_t uid;
    uint32_t gid;
    uint32_t dev_major;
    uint32_t dev_minor;
    uint32_t rdev_major;
    uint32_t rdev_minor;
    uint32_t atime_nsec;
    uint32_t mtime_nsec;
    uint32_t ctime_nsec;
    uint32_t btime_nsec;
    uint32_t has_btime;
    uint64_t attributes;    /* STATX_ATTR_* */
    uint64_t ino;
    uint64_t size;
    uint64_t blocks;        /* 512-byte units */
    uint64_t mnt_id;
    int64_t atime_sec;
    int64_t mtime_sec;
    int64_t ctime_sec;
    int64_t btime_sec;
} lfs_stat;

typedef struct {
    uint64_t block_size;
    uint64_t blocks;
    uint64_t blocks_free;
    uint64_t blocks_available;
    uint64_t files;
    uint64_t files_free;
    uint64_t name_max;
} lfs_fsstat;

/* Whether the object is a mount root (STATX_ATTR_MOUNT_ROOT in lfs_stat.attributes). */
int lfs_is_mount_root(const lfs_stat *st);
/// syncfs(2): flushes the whole filesystem `fd` is on.
int lfs_syncfs(int fd);

/* statx(dirfd, path, flags | AT_SYMLINK_NOFOLLOW | AT_STATX_SYNC_AS_STAT); path "" means the fd
   itself (AT_EMPTY_PATH is added). `btime` asks for the birth time too. */
int lfs_stat_at(int dirfd, const char *path, int btime, lfs_stat *out);

/* openat2(dirfd, path, {flags | O_CLOEXEC, mode, resolve}). */
int lfs_openat2(int dirfd, const char *path, int flags, uint32_t mode, uint64_t resolve);

/* name_to_handle_at(dirfd, path, ..., flags): path "" means the fd itself. Fills `type`,
   `bytes` (LFS_MAX_HANDLE of room), `count` and `mount_id`. */
int lfs_name_to_handle(int dirfd, const char *path, int follow, int32_t *type, uint8_t *bytes, uint32_t *count, int32_t *mount_id);

/* open_by_handle_at(mount_fd, handle, flags | O_CLOEXEC). */
int lfs_open_by_handle(int mount_fd, int32_t type, const uint8_t *bytes, uint32_t count, int flags);

/* Sets the calling thread's filesystem uid and gid and supplementary groups (raw system calls:
   glibc's setgroups() would change every thread of the process). Checks that the ids took. */
int lfs_set_thread_credentials(uint32_t uid, uint32_t gid, const uint32_t *groups, int count);

/* Gives the calling thread its own umask (unshare(CLONE_FS), once per thread) and sets it to
   0; returns the previous umask, or a negative errno when the thread cannot have its own. */
int lfs_thread_umask_zero(void);
/* Restores the calling thread's umask after lfs_thread_umask_zero. */
void lfs_thread_umask_restore(uint32_t mask);

/* fchmodat2(fd, "", mode, AT_EMPTY_PATH): works on O_PATH descriptors. */
int lfs_chmod_fd(int fd, uint32_t mode);
/* fchownat(fd, "", uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW); -1 leaves an id. */
int lfs_chown_fd(int fd, int64_t uid, int64_t gid);
/* utimensat(fd, "", times, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW). A nanosecond value of -1
   means "now", -2 "leave unchanged". */
int lfs_utimens_fd(int fd, int64_t atime_sec, int64_t atime_nsec, int64_t mtime_sec, int64_t mtime_nsec);

int lfs_mkdirat(int dirfd, const char *name, uint32_t mode);
/* mknodat for devices, FIFOs and sockets: `mode` includes the S_IF* type bits. */
int lfs_mknodat(int dirfd, const char *name, uint32_t mode, uint32_t major, uint32_t minor);
int lfs_symlinkat(const char *target, int dirfd, const char *name);
/* linkat(AT_FDCWD, "/proc/self/fd/<fd>", dirfd, name, AT_SYMLINK_FOLLOW): links the object
   an O_PATH descriptor names without needing CAP_DAC_READ_SEARCH. */
int lfs_link_fd(int fd, int dirfd, const char *name);
int lfs_unlinkat(int dirfd, const char *name, int directory);
int lfs_renameat(int olddirfd, const char *oldname, int newdirfd, const char *newname);
/* readlinkat(fd, "", ...) of an O_PATH symlink descriptor; returns the length. */
int64_t lfs_readlink_fd(int fd, char *buffer, uint64_t size);

/* "/proc/self/fd/<fd>" into `out` (32 bytes of room). */
void lfs_fd_path(int fd, char *out);
/* Opens the object an O_PATH descriptor names again, with `flags` and the calling thread's
   credentials (the kernel checks permissions as for any open). */
int lfs_reopen(int fd, int flags);
/* truncate("/proc/self/fd/<fd>", size): permission-checked with the thread's credentials. */
int lfs_truncate_fd(int fd, uint64_t size);

int lfs_fstatfs(int fd, lfs_fsstat *out);

int64_t lfs_pread(int fd, void *buffer, uint64_t count, uint64_t offset);
int64_t lfs_pwrite(int fd, const void *buffer, uint64_t count, uint64_t offset);
int lfs_fsync(int fd, int data_only);
int lfs_fallocate(int fd, int punch_hole, uint64_t offset, uint64_t length);
/* lseek(fd, offset, SEEK_DATA or SEEK_HOLE). */
int64_t lfs_seek(int fd, uint64_t offset, int hole);
int64_t lfs_copy_range(int fd_in, uint64_t offset_in, int fd_out, uint64_t offset_out, uint64_t count);
/* getdents64 into `buffer`; lfs_seek_dir positions the directory at a cookie (d_off) first. */
int64_t lfs_getdents(int fd, void *buffer, uint64_t size);
int64_t lfs_seek_dir(int fd, uint64_t cookie);

/* Extended attributes of the object an O_PATH descriptor names (through /proc/self/fd). */
int64_t lfs_getxattr_fd(int fd, const char *name, void *value, uint64_t size);
int lfs_setxattr_fd(int fd, const char *name, const void *value, uint64_t size, int create, int replace);
int64_t lfs_listxattr_fd(int fd, char *list, uint64_t size);
int lfs_removexattr_fd(int fd, const char *name);

int lfs_close(int fd);

/* What "/proc/self/fd/<fd>" points to (the path the kernel knows for the object, "/" or a
   bare name for a disconnected one); returns the length. */
int64_t lfs_fd_target(int fd, char *buffer, uint64_t size);

/* open(2) flags, with this architecture's values. */
extern const int lfs_O_PATH;
extern const int lfs_O_DIRECTORY;
extern const int lfs_O_NOFOLLOW;
extern const int lfs_O_CREAT;
extern const int lfs_O_EXCL;
extern const int lfs_O_RDONLY;
extern const int lfs_O_WRONLY;
extern const int lfs_O_RDWR;
#endif
