/* Correct: opendir/readdir/closedir, and fdopendir over an openat'd directory. */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>

static int count(DIR *d) {
    int n = 0;
    while (readdir(d))
        n++;
    return n;
}

int main(void) {
    DIR *a = opendir("/");
    int n = count(a);
    closedir(a);
    DIR *b = fdopendir(open("/", O_RDONLY | O_DIRECTORY));
    int m = count(b);
    closedir(b);
    printf("%s\n", n == m && n > 2 ? "same entries" : "different");
    return 0;
}
