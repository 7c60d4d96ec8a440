/* Buggy: read on a descriptor after closing it. */
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

__attribute__((noinline)) static void reader(int fd) {
    char c;
    if (read(fd, &c, 1) < 0)
        puts("read failed");
}

int main(void) {
    int fd = open("/dev/zero", O_RDONLY);
    close(fd);
    reader(fd);
    return 0;
}
