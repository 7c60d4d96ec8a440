/*
 * handoff.h: virtual file descriptors for C and C++ programs that need more open files than
 * the descriptor limit allows (RLIMIT_NOFILE on Unix, the C runtime's 2048-slot table in
 * msvcrt.dll on Windows).
 *
 * Link: -lhandoff_c (libhandoff_c.so / libhandoff_c.a on Linux; handoff_c.dll with its import
 * library on Windows). With the static library on Linux add -lpthread -ldl -lm.
 *
 * A handoff_pager holds at most a budget of real descriptors; each virtual descriptor (an int
 * from 1 << 30 up, so that one passed to read(2) by mistake fails with EBADF) is paged in and
 * out as it is used. Each virtual descriptor has its own cursor, which survives paging.
 *
 * Every function returns -1 (handoff_pager_new: NULL) with errno set on failure:
 *   EINVAL   a NULL pointer, bad flags, a bad whence, a negative offset or length
 *   EBADF    a virtual descriptor that is not open (closed, or never opened). A closed number
 *            is not handed out again before 1,024 other numbers have been closed after it, so
 *            a stale second handoff_close fails with EBADF instead of closing a newer file
 *   ENOENT   no such file; or the file was renamed, removed or replaced while paged out
 *   EACCES   access refused (checked again whenever a file is paged in)
 *   EMFILE   no real descriptor can be had: the process is out of them, nothing is evictable
 *   EDEADLK  a descriptor could never be freed for this call: this thread's own pins and the
 *            files that are never paged out (directories, devices such as /dev/null, FIFOs,
 *            sockets, unlinked files) hold the whole budget (e.g. a second handoff_pin under a
 *            budget of 1, or any open after two of /dev/null under a budget of 2)
 *   EBUSY    handoff_pin on a descriptor that is pinned already
 *   EIO      an internal error (a bug: the library never aborts the process)
 * and the C runtime's errno values of the underlying calls otherwise.
 *
 * Thread-safe: any function from any thread, on any virtual descriptor. handoff_pin,
 * handoff_unpin and handoff_close wait for the calls already running on the same virtual
 * descriptor; a thread that holds pins should not close or pin a descriptor that another thread
 * is using while that thread may be waiting for one of those pins (as with two locks).
 *
 * Windows: the descriptors that handoff_pin returns belong to the C runtime the DLL links:
 * msvcrt.dll for the MinGW-w64 (x86_64-pc-windows-gnu) build. Use them with msvcrt.dll's
 * _read/_write/_lseeki64 (a program built by MinGW-w64 links the same msvcrt.dll, so its
 * plain _read and _write are those). A program built against another C runtime (the UCRT:
 * MSVC, or MinGW-w64's ucrt flavour) must not pass them to its own _read/_write, whose table
 * does not hold them: take the HANDLE with msvcrt.dll's _get_osfhandle (GetProcAddress on
 * "msvcrt.dll") and use ReadFile/WriteFile, or use handoff_read/handoff_write, which work in
 * every runtime. errno is msvcrt.dll's as well (read it through msvcrt.dll's _errno() from a
 * UCRT program). Flags are the _O_* values (_O_BINARY and _O_NOINHERIT accepted, _O_TEXT
 * refused: pinned descriptors are binary); mode is ignored (files are created read-write);
 * paths are UTF-8.
 */
#ifndef HANDOFF_H
#define HANDOFF_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32) && !defined(HANDOFF_STATIC)
#define HANDOFF_API __declspec(dllimport)
#else
#define HANDOFF_API
#endif

/* A pager and its virtual descriptors (opaque). */
typedef struct handoff_pager handoff_pager;

