/* Correct: close files (their numbers are quarantined under the audit), then exec: the
 * tombstones are close-on-exec, so the new program sees exactly the descriptors it would. */
#include <fcntl.h>
#include <unistd.h>

int main(void) {
    for (int i = 0; i < 10; i++)
        close(open("/dev/null", O_RDONLY));
    execl("/bin/ls", "ls", "/proc/self/fd", (char *)NULL);
    return 127;
}
