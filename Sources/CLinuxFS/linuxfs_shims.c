#define _GNU_SOURCE
#include "linuxfs_shims.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/xattr.h>
#include <unistd.h>
#include <linux/openat2.h>

#ifndef SYS_openat2
#define SYS_openat2 437
#endif
#ifndef SYS_fchmodat2
#define SYS_fchmodat2 452
#endif
#ifndef STATX_ATTR_MOUNT_ROOT
#define STATX_ATTR_MOUNT_ROOT 0x00002000
#endif
#ifndef STATX_MNT_ID
#define STATX_MNT_ID 0x00001000U
#endif

#define RESULT(expr) ((expr) < 0 ? -errno : 0)

int lfs_is_mount_root(const lfs_stat *st) { return (st->attributes & STATX_ATTR_MOUNT_ROOT) != 0; }

int lfs_syncfs(int fd) { return syncfs(fd); }

int lfs_stat_at(int dirfd, const char *path, int btime, lfs_stat *out) {
    struct statx sx;
    int flags = AT_SYMLINK_NOFOLLOW | AT_STATX_SYNC_AS_STAT | AT_NO_AUTOMOUNT;
    if (path[0] == 0) flags |= AT_EMPTY_PATH;
    unsigned int mask = STATX_BASIC_STATS | STATX_MNT_ID | (btime ? STATX_BTIME : 0);
    if (statx(dirfd, path, flags, mask, &sx) < 0) return -errno;
    out->mask = sx.stx_mask;
    out->mode = sx.stx_mode;
    out->nlink = sx.stx_nlink;
    out->uid = sx.stx_uid;
    out->gid = sx.stx_gid;
    out->dev_major = sx.stx_dev_major;
    out->dev_minor = sx.stx_dev_minor;
    out->rdev_major = sx.stx_rdev_major;
    out->rdev_minor = sx.stx_rdev_minor;
    out->atime_sec = sx.stx_atime.tv_sec;
    out->atime_nsec = sx.stx_atime.tv_nsec;
    out->mtime_sec = sx.stx_mtime.tv_sec;
    out->mtime_nsec = sx.stx_mtime.tv_nsec;
    out->ctime_sec = sx.stx_ctime.tv_sec;
    out->ctime_nsec = sx.stx_ctime.tv_nsec;
    out->has_btime = (sx.stx_mask & STATX_BTIME) != 0;
    out->btime_sec = sx.stx_btime.tv_sec;
    out->btime_nsec = sx.stx_btime.tv_nsec;
    out->attributes = sx.stx_attributes & sx.stx_attributes_mask;
    out->ino = sx.stx_ino;
    out->size = sx.stx_size;
    out->blocks = sx.stx_blocks;
    out->mnt_id = (sx.stx_mask & STATX_MNT_ID) ? sx.stx_mnt_id : 0;
    return 0;
}

int lfs_openat2(int dirfd, const char *path, int flags, uint32_t mode, uint64_t resolve) {
    struct open_how how;
    memset(&how, 0, sizeof how);
    how.flags = (uint64_t)(unsigned)(flags | O_CLOEXEC);
    /* The kernel refuses a mode without O_CREAT or O_TMPFILE. */
    how.mode = (flags & (O_CREAT | __O_TMPFILE)) ? mode : 0;
    how.resolve = resolve;
    long fd = syscall(SYS_openat2, dirfd, path, &how, sizeof how);
    return fd < 0 ? -errno : (int)fd;
}

int lfs_name_to_handle(int dirfd, const char *path, int follow, int32_t *type, uint8_t *bytes, uint32_t *count, int32_t *mount_id) {
    union {
        struct file_handle handle;
        unsigned char space[sizeof(struct file_handle) + LFS_MAX_HANDLE];
    } buffer;
    buffer.handle.handle_bytes = LFS_MAX_HANDLE;
    int flags = (path[0] == 0 ? AT_EMPTY_PATH : 0) | (follow ? AT_SYMLINK_FOLLOW : 0);
    int mount = 0;
    if (name_to_handle_at(dirfd, path, &buffer.handle, &mount, flags) < 0) return -errno;
    *type = buffer.handle.handle_type;
    *count = buffer.handle.handle_bytes;
    *mount_id = mount;
    memcpy(bytes, buffer.handle.f_handle, buffer.handle.handle_bytes);
    return 0;
}

