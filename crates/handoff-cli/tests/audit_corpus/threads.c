/* Correct: threads racing opens, pipes, dups and closes. */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>

enum { THREADS = 4, ROUNDS = 3000 };

static void *work(void *arg) {
    long failures = 0;
    for (int i = 0; i < ROUNDS; i++) {
        int fd = open("/dev/zero", O_RDONLY | O_CLOEXEC);
        int p[2];
        char c;
        if (fd < 0 || pipe(p) != 0) {
            failures++;
            continue;
        }
        int d = dup(fd);
        if (read(fd, &c, 1) != 1 || write(p[1], "x", 1) != 1 || read(p[0], &c, 1) != 1)
            failures++;
        if (close(fd) || close(d) || close(p[0]) || close(p[1]))
            failures++;
    }
    return (void *)failures;
}

int main(void) {
    pthread_t t[THREADS];
    long failures = 0;
    for (int i = 0; i < THREADS; i++)
        pthread_create(&t[i], NULL, work, NULL);
    for (int i = 0; i < THREADS; i++) {
        void *r;
        pthread_join(t[i], &r);
        failures += (long)r;
    }
    printf("failures: %ld\n", failures);
    return failures != 0;
}
