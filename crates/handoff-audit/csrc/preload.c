/*
 * libhandoff_audit: the LD_PRELOAD library behind `handoff audit`.
 *
 * It interposes the calls that create, own, close and use file descriptors, keeps per number
 * the state (open / closed / quarantined), the owner (a FILE*, a DIR*, or a tag announced by
 * handoff's own types) and the return addresses of the open and of the close, and writes a
 * record for every finding to a per-process file in $HANDOFF_AUDIT_DIR. The CLI symbolizes and
 * merges those records.
 *
 * Rules kept by every hook:
 *  - the program sees the same return value and errno as without the library (except that a
 *    call on a quarantined number fails with EBADF, which is what a closed number gives);
 *  - no recursion: a per-thread flag makes nested calls (from inside libc, from the report
 *    writer, from a signal handler that interrupts a hook) go straight to the real function;
 *  - no allocation and no blocking syscall while the table lock is held; the lock is held only
 *    for bookkeeping and for placing/releasing tombstones (open/fcntl/close of O_PATH "/");
 *  - stacks are raw return addresses (unwind.c's cached unwinder, or backtrace() where it
 *    cannot follow a frame; backtrace() is primed at load time so that libgcc_s is loaded
 *    before any hook runs); they are resolved to module+offset only when a finding is
 *    written (dladdr1, outside the lock), and to function/file/line by the CLI.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <execinfo.h>
#include <fcntl.h>
#include <limits.h>
#include <link.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/resource.h>
#include <sys/uio.h>
#include <unistd.h>

#include "unwind.h"

#define EXPORT __attribute__((visibility("default")))
#define TLS __thread __attribute__((tls_model("initial-exec")))

enum { MAX_FDS = 32768, DEPTH = 16, MAX_QUARANTINE = 4096 };
enum { S_UNKNOWN = 0, S_OPEN = 1, S_CLOSED = 2, S_TOMB = 3 };
enum { O_NONE = 0, O_FILE = 1, O_DIR = 2, O_TAG = 3 };

struct stack {
    int n;
    void *pc[DEPTH];
};

struct slot {
    unsigned char state;       /* S_*, read without the lock by the I/O hooks */
    unsigned char owner_kind;  /* O_* */
    unsigned char owner_hurt;  /* a finding already named the owner's loss of this number */
    unsigned char tracked;     /* opened while the library was watching (not inherited) */
    unsigned int gen;          /* bumped at every open and close of the number */
    unsigned int tomb_seq;     /* which quarantine entry placed the tombstone */
    unsigned long released;    /* the release batch that last gave its tombstone back */
    const void *owner;         /* FILE*, DIR*, or a NUL-terminated tag */
    const char *label;         /* who holds that FILE* (a tag from handoff's CStream), or NULL */
    const char *open_call, *close_call;
    struct stack opened, closed;
};

static struct slot table[MAX_FDS];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
    int fd;
    unsigned int seq;
} ring[2 * MAX_QUARANTINE];
static int ring_head, ring_len, quarantine_k = 64;
static unsigned int tomb_seq_next;
static unsigned long release_batches; /* batches of tombstones given back so far */

static int ready, leaks;
static char report_dir[512];
static char exe_path[1024];
static void *self_base;

/* Per thread: the recursion guard, and the last finding made by a close, written at once (a
 * program may abort right after it) and retracted if the next close shows that it was part of
 * a close-all loop (consecutive numbers). */
struct finding {
    const char *kind, *call, *prev_call, *open_call;
    const void *owner;
    const char *label;
    int owner_kind, fd, quarantined;
    unsigned long id; /* nonzero: may be retracted (a close that may belong to a loop) */
    struct stack stack, previous, opened;
};
static TLS int in_hook;
static TLS int last_close_fd = -2;
/* The current run of closes of consecutive numbers, and the findings made in its first
 * RUN_PROOF closes (retracted once the run is long enough to be a loop). */
enum { RUN_PROOF = 4 };
static TLS int run_len;
static TLS int run_step; /* +1 or -1: a loop goes one way (3, 4, 3, 4 is two cleanups) */
static TLS int run_found;
static TLS unsigned long run_ids[RUN_PROOF];
static unsigned long finding_ids;
/* The last finding made by an "is this number open?" (F_GETFD/F_GETFL) on a quarantined
 * number, retracted if the next call puts a descriptor there with dup2/dup3: that is how bash
 * saves a number before it reuses it (`exec 5>&-; exec 5>b`), a probe, not a use. Rust's std,
 * in debug builds, asks the same before closing an OwnedFd and aborts on the answer: that
 * finding stays (it was written at once). */
static TLS int probe_fd = -1;
static TLS unsigned long probe_id;

/* ---- the real functions ------------------------------------------------------------- */

