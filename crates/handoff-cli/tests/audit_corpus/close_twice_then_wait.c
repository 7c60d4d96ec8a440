/* A double close, then its pid on stdout and a long wait: for a test that sends SIGTERM to
 * `handoff audit` alone while the program still runs. */
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

int main(void) {
    int fd = open("/dev/null", O_RDONLY);
    close(fd);
    close(fd);
    printf("%d\n", (int)getpid());
    fflush(stdout);
    sleep(60);
    return 0;
}
