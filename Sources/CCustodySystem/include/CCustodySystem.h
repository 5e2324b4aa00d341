#ifndef CCUSTODY_SYSTEM_H
#define CCUSTODY_SYSTEM_H

/// Flushes every dirty page and inode of the filesystem that holds `fd` (Linux `syncfs(2)`).
/// Returns 0 on success, -1 with errno set otherwise.
int CCustodySystem_syncfs(int fd);

/// Starts writing back the dirty pages of `fd` in [offset, offset + count) without waiting (Linux
/// `sync_file_range(2)` with SYNC_FILE_RANGE_WRITE), so a later fsync has less left to wait for. A hint:
/// it makes nothing durable. Returns 0 on success, -1 with errno set otherwise.
int CCustodySystem_start_writeback(int fd, long long offset, long long count);

/// Caps glibc's malloc arenas (`mallopt(M_ARENA_MAX, count)`). Returns 1 on success, 0 otherwise.
int CCustodySystem_limit_malloc_arenas(int count);

/// Turns core dumps off for the whole process: RLIMIT_CORE 0 (soft and hard) and PR_SET_DUMPABLE 0 (Linux).
/// Returns 0 on success, -1 with errno set otherwise.
int CCustodySystem_disable_core_dumps(void);

#endif
