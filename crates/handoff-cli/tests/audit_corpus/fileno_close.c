/* Buggy: close(fileno(f)) behind the FILE*'s back, then fclose(f). */
#include <stdio.h>
#include <unistd.h>

__attribute__((noinline)) static void steal_fd(FILE *f) { close(fileno(f)); }

int main(void) {
    FILE *f = fopen("/dev/null", "r");
    steal_fd(f);
    fclose(f);
    puts("done");
    return 0;
}
