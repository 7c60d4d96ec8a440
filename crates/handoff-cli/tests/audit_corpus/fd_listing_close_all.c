/* A close-all loop through /proc/self/fd (as a spawner does before exec) in a process that has
 * just closed many descriptors, the highest first: glibc reads the whole listing at the first
 * readdir, tombstones included; the loop's own closes then give the oldest tombstones back
 * (the quarantine holds 2K at most), and their entries, read later, must still be skipped: the
 * numbers were closed natively when the listing was read. Correct: every close succeeds. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(void) {
    int fds[200];
    for (int i = 0; i < 200; i++)
        fds[i] = open("/dev/null", O_RDONLY);
    for (int i = 199; i >= 70; i--)
        close(fds[i]);
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return 1;
    int dir = dirfd(d), failed = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        int fd = atoi(e->d_name);
        if (fd <= 2 || fd == dir)
            continue;
        if (close(fd) != 0 && failed++ < 3)
            printf("close %d: %s\n", fd, strerror(errno));
    }
    closedir(d);
    printf("%d closes failed\n", failed);
    return 0;
}
