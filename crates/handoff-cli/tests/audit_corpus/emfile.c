/* Correct: under a low descriptor limit, close many files and then hold as many as the limit
 * allows: quarantined numbers must be given back when an open would fail with EMFILE.
 * Which number the first open gets is not printed: the quarantine exists to change it
 * (the lowest free number is kept out of circulation), and only 0-2 are given back first. */
#include <fcntl.h>
#include <stdio.h>
#include <sys/resource.h>
#include <unistd.h>

int main(void) {
    struct rlimit limit = {24, 24};
    if (setrlimit(RLIMIT_NOFILE, &limit) != 0) {
        perror("setrlimit");
        return 1;
    }
    for (int i = 0; i < 100; i++)
        close(open("/dev/null", O_RDONLY));
    int held = 0, fds[64];
    while (held < 64 && (fds[held] = open("/dev/null", O_RDONLY)) >= 0)
        held++;
    int first_valid = held && fds[0] >= 3;
    for (int i = 0; i < held; i++)
        close(fds[i]);
    int p[2];
    int piped = pipe(p) == 0;
    printf("held %d, first valid %d, pipe %d\n", held, first_valid, piped);
    return 0;
}
