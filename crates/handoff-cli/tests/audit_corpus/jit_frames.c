/* A JIT's life, as LLVM's or Wasmtime's: code is written to executable memory and its CFI
 * registered with libgcc (__register_frame); later the code is dropped (__deregister_frame)
 * and other code, with another frame, is written at the same address and registered. Stacks
 * taken in the second code must follow its own CFI, not rules kept from the first.
 *
 *   jit_frames        both codes called on the main thread (first frame 24 bytes, then 8)
 *   jit_frames thread the first code (a 2 MiB frame) on the main thread, the second on a
 *                     thread whose 64 KiB stack has nothing readable above it
 *
 * Correct: prints "done"; no finding. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

void __register_frame(void *begin);
void __deregister_frame(void *begin);

typedef void (*jitted)(void (*callback)(void));
static unsigned char *code;
static unsigned char frames[64];

__attribute__((noinline)) static void open_close(void) {
    int fd = open("/dev/null", O_RDONLY);
    if (fd < 0 || close(fd) != 0)
        abort();
}

/* Writes at `code`: sub $frame,%rsp; call *%rdi; add $frame,%rsp; ret (17 bytes), writes its
 * .eh_frame (a CIE, one FDE, the terminator) to `frames` and registers it. */
static void emit(uint32_t frame) {
    unsigned char *p = code;
    *p++ = 0x48, *p++ = 0x81, *p++ = 0xec;
    memcpy(p, &frame, 4), p += 4;
    *p++ = 0xff, *p++ = 0xd7;
    *p++ = 0x48, *p++ = 0x81, *p++ = 0xc4;
    memcpy(p, &frame, 4), p += 4;
    *p++ = 0xc3;
    __builtin___clear_cache((char *)code, (char *)p);

    /* CIE: version 1, "zR", code alignment 1, data alignment -8, return address column 16,
     * pointers absolute; CFA = rsp + 8, return address at CFA - 8. */
    static const unsigned char cie[] = {20, 0, 0, 0, 0, 0, 0, 0, 1, 'z', 'R', 0, 1, 0x78, 16, 1,
                                        0x00, 0x0c, 0x07, 0x08, 0x90, 0x01, 0, 0};
    memset(frames, 0, sizeof frames);
    memcpy(frames, cie, sizeof cie);
    unsigned char *fde = frames + sizeof cie, *e = fde + 4;
    uint32_t cie_pointer = (uint32_t)(e - frames);
    memcpy(e, &cie_pointer, 4), e += 4;
    uint64_t begin = (uintptr_t)code, range = 17, cfa = (uint64_t)frame + 8;
    memcpy(e, &begin, 8), e += 8;
    memcpy(e, &range, 8), e += 8;
    *e++ = 0;    /* no augmentation data */
    *e++ = 0x47; /* advance_loc 7: after the sub */
    *e++ = 0x0e; /* def_cfa_offset frame + 8 */
    do {
        unsigned char b = cfa & 0x7f;
        cfa >>= 7;
        *e++ = b | (cfa ? 0x80 : 0);
    } while (cfa);
    *e++ = 0x49; /* advance_loc 9: after the add */
    *e++ = 0x0e, *e++ = 0x08;
    while ((e - fde) % 8)
        *e++ = 0;
    uint32_t length = (uint32_t)(e - fde - 4);
    memcpy(fde, &length, 4);
    __register_frame(frames);
}

static void *second_code(void *arg) {
    ((jitted)code)(open_close);
    return arg;
}

int main(int argc, char **argv) {
    int thread = argc > 1 && strcmp(argv[1], "thread") == 0;
    code = mmap(NULL, 4096, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1,
                0);
    if (code == MAP_FAILED)
        return 2;
    emit(thread ? 0x200008 : 0x18);
    ((jitted)code)(open_close);
    __deregister_frame(frames);
    emit(0x8);
    if (!thread) {
        second_code(NULL);
    } else {
        size_t size = 1 << 16;
        char *m = mmap(NULL, size + (4 << 20), PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED || mprotect(m, size, PROT_READ | PROT_WRITE))
            return 2;
        pthread_attr_t attr;
        pthread_t t;
        pthread_attr_init(&attr);
        pthread_attr_setstack(&attr, m, size);
        if (pthread_create(&t, &attr, second_code, NULL) || pthread_join(t, NULL))
            return 2;
    }
    __deregister_frame(frames);
    printf("done\n");
    return 0;
}
