/* Counts its own descriptors the usual ways (/proc/self/fd, /dev/fd, /proc/PID/fd) after
 * opening and closing files: correct, and the counts must be the same under the audit, whose
 * tombstones on the closed numbers are descriptors the program never opened. */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static int count(const char *path) {
    DIR *d = opendir(path);
    if (!d) {
        perror(path);
        exit(1);
    }
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

int main(void) {
    int fds[8];
    for (int i = 0; i < 8; i++)
        fds[i] = open("/dev/null", O_RDONLY);
    for (int i = 0; i < 8; i += 2)
        close(fds[i]);
    char own[64];
    snprintf(own, sizeof own, "/proc/%d/fd/", (int)getpid());
    printf("/proc/self/fd %d\n/dev/fd %d\n/proc/PID/fd/ %d\n", count("/proc/self/fd"),
           count("/dev/fd"), count(own));
    return 0;
}
