/* Buggy: two FILE*s over one descriptor; both fclose it. */
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

__attribute__((noinline)) static void close_first(FILE *f) { fclose(f); }
__attribute__((noinline)) static void close_second(FILE *f) { fclose(f); }

int main(void) {
    int fd = open("/dev/null", O_RDONLY);
    FILE *a = fdopen(fd, "r");
    FILE *b = fdopen(fd, "r");
    close_first(a);
    close_second(b);
    puts("done");
    return 0;
}
