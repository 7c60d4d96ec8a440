/* A plugin built twice with different FRAME sizes: the same code at the same offsets but a
 * different stack frame, so that when one replaces the other at the same address after a
 * dlclose, an unwinder that kept the first one's rules gives a wrong stack. */
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

__attribute__((noinline)) static void open_close(void) {
    int fd = open("/dev/null", O_RDONLY);
    close(fd);
}

int plugin(volatile char *out) {
    char buf[FRAME];
    memset(buf, out[0], sizeof buf);
    open_close();
    out[0] = buf[FRAME / 2];
    return buf[3];
}
