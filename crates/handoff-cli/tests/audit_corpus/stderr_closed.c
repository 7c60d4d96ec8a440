/* Closes stderr twice, then writes to it: natively the second close and the write fail with
 * EBADF. The audit writes its finding (the double close) while fd 2 is free, so its report
 * file is opened as fd 2: it must close it again, or the program's close "succeeds" on the
 * report file and its later writes to stderr land in the report. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(void) {
    close(2);
    errno = 0;
    int r = close(2);
    printf("second close(2): %d %s\n", r, r ? strerror(errno) : "");
    errno = 0;
    ssize_t w = write(2, "to a closed stderr\n", 19);
    printf("write(2): %zd %s\n", w, w < 0 ? strerror(errno) : "");
    return 0;
}