int lfs_open_by_handle(int mount_fd, int32_t type, const uint8_t *bytes, uint32_t count, int flags) {
    if (count > LFS_MAX_HANDLE) return -EINVAL;
    union {
        struct file_handle handle;
        unsigned char space[sizeof(struct file_handle) + LFS_MAX_HANDLE];
    } buffer;
    buffer.handle.handle_bytes = count;
    buffer.handle.handle_type = type;
    memcpy(buffer.handle.f_handle, bytes, count);
    int fd = open_by_handle_at(mount_fd, &buffer.handle, flags | O_CLOEXEC);
    return fd < 0 ? -errno : fd;
}

int lfs_set_thread_credentials(uint32_t uid, uint32_t gid, const uint32_t *groups, int count) {
    /* Raw system calls act on the calling thread only. Groups and gid first: setfsuid to a
       non-zero id drops the filesystem capabilities (not CAP_SETGID, but keep the order
       obvious). */
    if (syscall(SYS_setgroups, (size_t)count, (const gid_t *)groups) < 0) return -errno;
    syscall(SYS_setfsgid, (gid_t)gid);
    syscall(SYS_setfsuid, (uid_t)uid);
    /* setfs[ug]id report no errors: read the ids back (-1 changes nothing, returns current). */
    if ((uint32_t)syscall(SYS_setfsgid, (gid_t)-1) != gid) return -EPERM;
    if ((uint32_t)syscall(SYS_setfsuid, (uid_t)-1) != uid) return -EPERM;
    return 0;
}

static __thread int thread_has_own_fs;

int lfs_thread_umask_zero(void) {
    if (!thread_has_own_fs) {
        if (unshare(CLONE_FS) < 0) return -errno;
        thread_has_own_fs = 1;
    }
    return (int)umask(0);
}

void lfs_thread_umask_restore(uint32_t mask) {
    if (thread_has_own_fs) umask((mode_t)mask);
}

int lfs_chmod_fd(int fd, uint32_t mode) {
    return RESULT(syscall(SYS_fchmodat2, fd, "", (mode_t)mode, AT_EMPTY_PATH));
}

int lfs_chown_fd(int fd, int64_t uid, int64_t gid) {
    return RESULT(fchownat(fd, "", (uid_t)uid, (gid_t)gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW));
}

static struct timespec lfs_time(int64_t sec, int64_t nsec) {
    struct timespec t;
    t.tv_sec = (time_t)sec;
    t.tv_nsec = nsec == -1 ? UTIME_NOW : nsec == -2 ? UTIME_OMIT : (long)nsec;
    return t;
}

int lfs_utimens_fd(int fd, int64_t atime_sec, int64_t atime_nsec, int64_t mtime_sec, int64_t mtime_nsec) {
    struct timespec times[2] = { lfs_time(atime_sec, atime_nsec), lfs_time(mtime_sec, mtime_nsec) };
    return RESULT(utimensat(fd, "", times, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW));
}

int lfs_mkdirat(int dirfd, const char *name, uint32_t mode) { return RESULT(mkdirat(dirfd, name, (mode_t)mode)); }

int lfs_mknodat(int dirfd, const char *name, uint32_t mode, uint32_t major, uint32_t minor) {
    return RESULT(mknodat(dirfd, name, (mode_t)mode, makedev(major, minor)));
}

int lfs_symlinkat(const char *target, int dirfd, const char *name) { return RESULT(symlinkat(target, dirfd, name)); }

void lfs_fd_path(int fd, char *out) { snprintf(out, 32, "/proc/self/fd/%d", fd); }

int lfs_link_fd(int fd, int dirfd, const char *name) {
    char path[32];
    lfs_fd_path(fd, path);
    return RESULT(linkat(AT_FDCWD, path, dirfd, name, AT_SYMLINK_FOLLOW));
}

int lfs_unlinkat(int dirfd, const char *name, int directory) {
    return RESULT(unlinkat(dirfd, name, directory ? AT_REMOVEDIR : 0));
}

int lfs_renameat(int olddirfd, const char *oldname, int newdirfd, const char *newname) {
    return RESULT(renameat2(olddirfd, oldname, newdirfd, newname, 0));
}

int64_t lfs_readlink_fd(int fd, char *buffer, uint64_t size) {
    ssize_t n = readlinkat(fd, "", buffer, size);
    return n < 0 ? -errno : n;
}

