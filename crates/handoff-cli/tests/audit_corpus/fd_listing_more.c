/* The other usual ways a program lists its own descriptors: scandir, fdopendir of an fd opened
 * on /proc/self/fd, a relative path, a thread's /proc/self/task/TID/fd, /proc/self/fdinfo;
 * then a close-all through a listing (as a spawner or a daemon does before exec), which checks
 * every close. Correct: the counts and the closes must be the same under the audit, whose
 * tombstones on the closed numbers are descriptors the program never opened. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int numbered(const struct dirent *e) { return e->d_name[0] >= '0' && e->d_name[0] <= '9'; }

static int count(DIR *d, const char *how) {
    if (!d) {
        perror(how);
        exit(1);
    }
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += numbered(e);
    closedir(d);
    return n;
}

int main(void) {
    int fds[8];
    for (int i = 0; i < 8; i++)
        fds[i] = open("/dev/null", O_RDONLY);
    for (int i = 0; i < 8; i += 2)
        close(fds[i]);

    struct dirent **list;
    int n = scandir("/proc/self/fd", &list, numbered, alphasort);
    printf("scandir %d\n", n);
    for (int i = 0; i < n; i++)
        free(list[i]);
    free(list);
    printf("fdopendir %d\n",
           count(fdopendir(open("/proc/self/fd", O_RDONLY | O_DIRECTORY)), "fdopendir"));
    if (chdir("/proc/self") != 0)
        return 1;
    printf("relative %d\n", count(opendir("fd"), "fd"));
    if (chdir("/") != 0)
        return 1;
    char task[64];
    snprintf(task, sizeof task, "/proc/self/task/%d/fd", (int)gettid());
    printf("task %d\n", count(opendir(task), task));
    printf("fdinfo %d\n", count(opendir("/proc/self/fdinfo"), "fdinfo"));

    int dir = open("/proc/self/fd", O_RDONLY | O_DIRECTORY);
    DIR *d = fdopendir(dir);
    struct dirent *e;
    int closed = 0;
    while ((e = readdir(d))) {
        int fd = atoi(e->d_name);
        if (!numbered(e) || fd <= 2 || fd == dir)
            continue;
        if (close(fd) != 0)
            printf("close %d: %s\n", fd, strerror(errno));
        else
            closed++;
    }
    closedir(d);
    printf("closed %d\n", closed);
    return 0;
}