/* The pager's counters, filled by handoff_pager_stats. */
typedef struct handoff_stats {
    uint64_t budget;            /* the most real descriptors the pager may hold */
    uint64_t resident;          /* real descriptors held now */
    uint64_t peak_resident;     /* the most held at once */
    uint64_t permanent;         /* resident ones that can never be paged out (pipes, ...) */
    uint64_t hits;              /* operations that found their descriptor resident */
    uint64_t page_ins;          /* descriptors opened again to page a file in */
    uint64_t evictions;         /* descriptors closed to make room */
    uint64_t identity_failures; /* page-ins refused: another file (or none) at the path */
    uint64_t opens;             /* virtual descriptors opened */
    uint64_t closes;            /* virtual descriptors closed */
    uint64_t waits;             /* times a caller waited for a descriptor of the budget */
    uint64_t emfile_retries;    /* opens retried after EMFILE/ENFILE from elsewhere */
} handoff_stats;

/* A pager holding at most `budget` real descriptors (0: the descriptor limit less a reserve for
 * the rest of the process). NULL + errno on failure. */
HANDOFF_API handoff_pager *handoff_pager_new(size_t budget);
/* Closes every virtual descriptor still open in it (pinned ones too), then frees it. NULL is
 * ignored. No call on the pager may run during or after it. */
HANDOFF_API void handoff_pager_free(handoff_pager *pager);
/* Changes the budget (0: from the limit). A smaller one evicts at once (pinned files stay). */
HANDOFF_API int handoff_pager_set_budget(handoff_pager *pager, size_t budget);
/* Fills *stats. */
HANDOFF_API int handoff_pager_stats(const handoff_pager *pager, handoff_stats *stats);

/* Opens path as a virtual descriptor. flags: O_RDONLY/O_WRONLY/O_RDWR, O_APPEND, O_CREAT,
 * O_TRUNC, O_EXCL (those three apply at this first open only), O_CLOEXEC (always on); mode:
 * the permissions of a created file. Unlike open(2), these combinations are EINVAL (as in
 * Rust's OpenOptions): O_TRUNC with O_RDONLY or with O_APPEND, O_CREAT with O_RDONLY. */
HANDOFF_API int handoff_open(handoff_pager *pager, const char *path, int flags, int mode);
/* Closes it (pinned or not); reports an error kept from closing at an earlier eviction. */
HANDOFF_API int handoff_close(handoff_pager *pager, int vfd);
/* read/write at the cursor, moving it. */
HANDOFF_API int64_t handoff_read(handoff_pager *pager, int vfd, void *buf, size_t len);
HANDOFF_API int64_t handoff_write(handoff_pager *pager, int vfd, const void *buf, size_t len);
/* read/write at offset; the cursor does not move. */
HANDOFF_API int64_t handoff_pread(handoff_pager *pager, int vfd, void *buf, size_t len, int64_t offset);
HANDOFF_API int64_t handoff_pwrite(handoff_pager *pager, int vfd, const void *buf, size_t len, int64_t offset);
/* Moves the cursor (SEEK_SET, SEEK_CUR, SEEK_END); returns the new position. */
HANDOFF_API int64_t handoff_lseek(handoff_pager *pager, int vfd, int64_t offset, int whence);
/* A real C-runtime descriptor at the file's cursor, held (never paged out) until
 * handoff_unpin. Do not close it. While pinned, the descriptor's offset is the cursor:
 * handoff_read/handoff_write/handoff_lseek use the descriptor. EBUSY if pinned already. */
HANDOFF_API int handoff_pin(handoff_pager *pager, int vfd);
/* Gives the descriptor back; the cursor takes its offset. EINVAL if not pinned. */
HANDOFF_API int handoff_unpin(handoff_pager *pager, int vfd);
/* fsync. */
HANDOFF_API int handoff_fsync(handoff_pager *pager, int vfd);
/* ftruncate: truncates or extends to length bytes; the cursor does not move. */
HANDOFF_API int handoff_ftruncate(handoff_pager *pager, int vfd, int64_t length);
/* The file's size in bytes. */
HANDOFF_API int64_t handoff_size(handoff_pager *pager, int vfd);

#ifdef __cplusplus
}
#endif

#endif /* HANDOFF_H */