#define REAL(ret, name, ...)                                                                 \
    typedef ret (*name##_fn)(__VA_ARGS__);                                                   \
    static name##_fn real_##name##_p;                                                         \
    static name##_fn real_##name(void) {                                                      \
        if (!real_##name##_p)                                                                 \
            real_##name##_p = (name##_fn)dlsym(RTLD_NEXT, #name);                             \
        return real_##name##_p;                                                               \
    }

REAL(int, open, const char *, int, ...)
REAL(int, open64, const char *, int, ...)
REAL(int, openat, int, const char *, int, ...)
REAL(int, openat64, int, const char *, int, ...)
REAL(int, __open_2, const char *, int)
REAL(int, __open64_2, const char *, int)
REAL(int, __openat_2, int, const char *, int)
REAL(int, __openat64_2, int, const char *, int)
REAL(int, creat, const char *, mode_t)
REAL(int, creat64, const char *, mode_t)
REAL(int, dup, int)
REAL(int, dup2, int, int)
REAL(int, dup3, int, int, int)
REAL(int, fcntl, int, int, ...)
REAL(int, fcntl64, int, int, ...)
REAL(int, socket, int, int, int)
REAL(int, socketpair, int, int, int, int *)
REAL(int, accept, int, struct sockaddr *, socklen_t *)
REAL(int, accept4, int, struct sockaddr *, socklen_t *, int)
REAL(int, pipe, int *)
REAL(int, pipe2, int *, int)
REAL(int, eventfd, unsigned int, int)
REAL(int, memfd_create, const char *, unsigned int)
REAL(int, epoll_create, int)
REAL(int, epoll_create1, int)
REAL(int, signalfd, int, const void *, int)
REAL(int, timerfd_create, int, int)
REAL(int, inotify_init, void)
REAL(int, inotify_init1, int)
REAL(FILE *, fopen, const char *, const char *)
REAL(FILE *, fopen64, const char *, const char *)
REAL(FILE *, fdopen, int, const char *)
REAL(FILE *, freopen, const char *, const char *, FILE *)
REAL(FILE *, freopen64, const char *, const char *, FILE *)
REAL(int, fclose, FILE *)
REAL(FILE *, popen, const char *, const char *)
REAL(int, pclose, FILE *)
REAL(DIR *, opendir, const char *)
REAL(DIR *, fdopendir, int)
REAL(struct dirent *, readdir, DIR *)
REAL(struct dirent64 *, readdir64, DIR *)
REAL(int, closedir, DIR *)
REAL(int, close, int)
REAL(int, dlclose, void *)
REAL(void, __deregister_frame, void *)
REAL(int, close_range, unsigned int, unsigned int, int)
REAL(void, closefrom, int)
REAL(pid_t, fork, void)
REAL(ssize_t, read, int, void *, size_t)
REAL(ssize_t, __read_chk, int, void *, size_t, size_t)
REAL(ssize_t, write, int, const void *, size_t)
REAL(ssize_t, pread, int, void *, size_t, off_t)
REAL(ssize_t, pread64, int, void *, size_t, off_t)
REAL(ssize_t, pwrite, int, const void *, size_t, off_t)
REAL(ssize_t, pwrite64, int, const void *, size_t, off_t)
REAL(ssize_t, readv, int, const struct iovec *, int)
REAL(ssize_t, writev, int, const struct iovec *, int)
REAL(off_t, lseek, int, off_t, int)
REAL(off_t, lseek64, int, off_t, int)
REAL(int, fstat, int, struct stat *)
REAL(int, fstat64, int, struct stat64 *)
REAL(int, fsync, int)
REAL(int, fdatasync, int)
REAL(int, ftruncate, int, off_t)
REAL(ssize_t, recv, int, void *, size_t, int)
REAL(ssize_t, send, int, const void *, size_t, int)

/* ---- stacks and reports ------------------------------------------------------------- */

/* HANDOFF_AUDIT_STACKS=fast: walk frame pointers instead of unwinding with DWARF. This library
 * keeps frame pointers, so the walk always reaches the hook's caller; beyond it, it follows the
 * program's frame pointers, which only code built with them has (-O0, -fno-omit-frame-pointer):
 * elsewhere it stops early, bounded by this thread's stack so that it never reads outside it. */
static int fast_stacks;
static uintptr_t main_stack_lo, main_stack_hi;
static uintptr_t main_stack_floor; /* the lowest the main thread's stack may grow to */
static TLS uintptr_t stack_lo, stack_hi;

static void thread_stack_bounds(void) {
    uintptr_t here = (uintptr_t)__builtin_frame_address(0);
    if (here >= main_stack_lo && here < main_stack_hi) {
        stack_lo = main_stack_lo;
        stack_hi = main_stack_hi;
        return;
    }
    pthread_attr_t attr;
    if (pthread_getattr_np(pthread_self(), &attr) == 0) {
        void *addr;
        size_t size;
        if (pthread_attr_getstack(&attr, &addr, &size) == 0) {
            stack_lo = (uintptr_t)addr;
            stack_hi = stack_lo + size;
        }
        pthread_attr_destroy(&attr);
    }
    if (!stack_hi)
        stack_lo = stack_hi = 1; /* unknown: walk nothing */
}

static void capture_fast(struct stack *s) {
    if (!stack_hi)
        thread_stack_bounds();
    uintptr_t fp = (uintptr_t)__builtin_frame_address(0);
    int n = 0;
    while (n < DEPTH && fp >= stack_lo && fp + 2 * sizeof(uintptr_t) <= stack_hi && !(fp & 7)) {
        const uintptr_t *frame = (const uintptr_t *)fp;
        if (frame[1] < 4096)
            break;
        s->pc[n++] = (void *)frame[1];
        if (frame[0] <= fp)
            break;
        fp = frame[0];
    }
    s->n = n;
}

/* The top of this thread's stack if it is the main thread's, else 0 (not known: the cached
 * unwinder then only checks that each frame is above the one before). */
static uintptr_t known_stack_top(void) {
    uintptr_t here = (uintptr_t)__builtin_frame_address(0);
    return here >= main_stack_floor && here < main_stack_hi ? main_stack_hi : 0;
}

/* HANDOFF_AUDIT_STACKS=check: unwind every stack both with the cached unwinder and with
 * backtrace() (libgcc), and say on stderr where they differ (the tests' oracle). */
static int check_stacks;
static unsigned long stacks_compared, stacks_differing, stacks_by_libgcc;

static void compare_stacks(const struct stack *cached) {
    void *pc[DEPTH];
    int n = backtrace(pc, DEPTH);
    /* Frame 0 is this library's call site of each unwinder: they differ by design. */
    int same = n == cached->n;
    for (int i = 1; same && i < n; i++)
        same = pc[i] == cached->pc[i];
    __atomic_add_fetch(&stacks_compared, 1, __ATOMIC_RELAXED);
    if (same)
        return;
    __atomic_add_fetch(&stacks_differing, 1, __ATOMIC_RELAXED);
    char line[1024];
    int len = snprintf(line, sizeof line, "handoff-audit: stacks differ in pid %d: libgcc", getpid());
    for (int i = 1; i < n && len < 900; i++)
        len += snprintf(line + len, sizeof line - len, " %p", pc[i]);
    len += snprintf(line + len, sizeof line - len, "; cached");
    for (int i = 1; i < cached->n && len < 1000; i++)
        len += snprintf(line + len, sizeof line - len, " %p", cached->pc[i]);
    len += snprintf(line + len, sizeof line - len, "\n");
    if (len > (int)sizeof line)
        len = sizeof line;
    (void)!real_write()(2, line, len);
}

static void capture(struct stack *s) {
    if (fast_stacks) {
        capture_fast(s);
        return;
    }
    s->n = cfi_backtrace(s->pc, DEPTH, known_stack_top());
    if (s->n >= 0) {
        if (check_stacks)
            compare_stacks(s);
        return;
    }
    if (check_stacks)
        __atomic_add_fetch(&stacks_by_libgcc, 1, __ATOMIC_RELAXED);
    s->n = backtrace(s->pc, DEPTH);
    if (s->n < 0)
        s->n = 0;
}

/* The main thread's stack, from /proc/self/maps (at load time, before any hook runs). */
static void find_main_stack(void) {
    FILE *maps = fopen("/proc/self/maps", "re");
    if (!maps)
        return;
    char line[512];
    while (fgets(line, sizeof line, maps)) {
        if (strstr(line, "[stack]")) {
            unsigned long lo, hi;
            if (sscanf(line, "%lx-%lx", &lo, &hi) == 2) {
                main_stack_lo = lo;
                main_stack_hi = hi;
                struct rlimit limit;
                main_stack_floor = lo;
                if (getrlimit(RLIMIT_STACK, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY &&
                    limit.rlim_cur < hi && hi - limit.rlim_cur < lo)
                    main_stack_floor = hi - limit.rlim_cur;
            }
            break;
        }
    }
    fclose(maps);
}

struct buf {
    char data[12288];
    size_t len;
};

static void put(struct buf *b, const char *s) {
    size_t n = strlen(s);
    if (b->len + n > sizeof b->data)
        n = sizeof b->data - b->len;
    memcpy(b->data + b->len, s, n);
    b->len += n;
}

static void put_num(struct buf *b, unsigned long long v, int hex) {
    char tmp[32];
    int i = sizeof tmp;
    tmp[--i] = 0;
    do {
        tmp[--i] = "0123456789abcdef"[v % (hex ? 16 : 10)];
        v /= hex ? 16 : 10;
    } while (v && i > 0);
    if (hex) {
        tmp[--i] = 'x';
        tmp[--i] = '0';
    }
    put(b, tmp + i);
}

static void put_int(struct buf *b, long long v) {
    if (v < 0) {
        put(b, "-");
        v = -v;
    }
    put_num(b, (unsigned long long)v, 0);
}

/* One line per frame: F <section> <offset in module> <dynamic symbol or -> <module path>. */
static void put_stack(struct buf *b, const char *section, const struct stack *s) {
    for (int i = 0; i < s->n; i++) {
        Dl_info info;
        struct link_map *map = NULL;
        if (!dladdr1(s->pc[i], &info, (void **)&map, RTLD_DL_LINKMAP) || !map)
            continue;
        if (info.dli_fbase == self_base)
            continue; /* our own hook frames */
        const char *module = map->l_name && map->l_name[0] ? map->l_name : exe_path;
        put(b, "F\t");
        put(b, section);
        put(b, "\t");
        put_num(b, (uintptr_t)s->pc[i] - (uintptr_t)map->l_addr, 1);
        put(b, "\t");
        put(b, info.dli_sname ? info.dli_sname : "-");
        put(b, "\t");
        put(b, module);
        put(b, "\n");
    }
}

static void write_record(const struct buf *record);

static void emit(const struct finding *f) {
    struct buf b;
    b.len = 0;
    put(&b, "B\t");
    put(&b, f->kind);
    put(&b, "\t");
    put_int(&b, f->fd);
    put(&b, "\t");
    put_int(&b, getpid());
    put(&b, "\t");
    put(&b, f->call ? f->call : "-");
    put(&b, "\nX\t");
    put(&b, exe_path);
    put(&b, "\n");
    if (f->id) {
        put(&b, "I\t");
        put_num(&b, f->id, 0);
        put(&b, "\n");
    }
    if (f->prev_call) {
        put(&b, "C\t");
        put(&b, f->prev_call);
        put(&b, "\n");
    }
    if (f->open_call) {
        put(&b, "O\t");
        put(&b, f->open_call);
        put(&b, "\n");
    }
    if (f->quarantined)
        put(&b, "Q\n");
    if (f->owner_kind == O_FILE && f->label) {
        put(&b, "W\t");
        put(&b, f->label);
        put(&b, " (FILE*)\n");
    } else if (f->owner_kind == O_FILE)
        put(&b, "W\tFILE*\n");
    else if (f->owner_kind == O_DIR)
        put(&b, "W\tDIR*\n");
    else if (f->owner_kind == O_TAG && f->owner) {
        put(&b, "W\t");
        put(&b, (const char *)f->owner);
        put(&b, "\n");
    }
    put_stack(&b, "stack", &f->stack);
    put_stack(&b, "previous", &f->previous);
    put_stack(&b, "opened", &f->opened);
    put(&b, "E\n");

    write_record(&b);
}

/* Append one record to this process's report file (one write: O_APPEND keeps records whole). */
static void write_record(const struct buf *record) {
    const struct buf *rb = record;
    int saved = errno;
    int out = 2, opened = 0;
    if (report_dir[0]) {
        char path[sizeof report_dir + 24], digits[16];
        size_t n = strlen(report_dir);
        int i = sizeof digits;
        unsigned int pid = (unsigned int)getpid();
        memcpy(path, report_dir, n);
        path[n++] = '/';
        digits[--i] = 0;
        do {
            digits[--i] = (char)('0' + pid % 10);
            pid /= 10;
        } while (pid && i > 0);
        memcpy(path + n, digits + i, sizeof digits - (size_t)i - 1);
        n += sizeof digits - (size_t)i - 1;
        memcpy(path + n, ".audit", 7);
        out = real_open()(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        opened = 1;
    }
    if (out >= 0) {
        size_t done = 0;
        while (done < rb->len) {
            ssize_t w = real_write()(out, rb->data + done, rb->len - done);
            if (w <= 0)
                break;
            done += (size_t)w;
        }
        /* Closed whatever its number: with stderr closed, the report file is opened as 2. */
        if (opened)
            real_close()(out);
    }
    errno = saved;
}

/* The findings made at the start of this run of closes were a close-all loop after all. */
static void retract_run(void) {
    struct buf b;
    b.len = 0;
    for (int i = 0; i < run_found; i++) {
        put(&b, "R\t");
        put_num(&b, run_ids[i], 0);
        put(&b, "\n");
    }
    if (run_found)
        write_record(&b);
    run_found = 0;
}

/* A probe's finding (see `probe_fd`), if the number `target` is `probed`, the one probed by
 * the call just before (io_check, run since, forgets it); the probe is forgotten either way. */
static void retract_probe(int probed, int target) {
    if (probed == target && probe_id) {
        struct buf b;
        b.len = 0;
        put(&b, "R\t");
        put_num(&b, probe_id, 0);
        put(&b, "\n");
        write_record(&b);
    }
    probe_fd = -1;
    probe_id = 0;
}

/* Fill a finding from a slot; call with the lock held. */
static void describe(struct finding *f, const char *kind, int fd, const char *call,
                     const struct stack *now, const struct slot *s) {
    f->kind = kind;
    f->fd = fd;
    f->call = call;
    f->prev_call = s->closed.n ? s->close_call : NULL;
    f->open_call = s->opened.n ? s->open_call : NULL;
    f->owner_kind = s->owner_kind;
    f->owner = s->owner;
    f->label = s->label;
    f->quarantined = s->state == S_TOMB;
    f->id = 0;
    f->stack = *now;
    f->previous = s->closed;
    f->opened = s->opened;
}

/* ---- the table (call with the lock held) -------------------------------------------- */

static void lock_table(void) { pthread_mutex_lock(&lock); }
static void unlock_table(void) { pthread_mutex_unlock(&lock); }

/* A tombstone at ring[index] is still ours if its number is quarantined by that entry (dup2
 * onto it ends the quarantine; a later close quarantines it again under a new entry). */
static int tomb_valid(int index) {
    const struct slot *s = &table[ring[index].fd];
    return s->state == S_TOMB && s->tomb_seq == ring[index].seq;
}

/* Release the `count` oldest entries: each run of consecutive numbers with one close_range. */
static int release_oldest(int count) {
    static unsigned char marked[MAX_FDS]; /* scratch, used with the lock held */
    int capacity = 2 * quarantine_k, lo = MAX_FDS, hi = -1, released = 0;
    unsigned long batch = __atomic_add_fetch(&release_batches, 1, __ATOMIC_RELAXED);
    for (int i = 0; i < count; i++) {
        int index = (ring_head + i) % capacity;
        if (!tomb_valid(index))
            continue;
        int fd = ring[index].fd;
        marked[fd] = 1;
        __atomic_store_n(&table[fd].released, batch, __ATOMIC_RELAXED);
        __atomic_store_n(&table[fd].state, S_CLOSED, __ATOMIC_RELAXED);
        lo = fd < lo ? fd : lo;
        hi = fd > hi ? fd : hi;
        released++;
    }
    ring_head = (ring_head + count) % capacity;
    ring_len -= count;
    for (int fd = lo; fd <= hi;) {
        if (!marked[fd]) {
            fd++;
            continue;
        }
        int end = fd;
        while (end < hi && marked[end + 1])
            end++;
        for (int i = fd; i <= end; i++)
            marked[i] = 0;
        close_range_fn range = real_close_range();
        if (end == fd || !range || range((unsigned)fd, (unsigned)end, 0) != 0)
            for (int i = fd; i <= end; i++)
                real_close()(i);
        fd = end + 1;
    }
    return released;
}

static int release_all_tombs(void) { return release_oldest(ring_len); }

/* Put a close-on-exec O_PATH descriptor on the free number `fd`, without ever replacing a
 * descriptor that another thread (or libc, unseen) has just been given: F_DUPFD takes the
 * lowest free number >= fd, so it lands on fd only if fd is still free. The source is the last
 * tombstone placed (a dup costs less than a path lookup), or "/" opened afresh.
 *
 * The ring holds between K and 2K tombstones: when 2K are held, the oldest K (each quarantined
 * for at least K closes since) are released together, most often with one close_range. */
static int last_tomb = -1;
static void place_tomb(int fd) {
    if (fd < 3 || quarantine_k <= 0)
        return;
    int t;
    if (last_tomb >= 0 && table[last_tomb].state == S_TOMB) {
        t = real_fcntl()(last_tomb, F_DUPFD_CLOEXEC, fd);
    } else {
        t = real_openat()(AT_FDCWD, "/", O_PATH | O_CLOEXEC);
        if (t >= 0 && t < fd) {
            int u = real_fcntl()(t, F_DUPFD_CLOEXEC, fd);
            real_close()(t);
            t = u;
        }
    }
    if (t < 0)
        return;
    if (t != fd) {
        real_close()(t);
        return;
    }
    struct slot *s = &table[fd];
    __atomic_store_n(&s->state, S_TOMB, __ATOMIC_RELAXED);
    s->tomb_seq = ++tomb_seq_next;
    last_tomb = fd;
    if (ring_len == 2 * quarantine_k)
        release_oldest(quarantine_k);
    int at = (ring_head + ring_len) % (2 * quarantine_k);
    ring[at].fd = fd;
    ring[at].seq = s->tomb_seq;
    ring_len++;
}

static void mark_open(int fd, const char *call, const struct stack *st, int owner_kind,
                      const void *owner) {
    if (fd < 0 || fd >= MAX_FDS)
        return;
    struct slot *s = &table[fd];
    __atomic_store_n(&s->state, S_OPEN, __ATOMIC_RELAXED);
    s->gen++;
    s->tracked = 1;
    s->owner_kind = (unsigned char)owner_kind;
    s->owner = owner;
    s->label = NULL;
    s->owner_hurt = 0;
    s->open_call = call;
    s->opened = *st;
    s->closed.n = 0;
}

static void mark_closed(int fd, const char *call, const struct stack *st) {
    struct slot *s = &table[fd];
    __atomic_store_n(&s->state, S_CLOSED, __ATOMIC_RELAXED);
    s->gen++;
    s->close_call = call;
    s->closed = *st;
    place_tomb(fd);
}

/* ---- hook scaffolding --------------------------------------------------------------- */

#define ENTER()                                                                              \
    int hooked_ = ready && !in_hook;                                                          \
    if (hooked_) {                                                                           \
        in_hook = 1;                                                                         \
        run_len = 0;                                                                         \
        last_close_fd = -2;                                                                  \
    }
#define LEAVE() (in_hook = hooked_ ? 0 : in_hook)

static int retry_errno(int r) {
    if (r >= 0 || (errno != EMFILE && errno != ENFILE))
        return 0;
    int saved = errno, released;
    lock_table();
    released = release_all_tombs();
    unlock_table();
    errno = saved;
    return released > 0;
}

/* Record a new descriptor returned by a call (if hooked_), keeping errno. */
static int opened(int hooked, int fd, const char *call, int owner_kind, const void *owner) {
    if (hooked && fd >= 0 && fd < MAX_FDS) {
        int saved = errno;
        struct stack st;
        capture(&st);
        lock_table();
        mark_open(fd, call, &st, owner_kind, owner);
        unlock_table();
        errno = saved;
    }
    return fd;
}

#define OPENER(call, expr)                                                                   \
    do {                                                                                     \
        ENTER();                                                                             \
        int r_ = (expr);                                                                     \
        if (hooked_ && retry_errno(r_))                                                      \
            r_ = (expr);                                                                     \
        opened(hooked_, r_, call, O_NONE, NULL);                                             \
        LEAVE();                                                                             \
        return r_;                                                                           \
    } while (0)

/* A call on an existing descriptor: a number we know closed is use after close; a
 * quarantined one must fail as a closed one would, without reaching the tombstone.
 * Returns 1 when the caller must fail with EBADF. */
static int on_closed_number(int fd, const char *call, int probe) {
    struct stack st;
    struct finding f;
    int report = 0, deny = 0;
    capture(&st);
    lock_table();
    struct slot *s = &table[fd];
    if (s->state == S_TOMB) {
        report = deny = 1;
    } else if (s->state == S_CLOSED) {
        if (real_fcntl()(fd, F_GETFD) >= 0)
            s->state = S_UNKNOWN; /* reused by an opener we do not see: not ours to judge */
        else
            report = 1;
    }
    if (report)
        describe(&f, "use_after_close", fd, call, &st, s);
    unlock_table();
    if (report) {
        if (probe) {
            f.id = __atomic_add_fetch(&finding_ids, 1, __ATOMIC_RELAXED);
            probe_fd = fd;
            probe_id = f.id;
        }
        emit(&f);
    }
    return deny;
}

static inline int io_check(int fd, const char *call) {
    if (!ready || in_hook)
        return 0;
    /* Any call between two closes means they were not a close-all loop, and a probe followed
     * by anything but a dup2/dup3 onto its number was a use. */
    run_len = 0;
    last_close_fd = -2;
    probe_fd = -1;
    if ((unsigned)fd >= MAX_FDS)
        return 0;
    unsigned char state = __atomic_load_n(&table[fd].state, __ATOMIC_RELAXED);
    if (__builtin_expect(state < S_CLOSED, 1))
        return 0;
    in_hook = 1;
    int deny = state >= S_CLOSED ? on_closed_number(fd, call, 0) : 0;
    in_hook = 0;
    if (deny)
        errno = EBADF;
    return deny;
}

/* ---- opens -------------------------------------------------------------------------- */

static mode_t mode_arg(int flags, va_list ap) {
    return (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE ? va_arg(ap, mode_t) : 0;
}

EXPORT int open(const char *path, int flags, ...) {
    va_list ap;
    va_start(ap, flags);
    mode_t mode = mode_arg(flags, ap);
    va_end(ap);
    OPENER("open", real_open()(path, flags, mode));
}
EXPORT int open64(const char *path, int flags, ...) {
    va_list ap;
    va_start(ap, flags);
    mode_t mode = mode_arg(flags, ap);
    va_end(ap);
    OPENER("open", real_open64()(path, flags, mode));
}
EXPORT int openat(int dir, const char *path, int flags, ...) {
    va_list ap;
    va_start(ap, flags);
    mode_t mode = mode_arg(flags, ap);
    va_end(ap);
    OPENER("openat", real_openat()(dir, path, flags, mode));
}
EXPORT int openat64(int dir, const char *path, int flags, ...) {
    va_list ap;
    va_start(ap, flags);
    mode_t mode = mode_arg(flags, ap);
    va_end(ap);
    OPENER("openat", real_openat64()(dir, path, flags, mode));
}
EXPORT int __open_2(const char *path, int flags) { OPENER("open", real___open_2()(path, flags)); }
EXPORT int __open64_2(const char *path, int flags) {
    OPENER("open", real___open64_2()(path, flags));
}
EXPORT int __openat_2(int dir, const char *path, int flags) {
    OPENER("openat", real___openat_2()(dir, path, flags));
}
EXPORT int __openat64_2(int dir, const char *path, int flags) {
    OPENER("openat", real___openat64_2()(dir, path, flags));
}
EXPORT int creat(const char *path, mode_t mode) { OPENER("creat", real_creat()(path, mode)); }
EXPORT int creat64(const char *path, mode_t mode) { OPENER("creat", real_creat64()(path, mode)); }
EXPORT int socket(int d, int t, int p) { OPENER("socket", real_socket()(d, t, p)); }
EXPORT int accept(int fd, struct sockaddr *a, socklen_t *l) {
    if (io_check(fd, "accept"))
        return -1;
    OPENER("accept", real_accept()(fd, a, l));
}
EXPORT int accept4(int fd, struct sockaddr *a, socklen_t *l, int f) {
    if (io_check(fd, "accept4"))
        return -1;
    OPENER("accept4", real_accept4()(fd, a, l, f));
}
EXPORT int eventfd(unsigned int v, int f) { OPENER("eventfd", real_eventfd()(v, f)); }
EXPORT int memfd_create(const char *n, unsigned int f) {
    OPENER("memfd_create", real_memfd_create()(n, f));
}
EXPORT int epoll_create(int n) { OPENER("epoll_create", real_epoll_create()(n)); }
EXPORT int epoll_create1(int f) { OPENER("epoll_create1", real_epoll_create1()(f)); }
EXPORT int signalfd(int fd, const void *mask, int f) {
    if (fd != -1 && io_check(fd, "signalfd"))
        return -1;
    OPENER("signalfd", real_signalfd()(fd, mask, f));
}
EXPORT int timerfd_create(int c, int f) { OPENER("timerfd_create", real_timerfd_create()(c, f)); }
EXPORT int inotify_init(void) { OPENER("inotify_init", real_inotify_init()()); }
EXPORT int inotify_init1(int f) { OPENER("inotify_init1", real_inotify_init1()(f)); }
EXPORT int dup(int fd) {
    if (io_check(fd, "dup"))
        return -1;
    OPENER("dup", real_dup()(fd));
}

static int pair(int hooked, int r, int fds[2], const char *call) {
    if (r == 0) {
        opened(hooked, fds[0], call, O_NONE, NULL);
        opened(hooked, fds[1], call, O_NONE, NULL);
    }
    return r;
}
EXPORT int pipe(int fds[2]) {
    ENTER();
    int r = real_pipe()(fds);
    if (hooked_ && retry_errno(r))
        r = real_pipe()(fds);
    pair(hooked_, r, fds, "pipe");
    LEAVE();
    return r;
}
EXPORT int pipe2(int fds[2], int flags) {
    ENTER();
    int r = real_pipe2()(fds, flags);
    if (hooked_ && retry_errno(r))
        r = real_pipe2()(fds, flags);
    pair(hooked_, r, fds, "pipe2");
    LEAVE();
    return r;
}
EXPORT int socketpair(int d, int t, int p, int fds[2]) {
    ENTER();
    int r = real_socketpair()(d, t, p, fds);
    if (hooked_ && retry_errno(r))
        r = real_socketpair()(d, t, p, fds);
    pair(hooked_, r, fds, "socketpair");
    LEAVE();
    return r;
}

/* dup2/dup3 onto a number: allowed on a quarantined number (ends its quarantine: the kernel
 * closes the tombstone), and on an open one (an implicit close, as the caller asked). */
static int dup_onto(int hooked, int r, int target, const char *call) {
    if (hooked && r >= 0 && r < MAX_FDS) {
        int saved = errno;
        struct stack st;
        capture(&st);
        lock_table();
        struct slot *s = &table[r];
        int keep_owner = s->state == S_OPEN && s->owner_kind != O_NONE;
        const void *owner = s->owner;
        const char *label = s->label;
        int kind = s->owner_kind;
        mark_open(r, call, &st, keep_owner ? kind : O_NONE, keep_owner ? owner : NULL);
        if (keep_owner)
            s->label = label;
        unlock_table();
        errno = saved;
    }
    (void)target;
    return r;
}
EXPORT int dup2(int fd, int target) {
    int probed = probe_fd;
    if (io_check(fd, "dup2"))
        return -1;
    ENTER();
    int r = real_dup2()(fd, target);
    if (fd != target)
        dup_onto(hooked_, r, target, "dup2");
    if (hooked_ && r == target)
        retract_probe(probed, target);
    LEAVE();
    return r;
}
EXPORT int dup3(int fd, int target, int flags) {
    int probed = probe_fd;
    if (io_check(fd, "dup3"))
        return -1;
    ENTER();
    int r = real_dup3()(fd, target, flags);
    dup_onto(hooked_, r, target, "dup3");
    if (hooked_ && r == target)
        retract_probe(probed, target);
    LEAVE();
    return r;
}

static int do_fcntl(fcntl_fn real, int fd, int cmd, va_list ap) {
    void *arg = va_arg(ap, void *);
    if (cmd == F_GETFD || cmd == F_GETFL) {
        /* "Is this number open?" about a number long closed is a fair question; about one
         * closed a moment ago (still quarantined) it is how Rust's std, in debug builds, checks
         * an OwnedFd before closing it: a use after close, answered as a closed number. */
        if ((unsigned)fd < MAX_FDS && ready && !in_hook &&
            __atomic_load_n(&table[fd].state, __ATOMIC_RELAXED) == S_TOMB) {
            /* (As io_check: no close-all loop, no earlier probe, then this one's finding.) */
            run_len = 0;
            last_close_fd = -2;
            probe_fd = -1;
            in_hook = 1;
            on_closed_number(fd, "fcntl", 1);
            in_hook = 0;
            errno = EBADF;
            return -1;
        }
        return real(fd, cmd, arg);
    }
    if (io_check(fd, "fcntl"))
        return -1;
    if (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC) {
        ENTER();
        int r = real(fd, cmd, arg);
        if (hooked_ && retry_errno(r))
            r = real(fd, cmd, arg);
        opened(hooked_, r, "fcntl", O_NONE, NULL);
        LEAVE();
        return r;
    }
    return real(fd, cmd, arg);
}
EXPORT int fcntl(int fd, int cmd, ...) {
    va_list ap;
    va_start(ap, cmd);
    int r = do_fcntl(real_fcntl(), fd, cmd, ap);
    va_end(ap);
    return r;
}
EXPORT int fcntl64(int fd, int cmd, ...) {
    va_list ap;
    va_start(ap, cmd);
    int r = do_fcntl(real_fcntl64(), fd, cmd, ap);
    va_end(ap);
    return r;
}

/* ---- streams and directories -------------------------------------------------------- */

/* `fd` is now wrapped by `owner` (a FILE* from fdopen, a DIR* from fdopendir): an fd we never
 * saw open is recorded as opened here; an open one without an owner gets this one (a second
 * owner is left to the close checks, which report it). errno is kept. */
static void wrapped(int fd, const char *call, int owner_kind, const void *owner) {
    if (fd < 0 || fd >= MAX_FDS)
        return;
    int saved = errno;
    struct stack st;
    capture(&st);
    lock_table();
    struct slot *s = &table[fd];
    if (s->state != S_OPEN)
        mark_open(fd, call, &st, owner_kind, owner);
    else if (s->owner_kind == O_NONE) {
        s->owner_kind = owner_kind;
        s->owner = owner;
        s->label = NULL;
    }
    unlock_table();
    errno = saved;
}

static FILE *stream_opened(int hooked, FILE *f, const char *call) {
    if (f) {
        int saved = errno;
        int fd = fileno(f);
        errno = saved;
        opened(hooked, fd, call, O_FILE, f);
    }
    return f;
}

#define STREAM_OPENER(call, expr)                                                            \
    do {                                                                                     \
        ENTER();                                                                             \
        FILE *f_ = (expr);                                                                   \
        if (hooked_ && !f_ && retry_errno(-1))                                               \
            f_ = (expr);                                                                     \
        stream_opened(hooked_, f_, call);                                                    \
        LEAVE();                                                                             \
        return f_;                                                                           \
    } while (0)

EXPORT FILE *fopen(const char *p, const char *m) { STREAM_OPENER("fopen", real_fopen()(p, m)); }
EXPORT FILE *fopen64(const char *p, const char *m) {
    STREAM_OPENER("fopen", real_fopen64()(p, m));
}
EXPORT FILE *popen(const char *c, const char *m) { STREAM_OPENER("popen", real_popen()(c, m)); }

static FILE *do_freopen(freopen_fn real, const char *p, const char *m, FILE *old) {
    ENTER();
    int old_fd = -1;
    if (hooked_ && old) {
        old_fd = fileno(old);
    }
    struct stack st;
    if (hooked_)
        capture(&st);
    FILE *f = real(p, m, old);
    int saved = errno;
    if (hooked_ && old_fd >= 0 && old_fd < MAX_FDS) {
        lock_table();
        __atomic_store_n(&table[old_fd].state, S_CLOSED, __ATOMIC_RELAXED);
        table[old_fd].gen++;
        table[old_fd].close_call = "freopen";
        table[old_fd].closed = st;
        unlock_table();
    }
    errno = saved;
    stream_opened(hooked_, f, "freopen");
    LEAVE();
    return f;
}
EXPORT FILE *freopen(const char *p, const char *m, FILE *f) {
    return do_freopen(real_freopen(), p, m, f);
}
EXPORT FILE *freopen64(const char *p, const char *m, FILE *f) {
    return do_freopen(real_freopen64(), p, m, f);
}

EXPORT FILE *fdopen(int fd, const char *mode) {
    if (io_check(fd, "fdopen"))
        return NULL;
    ENTER();
    FILE *f = real_fdopen()(fd, mode);
    if (hooked_ && f)
        wrapped(fd, "fdopen", O_FILE, f);
    LEAVE();
    return f;
}

/* ---- listings of this process's descriptors ------------------------------------------ */

/* Tombstones are descriptors the program never opened: a program that lists /proc/self/fd
 * (to count its descriptors, or to close them all) must not see them. The DIR*s open on such a
 * listing are kept here; readdir skips the tombstones' entries in them. */
enum { MAX_LISTINGS = 16 };
static DIR *listings[MAX_LISTINGS];
/* The release batch when each listing was opened: a tombstone given back since may still be
 * in the kernel's answer read at the first readdir (the number was not open natively then). */
static unsigned long listing_since[MAX_LISTINGS];
static int listings_open;

/* Whether `resolved` (a path without symbolic links, as realpath or /proc/self/fd/N give it)
 * is this process's descriptor directory: /proc/P/fd, /proc/P/task/T/fd or their fdinfo, P this
 * process or one of its threads (/proc/self/fd, /dev/fd and /proc/thread-self/fd resolve to
 * these). errno is kept. */
static int own_fd_dir(const char *resolved) {
    if (strncmp(resolved, "/proc/", 6) != 0 || resolved[6] < '0' || resolved[6] > '9')
        return 0;
    char *end;
    long pid = strtol(resolved + 6, &end, 10);
    int ours = pid == getpid();
    if (strncmp(end, "/task/", 6) == 0) { /* a thread of P */
        if (end[6] < '0' || end[6] > '9')
            return 0;
        strtol(end + 6, &end, 10);
    } else if (!ours) { /* /proc/T/fd: T one of this process's threads? */
        char task[48];
        snprintf(task, sizeof task, "/proc/self/task/%ld", pid);
        int saved = errno;
        ours = access(task, F_OK) == 0;
        errno = saved;
    }
    return ours && (strcmp(end, "/fd") == 0 || strcmp(end, "/fdinfo") == 0);
}

/* The device of /proc (at load): a directory on another device is no listing, and one fstat
 * tells it without the readlink below (fdopendir is frequent in tree walkers: fts, find). */
static dev_t proc_dev;
static int proc_dev_known;

/* Whether the directory open on `fd` is this process's descriptor directory. errno is kept. */
static int is_fd_listing(int fd) {
    struct stat st;
    int saved_ = errno;
    int elsewhere = proc_dev_known && (real_fstat()(fd, &st) != 0 || st.st_dev != proc_dev);
    errno = saved_;
    if (elsewhere)
        return 0;
    char link[32], target[64];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    int saved = errno;
    ssize_t n = readlink(link, target, sizeof target - 1);
    errno = saved;
    if (n <= 0 || n >= (ssize_t)sizeof target - 1)
        return 0;
    target[n] = 0;
    return own_fd_dir(target);
}

/* Whether `path` may name a descriptor directory (its last component is fd or fdinfo): only
 * then is the directory looked at more closely. */
static int may_be_fd_listing(const char *path) {
    size_t len = strlen(path);
    while (len > 1 && path[len - 1] == '/')
        len--;
    size_t start = len;
    while (start > 0 && path[start - 1] != '/')
        start--;
    return (len - start == 2 && memcmp(path + start, "fd", 2) == 0) ||
           (len - start == 6 && memcmp(path + start, "fdinfo", 6) == 0);
}

/* Whether `path`, relative to the directory `dir` (or AT_FDCWD), is this process's descriptor
 * directory (for scandir, which opens the directory without going through opendir). */
static int path_is_fd_listing(int dir, const char *path) {
    if (!may_be_fd_listing(path))
        return 0;
    char joined[256], resolved[PATH_MAX]; /* a longer relative path is not a listing's */
    if (path[0] != '/' && dir != AT_FDCWD) {
        int len = snprintf(joined, sizeof joined, "/proc/self/fd/%d/%s", dir, path);
        if (len < 0 || len >= (int)sizeof joined)
            return 0;
        path = joined;
    }
    int saved = errno;
    int found = realpath(path, resolved) && own_fd_dir(resolved);
    errno = saved;
    return found;
}

static void listing_opened(DIR *d) {
    lock_table();
    for (int i = 0; i < MAX_LISTINGS; i++) {
        if (!listings[i]) {
            __atomic_store_n(&listing_since[i], release_batches, __ATOMIC_RELAXED);
            __atomic_store_n(&listings[i], d, __ATOMIC_RELEASE);
            __atomic_add_fetch(&listings_open, 1, __ATOMIC_RELEASE);
            break;
        }
    }
    unlock_table();
}

static void listing_closed(DIR *d) {
    if (!__atomic_load_n(&listings_open, __ATOMIC_ACQUIRE))
        return;
    lock_table();
    for (int i = 0; i < MAX_LISTINGS; i++) {
        if (listings[i] == d) {
            __atomic_store_n(&listings[i], NULL, __ATOMIC_RELAXED);
            __atomic_sub_fetch(&listings_open, 1, __ATOMIC_RELEASE);
            break;
        }
    }
    unlock_table();
}

/* Whether `d` is a listing, and then the release batch when it was opened. */
static int is_listing(DIR *d, unsigned long *since) {
    if (!d || !__atomic_load_n(&listings_open, __ATOMIC_ACQUIRE))
        return 0;
    for (int i = 0; i < MAX_LISTINGS; i++) {
        if (__atomic_load_n(&listings[i], __ATOMIC_ACQUIRE) == d) {
            *since = __atomic_load_n(&listing_since[i], __ATOMIC_RELAXED);
            return 1;
        }
    }
    return 0;
}

/* Whether a listing's entry names a tombstone, or one given back after the listing was
 * opened (`since`) and not reused: the kernel listed it while it was a tombstone. */
static int names_tomb(const char *name, unsigned long since) {
    if (name[0] < '0' || name[0] > '9')
        return 0;
    long fd = strtol(name, NULL, 10);
    if (fd < 3 || fd >= MAX_FDS)
        return 0;
    unsigned char state = __atomic_load_n(&table[fd].state, __ATOMIC_RELAXED);
    return state == S_TOMB ||
           (state == S_CLOSED && __atomic_load_n(&table[fd].released, __ATOMIC_RELAXED) > since);
}

/* readdir skips the tombstones of a listing; scandir reads the directory inside libc, so its
 * filter is wrapped to leave them out (per thread: a filter that calls scandir itself gets its
 * own). The same for `struct dirent` and `struct dirent64`: */
static TLS unsigned long scan_since;

#define LISTING_HOOKS(suffix, entry)                                                         \
    EXPORT struct entry *readdir##suffix(DIR *d) {                                           \
        struct entry *e = real_readdir##suffix()(d);                                         \
        unsigned long since;                                                                 \
        if (is_listing(d, &since) && !in_hook)                                               \
            while (e && names_tomb(e->d_name, since))                                        \
                e = real_readdir##suffix()(d);                                               \
        return e;                                                                            \
    }                                                                                        \
                                                                                             \
    typedef int (*select##suffix##_fn)(const struct entry *);                                \
    typedef int (*compare##suffix##_fn)(const struct entry **, const struct entry **);       \
    REAL(int, scandirat##suffix, int, const char *, struct entry ***, select##suffix##_fn,   \
         compare##suffix##_fn)                                                               \
    static TLS select##suffix##_fn scan_select##suffix;                                      \
                                                                                             \
    static int select##suffix##_no_tomb(const struct entry *e) {                             \
        return !names_tomb(e->d_name, scan_since) &&                                         \
               (!scan_select##suffix || scan_select##suffix(e));                             \
    }                                                                                        \
                                                                                             \
    EXPORT int scandirat##suffix(int dir, const char *path, struct entry ***list,            \
                                 select##suffix##_fn select, compare##suffix##_fn compare) { \
        if (!ready || in_hook || !path_is_fd_listing(dir, path))                             \
            return real_scandirat##suffix()(dir, path, list, select, compare);               \
        select##suffix##_fn outer = scan_select##suffix;                                     \
        unsigned long outer_since = scan_since;                                              \
        scan_select##suffix = select;                                                        \
        scan_since = __atomic_load_n(&release_batches, __ATOMIC_RELAXED);                    \
        int r = real_scandirat##suffix()(dir, path, list, select##suffix##_no_tomb, compare); \
        scan_select##suffix = outer;                                                         \
        scan_since = outer_since;                                                            \
        return r;                                                                            \
    }                                                                                        \
                                                                                             \
    EXPORT int scandir##suffix(const char *path, struct entry ***list,                       \
                               select##suffix##_fn select, compare##suffix##_fn compare) {   \
        return scandirat##suffix(AT_FDCWD, path, list, select, compare);                     \
    }

LISTING_HOOKS(, dirent)
LISTING_HOOKS(64, dirent64)

EXPORT DIR *opendir(const char *path) {
    ENTER();
    DIR *d = real_opendir()(path);
    if (hooked_ && !d && retry_errno(-1))
        d = real_opendir()(path);
    if (d) {
        int saved = errno;
        opened(hooked_, dirfd(d), "opendir", O_DIR, d);
        if (hooked_ && may_be_fd_listing(path) && is_fd_listing(dirfd(d)))
            listing_opened(d);
        errno = saved;
    }
    LEAVE();
    return d;
}

EXPORT DIR *fdopendir(int fd) {
    if (io_check(fd, "fdopendir"))
        return NULL;
    ENTER();
    DIR *d = real_fdopendir()(fd);
    if (hooked_ && d) {
        wrapped(fd, "fdopendir", O_DIR, d);
        if (is_fd_listing(fd))
            listing_opened(d);
    }
    LEAVE();
    return d;
}

/* fclose/pclose/closedir: the close happens inside libc, unseen. Judge the number before, let
 * libc close it, then record the close (and quarantine the number) if nobody opened it in
 * between (the generation tells). */
static void owner_closing(int fd, const char *call, int kind, const void *owner,
                          unsigned int *gen, struct stack *st) {
    struct finding f;
    int report = 0;
    capture(st);
    lock_table();
    struct slot *s = &table[fd];
    int mine = s->owner_kind == kind && s->owner == owner;
    if (s->state == S_TOMB || (s->state == S_CLOSED && real_fcntl()(fd, F_GETFD) < 0)) {
        /* Closed already. If a plain close took it from this owner, that was reported. */
        report = !(mine && s->owner_hurt);
        if (report)
            describe(&f, "double_close", fd, call, st, s);
    } else if (s->state == S_OPEN && s->owner_kind != O_NONE && !mine && fd > 2) {
        report = 1; /* another owner holds it: two fdopens, or a FILE* over a DIR*'s number */
        describe(&f, "owned_close", fd, call, st, s);
        s->owner_hurt = 1;
    }
    if (s->state == S_CLOSED)
        s->state = S_UNKNOWN;
    *gen = s->gen;
    unlock_table();
    if (report)
        emit(&f);
}

static void owner_closed(int fd, const char *call, unsigned int gen, const struct stack *st) {
    lock_table();
    struct slot *s = &table[fd];
    if (s->gen == gen)
        mark_closed(fd, call, st);
    unlock_table();
}

#define OWNER_CLOSE(call, kind, obj, fdexpr, expr)                                           \
    do {                                                                                     \
        ENTER();                                                                             \
        int fd_ = -1;                                                                        \
        unsigned int gen_ = 0;                                                               \
        struct stack st_;                                                                    \
        if (hooked_ && obj) {                                                                \
            int saved_ = errno;                                                              \
            fd_ = (fdexpr);                                                                  \
            errno = saved_;                                                                  \
            if (fd_ >= 0 && fd_ < MAX_FDS)                                                   \
                owner_closing(fd_, call, kind, obj, &gen_, &st_);                            \
            else                                                                             \
                fd_ = -1;                                                                    \
        }                                                                                    \
        int r_ = (expr);                                                                     \
        if (fd_ >= 0) {                                                                      \
            int saved_ = errno;                                                              \
            owner_closed(fd_, call, gen_, &st_);                                             \
            errno = saved_;                                                                  \
        }                                                                                    \
        LEAVE();                                                                             \
        return r_;                                                                           \
    } while (0)

EXPORT int fclose(FILE *f) { OWNER_CLOSE("fclose", O_FILE, f, fileno(f), real_fclose()(f)); }
EXPORT int pclose(FILE *f) { OWNER_CLOSE("pclose", O_FILE, f, fileno(f), real_pclose()(f)); }
EXPORT int closedir(DIR *d) {
    listing_closed(d);
    OWNER_CLOSE("closedir", O_DIR, d, dirfd(d), real_closedir()(d));
}

/* ---- dlclose, __deregister_frame ---------------------------------------------------- */

/* The unwinder's cache keys rules by address; an object loaded later where this one was
 * must not inherit them. */
EXPORT int dlclose(void *handle) {
    int result = real_dlclose()(handle);
    cfi_forget();
    return result;
}

/* A JIT (LLVM's, Wasmtime, LuaJIT) gives up code whose CFI it registered with libgcc: other
 * code, with other rules, may be written at the same addresses next. (A JIT that finds
 * __deregister_frame with dlsym instead of linking to it is not seen.) */
EXPORT void __deregister_frame(void *begin) {
    __deregister_frame_fn real = real___deregister_frame();
    if (real)
        real(begin);
    cfi_forget();
}

/* ---- close -------------------------------------------------------------------------- */

EXPORT int close(int fd) {
    if (!ready || in_hook || fd < 0 || fd >= MAX_FDS)
        return real_close()(fd);
    in_hook = 1;
    /* A close-all loop closes consecutive numbers, one way, with nothing in between: the
     * findings of the first RUN_PROOF closes of such a run are written (the program may die
     * next) and retracted when the run goes on; none is made further in. */
    int step = fd - last_close_fd;
    if (run_len > 0 && (step == 1 || step == -1) && (run_len == 1 || step == run_step)) {
        run_len++;
        run_step = step;
    } else {
        run_len = 1;
        run_found = 0;
    }
    if (run_len == RUN_PROOF)
        retract_run();
    int run = run_len >= RUN_PROOF;
    last_close_fd = fd;

    struct stack st;
    struct finding f;
    int finding = 0, deny = 0;
    capture(&st);
    lock_table();
    struct slot *s = &table[fd];
    if (s->state == S_TOMB) {
        finding = deny = 1;
        describe(&f, "double_close", fd, "close", &st, s);
    } else if (s->state == S_CLOSED) {
        if (real_fcntl()(fd, F_GETFD) >= 0) {
            s->state = S_UNKNOWN;
        } else {
            finding = 1;
            describe(&f, "double_close", fd, "close", &st, s);
        }
    } else if (s->state == S_OPEN && s->owner_kind != O_NONE && fd > 2) {
        finding = 1;
        describe(&f, "owned_close", fd, "close", &st, s);
        s->owner_hurt = 1;
    }
    unsigned int gen = s->gen;
    int was = s->state;
    unlock_table();

    if (finding && !run) {
        f.id = __atomic_add_fetch(&finding_ids, 1, __ATOMIC_RELAXED);
        emit(&f);
        if (run_found < RUN_PROOF)
            run_ids[run_found++] = f.id;
    }
    if (deny) {
        in_hook = 0;
        errno = EBADF;
        return -1;
    }
    int r = real_close()(fd);
    int saved = errno;
    /* Linux releases the number even when close fails, except with EBADF. */
    if (r == 0 || saved != EBADF) {
        lock_table();
        if (s->gen == gen)
            mark_closed(fd, "close", &st);
        unlock_table();
    } else if (was == S_OPEN) {
        lock_table();
        if (s->gen == gen)
            __atomic_store_n(&s->state, S_UNKNOWN, __ATOMIC_RELAXED);
        unlock_table();
    }
    in_hook = 0;
    errno = saved;
    return r;
}

/* close_range/closefrom close (or mark close-on-exec) whole ranges on purpose: no findings,
 * and quarantined numbers inside the range are gone. */
static void range_closed(unsigned int first, unsigned int last, const struct stack *st,
                         const char *call) {
    lock_table();
    for (unsigned int fd = first; fd <= last && fd < MAX_FDS; fd++) {
        struct slot *s = &table[fd];
        if (s->state == S_CLOSED || (s->state == S_UNKNOWN && !s->tracked))
            continue;
        __atomic_store_n(&s->state, S_CLOSED, __ATOMIC_RELAXED);
        s->gen++;
        s->close_call = call;
        s->closed = *st;
    }
    unlock_table();
}

EXPORT int close_range(unsigned int first, unsigned int last, int flags) {
    ENTER();
    int r = real_close_range()(first, last, flags);
    if (hooked_ && r == 0 && !(flags & 4 /* CLOSE_RANGE_CLOEXEC */)) {
        int saved = errno;
        struct stack st;
        capture(&st);
        range_closed(first, last, &st, "close_range");
        errno = saved;
    }
    LEAVE();
    return r;
}

EXPORT void closefrom(int first) {
    ENTER();
    real_closefrom()(first);
    if (hooked_ && first >= 0) {
        int saved = errno;
        struct stack st;
        capture(&st);
        range_closed((unsigned int)first, MAX_FDS - 1, &st, "closefrom");
        errno = saved;
    }
    LEAVE();
}

/* ---- processes ---------------------------------------------------------------------- */

/* A fork child gets a copy of the table (and of the tombstones, which are close-on-exec); the
 * table lock is taken around fork (pthread_atfork, at load) so the copy is never mid-update.
 * posix_spawn needs nothing: its file actions run in the child, inside libc.
 *
 * A vfork child shares our memory: its hooks would write the parent's table. Make it a fork
 * (what vfork's callers may rely on is a subset of what fork gives). */
EXPORT pid_t vfork(void) { return real_fork()(); }

/* ---- I/O on existing descriptors ---------------------------------------------------- */

#define IO(ret, name, check_name, params, args, fd)                                          \
    EXPORT ret name params {                                                                 \
        if (io_check(fd, check_name))                                                        \
            return -1;                                                                       \
        return real_##name() args;                                                           \
    }

IO(ssize_t, read, "read", (int fd, void *b, size_t n), (fd, b, n), fd)
IO(ssize_t, __read_chk, "read", (int fd, void *b, size_t n, size_t l), (fd, b, n, l), fd)
IO(ssize_t, write, "write", (int fd, const void *b, size_t n), (fd, b, n), fd)
IO(ssize_t, pread, "pread", (int fd, void *b, size_t n, off_t o), (fd, b, n, o), fd)
IO(ssize_t, pread64, "pread", (int fd, void *b, size_t n, off_t o), (fd, b, n, o), fd)
IO(ssize_t, pwrite, "pwrite", (int fd, const void *b, size_t n, off_t o), (fd, b, n, o), fd)
IO(ssize_t, pwrite64, "pwrite", (int fd, const void *b, size_t n, off_t o), (fd, b, n, o), fd)
IO(ssize_t, readv, "readv", (int fd, const struct iovec *v, int n), (fd, v, n), fd)
IO(ssize_t, writev, "writev", (int fd, const struct iovec *v, int n), (fd, v, n), fd)
IO(off_t, lseek, "lseek", (int fd, off_t o, int w), (fd, o, w), fd)
IO(off_t, lseek64, "lseek", (int fd, off_t o, int w), (fd, o, w), fd)
IO(int, fstat, "fstat", (int fd, struct stat *b), (fd, b), fd)
IO(int, fstat64, "fstat", (int fd, struct stat64 *b), (fd, b), fd)
IO(int, fsync, "fsync", (int fd), (fd), fd)
IO(int, fdatasync, "fdatasync", (int fd), (fd), fd)
IO(int, ftruncate, "ftruncate", (int fd, off_t l), (fd, l), fd)
IO(ssize_t, recv, "recv", (int fd, void *b, size_t n, int f), (fd, b, n, f), fd)
IO(ssize_t, send, "send", (int fd, const void *b, size_t n, int f), (fd, b, n, f), fd)

/* ---- owner tags (announced by handoff's own types) ---------------------------------- */

/* `owner` must live as long as the process (a static string). */
EXPORT void handoff_audit_own(int fd, const char *owner) {
    if (!ready || fd < 0 || fd >= MAX_FDS || !owner)
        return;
    lock_table();
    struct slot *s = &table[fd];
    if (s->state == S_OPEN || s->state == S_UNKNOWN) {
        __atomic_store_n(&s->state, S_OPEN, __ATOMIC_RELAXED);
        s->owner_kind = O_TAG;
        s->owner = owner;
        s->label = NULL;
        s->owner_hurt = 0;
    }
    unlock_table();
}

/* The owner gives the number up (it is about to close it itself, or hands it away). */
EXPORT void handoff_audit_disown(int fd) {
    if (!ready || fd < 0 || fd >= MAX_FDS)
        return;
    lock_table();
    struct slot *s = &table[fd];
    if (s->owner_kind == O_TAG) {
        s->owner_kind = O_NONE;
        s->owner = NULL;
    }
    unlock_table();
}

/* The FILE* `f` owns `fd`, held by `label` (handoff's CStream) or, with NULL, by C code. */
EXPORT void handoff_audit_own_stream(int fd, FILE *f, const char *label) {
    if (!ready || fd < 0 || fd >= MAX_FDS || !f)
        return;
    lock_table();
    struct slot *s = &table[fd];
    if (s->state == S_OPEN || s->state == S_UNKNOWN) {
        __atomic_store_n(&s->state, S_OPEN, __ATOMIC_RELAXED);
        s->owner_kind = O_FILE;
        s->owner = f;
        s->label = label;
        s->owner_hurt = 0;
    }
    unlock_table();
}

/* ---- load and exit ------------------------------------------------------------------ */

static void before_fork(void) { pthread_mutex_lock(&lock); }
static void after_fork(void) { pthread_mutex_unlock(&lock); }

__attribute__((constructor)) static void init(void) {
    void *prime[4];
    backtrace(prime, 4); /* loads libgcc_s now, not inside a hook */
    Dl_info self;
    if (dladdr((void *)init, &self))
        self_base = self.dli_fbase;
    ssize_t n = readlink("/proc/self/exe", exe_path, sizeof exe_path - 1);
    exe_path[n > 0 ? n : 0] = 0;
    const char *dir = getenv("HANDOFF_AUDIT_DIR");
    if (dir && strlen(dir) < sizeof report_dir)
        strcpy(report_dir, dir);
    const char *k = getenv("HANDOFF_AUDIT_QUARANTINE");
    if (k) {
        quarantine_k = atoi(k);
        if (quarantine_k < 0)
            quarantine_k = 0;
        if (quarantine_k > MAX_QUARANTINE)
            quarantine_k = MAX_QUARANTINE;
    }
    const char *l = getenv("HANDOFF_AUDIT_LEAKS");
    leaks = l && l[0] == '1';
    const char *stacks = getenv("HANDOFF_AUDIT_STACKS");
    fast_stacks = stacks && strcmp(stacks, "fast") == 0;
    check_stacks = stacks && strcmp(stacks, "check") == 0;
    find_main_stack();
    cfi_init();
    struct stat proc;
    if (stat("/proc/self/fd", &proc) == 0) {
        proc_dev = proc.st_dev;
        proc_dev_known = 1;
    }
    pthread_atfork(before_fork, after_fork, after_fork);
    /* Resolve every real function now, outside any hook. */
    real_close();
    real_open();
    real_openat();
    real_fcntl();
    real_write();
    real_dlclose();
    ready = 1;
}

__attribute__((destructor)) static void fini(void) {
    if (!ready)
        return;
    in_hook = 1;
    if (check_stacks) {
        char line[160];
        int len = snprintf(line, sizeof line,
                           "handoff-audit: pid %d: %lu stacks unwound by the cache, %lu of them "
                           "unlike libgcc's; %lu by libgcc alone\n",
                           getpid(), stacks_compared, stacks_differing, stacks_by_libgcc);
        (void)!real_write()(2, line, len < (int)sizeof line ? len : (int)sizeof line - 1);
    }
    if (leaks) {
        for (int fd = 3; fd < MAX_FDS; fd++) {
            struct finding f;
            struct slot *s = &table[fd];
            if (s->state != S_OPEN || !s->tracked || !s->opened.n)
                continue;
            if (real_fcntl()(fd, F_GETFD) < 0)
                continue;
            struct stack none;
            none.n = 0;
            lock_table();
            describe(&f, "leak", fd, s->open_call, &none, s);
            unlock_table();
            emit(&f);
        }
    }
    in_hook = 0;
}