int lfs_reopen(int fd, int flags) {
    char path[32];
    lfs_fd_path(fd, path);
    int result = open(path, flags | O_CLOEXEC);
    return result < 0 ? -errno : result;
}

int lfs_truncate_fd(int fd, uint64_t size) {
    char path[32];
    lfs_fd_path(fd, path);
    return RESULT(truncate(path, (off_t)size));
}

int lfs_fstatfs(int fd, lfs_fsstat *out) {
    struct statfs s;
    if (fstatfs(fd, &s) < 0) return -errno;
    out->block_size = s.f_frsize ? (uint64_t)s.f_frsize : (uint64_t)s.f_bsize;
    out->blocks = s.f_blocks;
    out->blocks_free = s.f_bfree;
    out->blocks_available = s.f_bavail;
    out->files = s.f_files;
    out->files_free = s.f_ffree;
    out->name_max = s.f_namelen;
    return 0;
}

int64_t lfs_pread(int fd, void *buffer, uint64_t count, uint64_t offset) {
    ssize_t n = pread(fd, buffer, count, (off_t)offset);
    return n < 0 ? -errno : n;
}

int64_t lfs_pwrite(int fd, const void *buffer, uint64_t count, uint64_t offset) {
    ssize_t n = pwrite(fd, buffer, count, (off_t)offset);
    return n < 0 ? -errno : n;
}

int lfs_fsync(int fd, int data_only) { return RESULT(data_only ? fdatasync(fd) : fsync(fd)); }

int lfs_fallocate(int fd, int punch_hole, uint64_t offset, uint64_t length) {
    int mode = punch_hole ? (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE) : 0;
    return RESULT(fallocate(fd, mode, (off_t)offset, (off_t)length));
}

int64_t lfs_seek(int fd, uint64_t offset, int hole) {
    off_t r = lseek(fd, (off_t)offset, hole ? SEEK_HOLE : SEEK_DATA);
    return r < 0 ? -errno : r;
}

int64_t lfs_copy_range(int fd_in, uint64_t offset_in, int fd_out, uint64_t offset_out, uint64_t count) {
    loff_t in = (loff_t)offset_in, out = (loff_t)offset_out;
    ssize_t n = copy_file_range(fd_in, &in, fd_out, &out, count, 0);
    return n < 0 ? -errno : n;
}

int64_t lfs_getdents(int fd, void *buffer, uint64_t size) {
    long n = syscall(SYS_getdents64, fd, buffer, size);
    return n < 0 ? -errno : n;
}

int64_t lfs_seek_dir(int fd, uint64_t cookie) {
    off_t r = lseek(fd, (off_t)cookie, SEEK_SET);
    return r < 0 ? -errno : r;
}

int64_t lfs_getxattr_fd(int fd, const char *name, void *value, uint64_t size) {
    char path[32];
    lfs_fd_path(fd, path);
    ssize_t n = getxattr(path, name, value, size);
    return n < 0 ? -errno : n;
}

int lfs_setxattr_fd(int fd, const char *name, const void *value, uint64_t size, int create, int replace) {
    char path[32];
    lfs_fd_path(fd, path);
    int flags = (create ? XATTR_CREATE : 0) | (replace ? XATTR_REPLACE : 0);
    return RESULT(setxattr(path, name, value, size, flags));
}

int64_t lfs_listxattr_fd(int fd, char *list, uint64_t size) {
    char path[32];
    lfs_fd_path(fd, path);
    ssize_t n = listxattr(path, list, size);
    return n < 0 ? -errno : n;
}

int lfs_removexattr_fd(int fd, const char *name) {
    char path[32];
    lfs_fd_path(fd, path);
    return RESULT(removexattr(path, name));
}

int lfs_close(int fd) { return RESULT(close(fd)); }

int64_t lfs_fd_target(int fd, char *buffer, uint64_t size) {
    char path[32];
    lfs_fd_path(fd, path);
    ssize_t n = readlink(path, buffer, size);
    return n < 0 ? -errno : n;
}

const int lfs_O_PATH = O_PATH;
const int lfs_O_DIRECTORY = O_DIRECTORY;
const int lfs_O_NOFOLLOW = O_NOFOLLOW;
const int lfs_O_CREAT = O_CREAT;
const int lfs_O_EXCL = O_EXCL;
const int lfs_O_RDONLY = O_RDONLY;
const int lfs_O_WRONLY = O_WRONLY;
const int lfs_O_RDWR = O_RDWR;
