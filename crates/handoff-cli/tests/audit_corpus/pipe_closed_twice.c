/* A cleanup called twice on a channel made of a pipe: its two ends are consecutive numbers, so
 * the closes go 3, 4, 3, 4. Not a close-all loop (which goes one way): both second closes are
 * double closes. */
#include <stdio.h>
#include <unistd.h>

struct chan {
    int rd, wr;
};

static void chan_close(struct chan *c) {
    close(c->rd);
    close(c->wr);
}

int main(void) {
    int p[2];
    if (pipe(p) != 0)
        return 1;
    struct chan c = {p[0], p[1]};
    chan_close(&c);
    chan_close(&c); /* the bug */
    printf("done\n");
    return 0;
}
