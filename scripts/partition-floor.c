// The file-creation floor for `handoff partition` (issue #12): creates every file of SRCDIR
// again in DSTDIR (O_CREAT | O_EXCL | O_NOFOLLOW), writes its bytes, closes it; the bytes are
// read into memory first, untimed. Prints the timed seconds. Used by scripts/partition-ratios.sh
// (one thread: the floor of the issue) and scripts/partition-phases.sh (two threads, taking
// the files in turn: what handoff's end, written by two threads, is compared with).
//
//   cc -O2 -pthread -o /tmp/partition-floor scripts/partition-floor.c
//   /tmp/partition-floor SRCDIR DSTDIR [THREADS]
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
struct f { char name[256]; char *data; size_t len; };
static struct f *fs;
static size_t n, threads = 1;
static int dst;
// Thread `t` creates and writes files t, t + threads, t + 2 * threads, ...
static void *create(void *arg) {
  for (size_t i = (size_t)arg; i < n; i += threads) {
    int fd = openat(dst, fs[i].name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0666);
    if (fd < 0 || write(fd, fs[i].data, fs[i].len) != (ssize_t)fs[i].len) { perror(fs[i].name); _exit(1); }
    close(fd);
  }
  return NULL;
}
int main(int argc, char **argv) {
  char *end = NULL;
  if (argc > 3) threads = strtoul(argv[3], &end, 10);
  if (argc < 3 || argc > 4 || (end && *end) || threads < 1 || threads > 64) {
    fprintf(stderr, "usage: %s SRCDIR DSTDIR [THREADS: 1 to 64, default 1]\n", argv[0]);
    return 2;
  }
  DIR *d = opendir(argv[1]); struct dirent *e; size_t cap = 1024;
  if (!d) { perror(argv[1]); return 1; }
  fs = malloc(cap * sizeof *fs);
  int src = dirfd(d);
  while ((e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    if (n == cap) fs = realloc(fs, (cap *= 2) * sizeof *fs);
    strcpy(fs[n].name, e->d_name);
    int fd = openat(src, e->d_name, O_RDONLY); struct stat st; fstat(fd, &st);
    fs[n].len = st.st_size; fs[n].data = malloc(st.st_size);
    if (read(fd, fs[n].data, st.st_size) != st.st_size) return 1;
    close(fd); n++;
  }
  mkdir(argv[2], 0777); dst = open(argv[2], O_RDONLY | O_DIRECTORY);
  if (dst < 0) { perror(argv[2]); return 1; }
  pthread_t others[64];
  struct timespec a, b; clock_gettime(CLOCK_MONOTONIC, &a);
  for (size_t t = 1; t < threads; t++)
    if (pthread_create(&others[t], NULL, create, (void *)t)) { fprintf(stderr, "no thread\n"); return 1; }
  create((void *)0);
  for (size_t t = 1; t < threads; t++) pthread_join(others[t], NULL);
  clock_gettime(CLOCK_MONOTONIC, &b);
  printf("%zu files: %.3f s\n", n, (b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9);
  return 0;
}
