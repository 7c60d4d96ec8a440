/* The per-call cost of the C API against the raw system call, on a resident file (the hit
 * path): run by tests/overhead.rs, which measures the Rust API in the same run.
 *   overhead FILE ITERATIONS */
#define _GNU_SOURCE
#include "handoff.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

#define MEASURE(name, call)                                                              \
    do {                                                                                 \
        double start_ = now();                                                           \
        for (long i_ = 0; i_ < n; i_++)                                                  \
            if ((call) < 0) {                                                            \
                perror(name);                                                            \
                return 1;                                                                \
            }                                                                            \
        printf("%-32s %8.1f ns/call\n", name, (now() - start_) / (double)n);             \
    } while (0)

int main(int argc, char **argv) {
    if (argc < 3) return 2;
    long n = atol(argv[2]);
    char buf[64];
    int fd = open(argv[1], O_RDWR);
    handoff_pager *p = handoff_pager_new(16);
    int vfd = handoff_open(p, argv[1], O_RDWR, 0);
    if (fd < 0 || !p || vfd < 0) return 1;
    MEASURE("C: pread(2)", pread(fd, buf, sizeof buf, 0));
    MEASURE("C: handoff_pread", handoff_pread(p, vfd, buf, sizeof buf, 0));
    MEASURE("C: pwrite(2)", pwrite(fd, buf, sizeof buf, 0));
    MEASURE("C: handoff_pwrite", handoff_pwrite(p, vfd, buf, sizeof buf, 0));
    MEASURE("C: lseek(2) + read(2)", lseek(fd, 0, SEEK_SET) + read(fd, buf, sizeof buf));
    MEASURE("C: handoff_lseek + handoff_read",
            handoff_lseek(p, vfd, 0, SEEK_SET) + handoff_read(p, vfd, buf, sizeof buf));
    MEASURE("C: handoff_pin + handoff_unpin", handoff_pin(p, vfd) + handoff_unpin(p, vfd));
    handoff_pager_free(p);
    close(fd);
    return 0;
}
