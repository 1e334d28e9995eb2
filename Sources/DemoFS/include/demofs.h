/*
 * demofs, the example dmanoel-NAS VFS plugin (libdmanoel-NAS_vfs_demofs.so).
 *
 * The library's only export is the plugin entry point of dmanoel_vfs_plugin.h; nothing else is
 * meant to be called directly. Configuration (JSON, named by server.vfs.<name>.config):
 *
 *     {"path": "/var/lib/demofs/data.log", "sync": true}
 *
 * "path" (required) is the one file demofs keeps everything in, created if missing; a relative
 * path is taken relative to the config file's directory. "sync" (default true) makes every
 * metadata change durable (fdatasync) before it is acknowledged; data writes follow the
 * caller's stability either way.
 *
 * On-disk format, version 1 (all integers little endian):
 *   header (64 bytes): "DMDEMOFS", u32 version = 1, u32 header size = 64, u64 generation,
 *     i64 creation seconds, u32 nanoseconds, u32 root mode, zeros, u32 CRC32C of bytes 0..59
 *   records, appended: u32 magic "DREC", u32 payload length, u32 CRC32C(type, flags, payload),
 *     u16 type, u16 flags, payload. Types: 1 create, 2 setattr/truncate, 3 write (the data
 *     follows the fixed part and is read from here), 4 link, 5 remove/rmdir, 6 rename,
 *     7 xattr set, 8 xattr remove, 9 punch hole, 10 allocate.
 * At open the records are replayed into memory; a torn record at the end is cut off.
 */
#ifndef DMANOEL_DEMOFS_H
#define DMANOEL_DEMOFS_H

#include <dmanoel_vfs_plugin.h>

#endif
