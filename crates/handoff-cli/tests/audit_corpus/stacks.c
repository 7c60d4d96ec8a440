/* Opens and closes files from frames of every shape the cached unwinder meets, so that
 * `handoff audit --check-stacks` compares its stacks with libgcc's: deep recursion (deeper than
 * the 16 frames kept), a variable-length array (a frame-pointer CFA even at -O2), a function
 * with several epilogues (DW_CFA_remember_state/restore_state), a libc callback (qsort), threads,
 * and a signal handler (the signal trampoline: left to libgcc). Correct: no finding. */
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static volatile int sink;

__attribute__((noinline)) static void open_close(void) {
    int fd = open("/dev/null", O_RDONLY);
    if (fd < 0 || close(fd) != 0)
        abort();
}

__attribute__((noinline)) static int recurse(int depth) {
    if (depth == 0) {
        open_close();
        return 0;
    }
    int r = recurse(depth - 1);
    sink = r;
    return r + 1;
}

__attribute__((noinline)) static void with_vla(int n) {
    char buf[n];
    memset(buf, 'x', n);
    sink = buf[n / 2];
    open_close();
    sink = buf[0];
}

__attribute__((noinline)) static int many_exits(int a, int b, int c) {
    int x = a * b;
    if (x > 100) {
        open_close();
        return x - c;
    }
    if (c > 3) {
        sink = x;
        open_close();
        return c;
    }
    open_close();
    return a + b + c;
}

static int compare(const void *a, const void *b) {
    open_close();
    return *(const int *)a - *(const int *)b;
}

static void *thread_main(void *arg) {
    for (int i = 0; i < 50; i++) {
        recurse(i % 5);
        with_vla(16 + i);
    }
    return arg;
}

static void on_signal(int signal) {
    (void)signal;
    open_close();
}

int main(void) {
    for (int depth = 0; depth < 24; depth++)
        recurse(depth);
    for (int n = 1; n < 200; n += 37)
        with_vla(n);
    many_exits(20, 20, 1);
    many_exits(1, 1, 5);
    many_exits(1, 1, 1);
    int values[] = {5, 3, 9, 1, 7};
    qsort(values, 5, sizeof values[0], compare);
    pthread_t threads[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&threads[i], NULL, thread_main, NULL);
    for (int i = 0; i < 4; i++)
        pthread_join(threads[i], NULL);
    signal(SIGUSR1, on_signal);
    raise(SIGUSR1);
    printf("done %d\n", values[0]);
    return 0;
}
