/* Correct: close some files (quarantined numbers), then fork, close everything >= 3 in a loop
 * in the child, and exec. */
#include <fcntl.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

int main(void) {
    for (int i = 0; i < 5; i++)
        close(open("/dev/null", O_RDONLY));
    int keep = open("/dev/null", O_RDONLY);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        for (int fd = 3; fd < 1024; fd++)
            close(fd);
        execl("/bin/echo", "echo", "child ran", (char *)NULL);
        _exit(127);
    }
    int status;
    waitpid(pid, &status, 0);
    close(keep);
    printf("child status %d\n", WEXITSTATUS(status));
    return 0;
}
