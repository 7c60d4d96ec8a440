/* Correct: dup2 a file onto stdout, write through stdio, restore stdout. */
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

int main(int argc, char **argv) {
    int saved = dup(1);
    int fd = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC, 0600);
    fflush(stdout);
    dup2(fd, 1);
    close(fd);
    printf("into the file\n");
    fflush(stdout);
    dup2(saved, 1);
    close(saved);
    char buf[64] = "";
    FILE *f = fopen(argv[1], "r");
    fgets(buf, sizeof buf, f);
    fclose(f);
    printf("file holds: %s", buf);
    return 0;
}
