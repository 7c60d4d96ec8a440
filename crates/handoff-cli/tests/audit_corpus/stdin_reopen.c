/* Correct: close(0) then open gives 0 (0-2 are never quarantined). */
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

int main(void) {
    close(0);
    int fd = open("/dev/null", O_RDONLY);
    printf("reopened as %d\n", fd);
    return fd != 0;
}
