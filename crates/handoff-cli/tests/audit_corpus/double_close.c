/* Buggy: two owners close one descriptor, nothing opened in between. */
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

static int fd = -1;
__attribute__((noinline)) static void open_it(void) { fd = open("/dev/null", O_RDONLY); }
__attribute__((noinline)) static void first_owner(void) { close(fd); }
__attribute__((noinline)) static void second_owner(void) { close(fd); }

int main(void) {
    open_it();
    first_owner();
    second_owner();
    puts("done");
    return 0;
}
