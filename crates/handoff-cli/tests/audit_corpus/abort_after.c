/* Buggy: a double close, then the program aborts at once (as Rust's std does when a close
 * fails with EBADF): the finding must already be on disk. */
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

__attribute__((noinline)) static void second_close(int fd) {
    if (close(fd) != 0)
        abort();
}

int main(void) {
    int fd = open("/dev/null", O_RDONLY);
    close(fd);
    second_close(fd);
    return 0;
}
