/* Buggy, the seed's scenario: a library hands its fd to fdopen+fclose, a victim opens a file
 * and gets the number, the library closes "its" fd again: the victim's file. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int lib_fd = -1;
__attribute__((noinline)) static void library_open(void) { lib_fd = open("/dev/null", O_RDONLY); }
__attribute__((noinline)) static void library_hand_to_stdio(void) {
    FILE *f = fdopen(lib_fd, "r");
    fclose(f); /* the FILE* owned it: lib_fd is closed now */
}
__attribute__((noinline)) static void library_cleanup(void) { close(lib_fd); }

int main(int argc, char **argv) {
    library_open();
    library_hand_to_stdio();
    int victim = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC, 0600);
    library_cleanup();
    if (write(victim, "victim data\n", 12) != 12) {
        printf("victim write failed: %s\n", strerror(errno));
        return 1;
    }
    close(victim);
    puts("victim write ok");
    return 0;
}
