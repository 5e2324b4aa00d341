#ifndef CCUSTODY_SYSTEM_H
#define CCUSTODY_SYSTEM_H

/// Flushes every dirty page and inode of the filesystem that holds `fd` (Linux `syncfs(2)`).
/// Returns 0 on success, -1 with errno set otherwise.
int CCustodySystem_syncfs(int fd);

#endif
