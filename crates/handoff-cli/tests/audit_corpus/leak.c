/* Buggy with --leaks: a descriptor opened and never closed. */
#include <fcntl.h>
#include <stdio.h>

__attribute__((noinline)) static int leaky(void) { return open("/dev/null", O_RDONLY); }

int main(void) {
    printf("%s\n", leaky() >= 0 ? "opened" : "failed");
    return 0;
}
