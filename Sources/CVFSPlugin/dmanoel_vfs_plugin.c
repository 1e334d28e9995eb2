/* The plugin ABI is header-only; SwiftPM needs one source file to build the C target. */
#include "dmanoel_vfs_plugin.h"

uint32_t dmanoel_vfs_header_abi_version(void) { return DMANOEL_VFS_ABI_VERSION; }
