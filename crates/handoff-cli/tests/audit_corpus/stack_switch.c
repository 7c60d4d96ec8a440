/* A stack switch described in CFI the way libgcc's unwinder allows (uw_update_context: "the
 * unwind info for one frame [may] save a copy of the stack pointer from the previous frame"):
 * run_on() moves to a new stack, pushes a copy of its return address and the caller's stack
 * pointer there, and says so (CFA = rsp + 16, rsp saved at CFA - 16). An unwinder that takes
 * the caller's rsp to be the CFA looks for the caller's frame above the new stack's top, where
 * nothing is mapped. Called from the main thread and from another. Correct: prints "done". */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

/* Calls fn() with the stack pointer at `top` (16-aligned). */
void run_on(void (*fn)(void), void *top);
__asm__(".text\n"
        ".globl run_on\n"
        ".type run_on,@function\n"
        "run_on:\n"
        ".cfi_startproc\n"
        "  mov %rsp, %rax\n"    /* where the return address is */
        "  lea 8(%rax), %rcx\n" /* the caller's rsp after the return */
        "  mov %rsi, %rsp\n"
        "  pushq (%rax)\n"      /* a copy of the return address */
        "  push %rcx\n"         /* the caller's rsp */
        ".cfi_def_cfa rsp, 16\n"
        ".cfi_offset rsp, -16\n"
        "  call *%rdi\n"
        "  mov (%rsp), %rsp\n"
        "  sub $8, %rsp\n"
        ".cfi_def_cfa rsp, 8\n"
        ".cfi_same_value rsp\n"
        "  ret\n"
        ".cfi_endproc\n"
        ".size run_on, .-run_on\n");

__attribute__((noinline)) static void open_close(void) {
    int fd = open("/dev/null", O_RDONLY);
    if (fd < 0 || close(fd) != 0)
        abort();
}

/* The top of 64 KiB of new stack with an unreadable page above it. */
static char *new_stack_top(void) {
    size_t size = 1 << 16;
    char *m = mmap(NULL, size + 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED || mprotect(m + size, 4096, PROT_NONE))
        abort();
    return m + size;
}

__attribute__((noinline)) static void caller(void) {
    volatile char frame[64];
    frame[0] = 1;
    run_on(open_close, new_stack_top());
    frame[1] = frame[0];
}

static void *thread_main(void *arg) {
    caller();
    return arg;
}

int main(void) {
    caller();
    pthread_t t;
    if (pthread_create(&t, NULL, thread_main, NULL) || pthread_join(t, NULL))
        return 2;
    printf("done\n");
    return 0;
}
