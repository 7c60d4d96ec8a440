/* Correct: dup2 onto a number closed a moment ago (quarantined under the audit) works, and the
 * number then refers to the new file. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv) {
    int a = open("/dev/null", O_RDONLY);
    int b = open(argv[1], O_RDWR | O_CREAT | O_TRUNC, 0600);
    close(a);
    if (dup2(b, a) != a) {
        perror("dup2");
        return 1;
    }
    close(b);
    if (write(a, "through the dup\n", 16) != 16) {
        perror("write");
        return 1;
    }
    char buf[32] = "";
    if (pread(a, buf, 16, 0) != 16) {
        perror("pread");
        return 1;
    }
    close(a);
    printf("%s", buf);
    return 0;
}
