/*
 * A stack unwinder for x86_64 that reads each function's DWARF call-frame information once and
 * then keeps the rule it gives for each return address in a lock-free cache, so that a stack
 * that was seen before costs one cache probe and two loads per frame instead of a full
 * interpretation of the function's CFI (what libgcc's _Unwind_Backtrace, behind glibc's
 * backtrace(), does for every frame of every call).
 */
#ifndef HANDOFF_UNWIND_H
#define HANDOFF_UNWIND_H

#include <stdint.h>

/* Finds libgcc's FDE lookup (libgcc_s must be loaded: backtrace() loads it). Returns 0 when the
 * unwinder cannot run here; cfi_backtrace then always returns -1. */
int cfi_init(void);

/* The return addresses of the calling function's caller chain, like glibc's backtrace(): pc[0]
 * is the address in the function that called cfi_backtrace, pc[1] its caller's, and so on, at
 * most `depth`. `stack_hi`, when not 0, is the top of this thread's stack (no frame is read at
 * or above it).
 *
 * Returns the number of frames, or -1 when some frame needs more than the cache can express
 * (a CFA expression, a signal frame, a register other than rsp/rbp holding the CFA, a rule
 * for rsp, a frame without CFI, a frame outside the stack): the caller then unwinds with
 * backtrace(), which handles all of those. Never allocates; safe in any thread, and wherever
 * backtrace() is (a return address not seen before is looked up with libgcc's
 * _Unwind_Find_FDE). */
int cfi_backtrace(void **pc, int depth, uintptr_t stack_hi);

/* Empties the cache: after a dlclose, another object may be mapped where the closed one was,
 * with other rules at the same addresses; after a __deregister_frame, a JIT may write other
 * code where the deregistered code was. */
void cfi_forget(void);

#endif
