/* Correct: popen/pclose. */
#include <stdio.h>

int main(void) {
    char line[64] = "";
    FILE *p = popen("echo from the child", "r");
    if (!fgets(line, sizeof line, p))
        return 1;
    int status = pclose(p);
    printf("%s status %d\n", line, status);
    return 0;
}
