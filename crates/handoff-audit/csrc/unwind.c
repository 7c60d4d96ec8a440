/*
 * The cached CFI unwinder (see unwind.h).
 *
 * For a return address `ra`, the rule that recovers the caller's frame is what the function's
 * FDE (found by libgcc's _Unwind_Find_FDE, the lookup libgcc's own unwinder uses) says after
 * executing its CIE's and FDE's call-frame instructions while the location is below `ra` (the
 * DWARF 5 §6.4 table row for `ra - 1`, as libgcc computes it). On x86_64 almost every row of
 * compiled code has the same shape: CFA = rsp + N or rbp + N, the return address at CFA - 8,
 * rbp either unchanged or saved at CFA + M. Such a row packs into 64 bits; anything else (CFA
 * expressions as in PLT stubs and stack-realigning prologues, signal frames, registers saved in
 * other registers, a rule for rsp as a stack switch may give) is cached as "fall back", and the
 * caller unwinds with backtrace().
 *
 * The cache is direct-mapped and shared by all threads; each entry is a seqlock (an odd
 * sequence means a writer is in it; a reader that sees the sequence move or odd treats the
 * probe as a miss and computes the rule itself). Nothing here allocates; a probe that hits takes
 * no lock; a miss calls libgcc's FDE lookup, as backtrace() does for every frame.
 *
 * Tested against libgcc itself: HANDOFF_AUDIT_STACKS=check makes every capture unwind both
 * ways and report any difference (crates/handoff-cli/tests/audit_stacks.rs).
 */
#define _GNU_SOURCE
#include "unwind.h"

#include <dlfcn.h>
#include <stddef.h>
#include <string.h>

/* What _Unwind_Find_FDE fills in (libgcc's unwind-dw2-fde.h). */
struct dwarf_eh_bases {
    void *tbase;
    void *dbase;
    void *func;
};
typedef const unsigned char *(*find_fde_fn)(void *pc, struct dwarf_eh_bases *bases);
static find_fde_fn find_fde;

int cfi_init(void) {
    /* glibc's backtrace() loads libgcc_s with RTLD_LOCAL: ask that object by name. */
    void *libgcc = dlopen("libgcc_s.so.1", RTLD_NOW | RTLD_NOLOAD);
    if (!libgcc)
        libgcc = dlopen("libgcc_s.so.1", RTLD_NOW);
    if (libgcc)
        find_fde = (find_fde_fn)dlsym(libgcc, "_Unwind_Find_FDE");
    return find_fde != NULL;
}

/* ---- rules -------------------------------------------------------------------------- */

enum { R_FRAME = 1, R_END = 2, R_FALLBACK = 3 };
enum { DW_RBP = 6, DW_RSP = 7, DW_RA = 16 };

struct rule {
    unsigned kind;   /* R_* */
    unsigned cfa_rbp; /* the CFA is rbp + cfa_off (else rsp + cfa_off) */
    unsigned rbp_saved; /* rbp is at CFA + rbp_off (else unchanged) */
    int32_t cfa_off;
    int16_t rbp_off;
};

static uint64_t pack(struct rule r) {
    return (uint64_t)r.kind | (uint64_t)r.cfa_rbp << 2 | (uint64_t)r.rbp_saved << 3 |
           (uint64_t)(uint16_t)r.rbp_off << 16 | (uint64_t)(uint32_t)r.cfa_off << 32;
}

static struct rule unpack(uint64_t v) {
    struct rule r;
    r.kind = v & 3;
    r.cfa_rbp = (v >> 2) & 1;
    r.rbp_saved = (v >> 3) & 1;
    r.rbp_off = (int16_t)(uint16_t)(v >> 16);
    r.cfa_off = (int32_t)(uint32_t)(v >> 32);
    return r;
}

/* ---- reading .eh_frame -------------------------------------------------------------- */

struct reader {
    const unsigned char *p, *end;
    int bad;
};

static uint64_t uleb(struct reader *r) {
    uint64_t v = 0;
    unsigned shift = 0;
    while (r->p < r->end) {
        unsigned char b = *r->p++;
        if (shift < 64)
            v |= (uint64_t)(b & 0x7f) << shift;
        shift += 7;
        if (!(b & 0x80))
            return v;
    }
    r->bad = 1;
    return 0;
}

static int64_t sleb(struct reader *r) {
    int64_t v = 0;
    unsigned shift = 0;
    while (r->p < r->end) {
        unsigned char b = *r->p++;
        if (shift < 64)
            v |= (int64_t)((uint64_t)(b & 0x7f) << shift);
        shift += 7;
        if (!(b & 0x80)) {
            if (shift < 64 && (b & 0x40))
                v |= -((int64_t)1 << shift);
            return v;
        }
    }
    r->bad = 1;
    return 0;
}

static uint64_t fixed(struct reader *r, int size) {
    if (r->end - r->p < size) {
        r->bad = 1;
        return 0;
    }
    uint64_t v = 0;
    memcpy(&v, r->p, size); /* little-endian */
    r->p += size;
    return v;
}

static void skip(struct reader *r, uint64_t n) {
    if ((uint64_t)(r->end - r->p) < n)
        r->bad = 1;
    else
        r->p += n;
}

/* The size of a DW_EH_PE-encoded value, or -1 for the variable-length and aligned ones. */
static int encoded_size(unsigned char encoding) {
    if ((encoding & 0x70) == 0x50)
        return -1;
    switch (encoding & 0x0f) {
    case 0x00:
    case 0x04:
    case 0x0c:
        return 8;
    case 0x02:
    case 0x0a:
        return 2;
    case 0x03:
    case 0x0b:
        return 4;
    default:
        return -1;
    }
}

/* ---- executing call-frame instructions ---------------------------------------------- */

enum { H_SAME = 0, H_OFFSET = 1, H_UNDEFINED = 2, H_OTHER = 3 };

struct row {
    uint64_t cfa_reg;
    int64_t cfa_off;
    int cfa_other; /* an expression */
    int rbp_how, ra_how;
    int64_t rbp_off, ra_off;
    int rsp_how; /* a rule for rsp: the caller's rsp is not the CFA (libgcc loads it) */
};

struct cie {
    uint64_t code_align;
    int64_t data_align;
    unsigned char fde_encoding;
    int has_augmentation_data, signal_frame;
    struct reader initial;
};

/* Sets `how`/`off` of register `reg` if it is one the rule tracks. */
static void set_reg(struct row *row, uint64_t reg, int how, int64_t off) {
    if (reg == DW_RBP) {
        row->rbp_how = how;
        row->rbp_off = off;
    } else if (reg == DW_RA) {
        row->ra_how = how;
        row->ra_off = off;
    } else if (reg == DW_RSP) {
        row->rsp_how = how;
    }
}

static void restore_reg(struct row *row, const struct row *initial, uint64_t reg) {
    if (reg == DW_RBP)
        set_reg(row, reg, initial->rbp_how, initial->rbp_off);
    else if (reg == DW_RA)
        set_reg(row, reg, initial->ra_how, initial->ra_off);
    else if (reg == DW_RSP)
        set_reg(row, reg, initial->rsp_how, 0);
}

enum { STATE_DEPTH = 8 };

/* Runs instructions while the location is below `target`. Returns 0 when an instruction the
 * rule cannot follow was met. */
static int execute(struct reader *r, const struct cie *cie, uintptr_t loc, uintptr_t target,
                   struct row *row, const struct row *initial) {
    struct row saved[STATE_DEPTH];
    int depth = 0;
    while (r->p < r->end && loc < target && !r->bad) {
        unsigned char op = *r->p++;
        unsigned char low = op & 0x3f;
        switch (op & 0xc0) {
        case 0x40: /* DW_CFA_advance_loc */
            loc += low * cie->code_align;
            continue;
        case 0x80: /* DW_CFA_offset */
            set_reg(row, low, H_OFFSET, (int64_t)uleb(r) * cie->data_align);
            continue;
        case 0xc0: /* DW_CFA_restore */
            restore_reg(row, initial, low);
            continue;
        }
        uint64_t reg;
        switch (op) {
        case 0x00: /* nop */
            break;
        case 0x02: /* advance_loc1 */
            loc += fixed(r, 1) * cie->code_align;
            break;
        case 0x03: /* advance_loc2 */
            loc += fixed(r, 2) * cie->code_align;
            break;
        case 0x04: /* advance_loc4 */
            loc += fixed(r, 4) * cie->code_align;
            break;
        case 0x05: /* offset_extended */
            reg = uleb(r);
            set_reg(row, reg, H_OFFSET, (int64_t)uleb(r) * cie->data_align);
            break;
        case 0x06: /* restore_extended */
            restore_reg(row, initial, uleb(r));
            break;
        case 0x07: /* undefined */
            set_reg(row, uleb(r), H_UNDEFINED, 0);
            break;
        case 0x08: /* same_value */
            set_reg(row, uleb(r), H_SAME, 0);
            break;
        case 0x09: /* register */
            reg = uleb(r);
            uleb(r);
            set_reg(row, reg, H_OTHER, 0);
            break;
        case 0x0a: /* remember_state */
            if (depth == STATE_DEPTH)
                return 0;
            saved[depth++] = *row;
            break;
        case 0x0b: /* restore_state */
            if (depth == 0)
                return 0;
            *row = saved[--depth]; /* the CFA rule too, as libgcc and GCC's epilogues have it */
            break;
        case 0x0c: /* def_cfa */
            row->cfa_reg = uleb(r);
            row->cfa_off = (int64_t)uleb(r);
            row->cfa_other = 0;
            break;
        case 0x0d: /* def_cfa_register */
            row->cfa_reg = uleb(r);
            row->cfa_other = 0;
            break;
        case 0x0e: /* def_cfa_offset */
            row->cfa_off = (int64_t)uleb(r);
            break;
        case 0x0f: /* def_cfa_expression */
            row->cfa_other = 1;
            skip(r, uleb(r));
            break;
        case 0x10: /* expression */
        case 0x16: /* val_expression */
            reg = uleb(r);
            set_reg(row, reg, H_OTHER, 0);
            skip(r, uleb(r));
            break;
        case 0x11: /* offset_extended_sf */
            reg = uleb(r);
            set_reg(row, reg, H_OFFSET, sleb(r) * cie->data_align);
            break;
        case 0x12: /* def_cfa_sf */
            row->cfa_reg = uleb(r);
            row->cfa_off = sleb(r) * cie->data_align;
            row->cfa_other = 0;
            break;
        case 0x13: /* def_cfa_offset_sf */
            row->cfa_off = sleb(r) * cie->data_align;
            break;
        case 0x14: /* val_offset */
            reg = uleb(r);
            uleb(r);
            set_reg(row, reg, H_OTHER, 0);
            break;
        case 0x15: /* val_offset_sf */
            reg = uleb(r);
            sleb(r);
            set_reg(row, reg, H_OTHER, 0);
            break;
        case 0x2e: /* GNU_args_size */
            uleb(r);
            break;
        case 0x2f: /* GNU_negative_offset_extended */
            reg = uleb(r);
            set_reg(row, reg, H_OFFSET, -(int64_t)uleb(r) * cie->data_align);
            break;
        default: /* set_loc, window_save, vendor extensions */
            return 0;
        }
    }
    return !r->bad;
}

static int parse_cie(const unsigned char *p, struct cie *cie) {
    struct reader r = {p, p + 12, 0};
    uint32_t length = fixed(&r, 4);
    if (length == 0xffffffff || length < 8)
        return 0;
    r.end = r.p + length;
    if (fixed(&r, 4) != 0) /* a CIE's id in .eh_frame */
        return 0;
    unsigned version = fixed(&r, 1);
    const char *augmentation = (const char *)r.p;
    size_t len = strnlen(augmentation, r.end - r.p);
    skip(&r, len + 1);
    if (r.bad || (version != 1 && version != 3 && version != 4))
        return 0;
    if (version == 4)
        skip(&r, 2); /* address and segment sizes */
    cie->code_align = uleb(&r);
    cie->data_align = sleb(&r);
    uint64_t ra_reg = version == 1 ? fixed(&r, 1) : uleb(&r);
    if (ra_reg != DW_RA)
        return 0;
    cie->fde_encoding = 0; /* DW_EH_PE_absptr */
    cie->signal_frame = 0;
    cie->has_augmentation_data = augmentation[0] == 'z';
    if (cie->has_augmentation_data) {
        uint64_t data = uleb(&r);
        const unsigned char *after = r.p + data;
        for (const char *a = augmentation + 1; *a; a++) {
            switch (*a) {
            case 'L':
                skip(&r, 1);
                break;
            case 'R':
                cie->fde_encoding = fixed(&r, 1);
                break;
            case 'P': {
                int size = encoded_size(fixed(&r, 1));
                if (size < 0)
                    return 0;
                skip(&r, size);
                break;
            }
            case 'S':
                cie->signal_frame = 1;
                break;
            case 'B':
                break;
            default:
                return 0;
            }
        }
        if (r.bad || after > r.end)
            return 0;
        r.p = after;
    } else if (augmentation[0]) {
        return 0;
    }
    cie->initial = r;
    return !r.bad;
}

/* The rule for the frame that returns to `ra`. */
static struct rule compute(uintptr_t ra) {
    struct rule fallback = {R_FALLBACK, 0, 0, 0, 0};
    struct rule end = {R_END, 0, 0, 0, 0};
    struct dwarf_eh_bases bases;
    const unsigned char *fde = find_fde((void *)(ra - 1), &bases);
    if (!fde)
        return fallback; /* libgcc may still know it as a signal trampoline */

    struct reader r = {fde, fde + 8, 0};
    uint32_t length = fixed(&r, 4);
    if (length == 0xffffffff || length < 4)
        return fallback;
    r.end = r.p + length;
    int32_t cie_pointer = (int32_t)fixed(&r, 4);
    struct cie cie;
    if (!parse_cie(r.p - 4 - cie_pointer, &cie) || cie.signal_frame)
        return fallback;
    int size = encoded_size(cie.fde_encoding);
    if (size < 0)
        return fallback;
    skip(&r, 2 * (uint64_t)size); /* initial location and range (bases.func has the first) */
    if (cie.has_augmentation_data)
        skip(&r, uleb(&r));
    if (r.bad)
        return fallback;

    struct row row = {.cfa_reg = DW_RSP, .rbp_how = H_SAME, .ra_how = H_SAME, .rsp_how = H_SAME};
    struct row initial;
    uintptr_t func = (uintptr_t)bases.func;
    struct reader initial_instructions = cie.initial;
    if (!execute(&initial_instructions, &cie, func, ~(uintptr_t)0, &row, &row))
        return fallback;
    initial = row;
    if (!execute(&r, &cie, func, ra, &row, &initial))
        return fallback;

    if (row.ra_how == H_UNDEFINED)
        return end;
    if (row.cfa_other || (row.cfa_reg != DW_RSP && row.cfa_reg != DW_RBP) ||
        row.ra_how != H_OFFSET || row.ra_off != -8 || row.rsp_how != H_SAME ||
        (row.rbp_how != H_SAME && row.rbp_how != H_OFFSET) || row.cfa_off < 8 ||
        row.cfa_off > INT32_MAX || row.rbp_off < INT16_MIN || row.rbp_off > INT16_MAX)
        return fallback;
    struct rule rule = {R_FRAME, row.cfa_reg == DW_RBP, row.rbp_how == H_OFFSET,
                        (int32_t)row.cfa_off, (int16_t)row.rbp_off};
    return rule;
}

/* ---- the cache ---------------------------------------------------------------------- */

enum { CACHE_SIZE = 8192 };

struct entry {
    unsigned seq;
    uintptr_t pc;
    uint64_t rule;
};

static struct entry cache[CACHE_SIZE];

static struct entry *entry_for(uintptr_t pc) {
    uint64_t h = (uint64_t)pc * 0x9e3779b97f4a7c15ull;
    return &cache[h >> (64 - 13)];
}

_Static_assert(CACHE_SIZE == 1 << 13, "the hash keeps 13 bits");

static int probe(uintptr_t pc, uint64_t *rule) {
    struct entry *e = entry_for(pc);
    unsigned before = __atomic_load_n(&e->seq, __ATOMIC_ACQUIRE);
    if (before & 1)
        return 0;
    uintptr_t cached_pc = __atomic_load_n(&e->pc, __ATOMIC_RELAXED);
    uint64_t cached_rule = __atomic_load_n(&e->rule, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    if (__atomic_load_n(&e->seq, __ATOMIC_RELAXED) != before || cached_pc != pc)
        return 0;
    *rule = cached_rule;
    return 1;
}

static void store_in(struct entry *e, uintptr_t pc, uint64_t rule) {
    unsigned seq = __atomic_load_n(&e->seq, __ATOMIC_RELAXED);
    if ((seq & 1) || !__atomic_compare_exchange_n(&e->seq, &seq, seq + 1, 0, __ATOMIC_ACQUIRE,
                                                  __ATOMIC_RELAXED))
        return; /* another thread is writing it: leave it */
    __atomic_thread_fence(__ATOMIC_RELEASE);
    __atomic_store_n(&e->pc, pc, __ATOMIC_RELAXED);
    __atomic_store_n(&e->rule, rule, __ATOMIC_RELAXED);
    __atomic_store_n(&e->seq, seq + 2, __ATOMIC_RELEASE);
}

void cfi_forget(void) {
    for (int i = 0; i < CACHE_SIZE; i++)
        store_in(&cache[i], 0, 0);
}

static struct rule rule_for(uintptr_t ra) {
    uint64_t packed;
    if (probe(ra, &packed))
        return unpack(packed);
    struct rule rule = compute(ra);
    store_in(entry_for(ra), ra, pack(rule));
    return rule;
}

/* ---- the walk ----------------------------------------------------------------------- */

__attribute__((noinline)) int cfi_backtrace(void **pc, int depth, uintptr_t stack_hi) {
    if (!find_fde)
        return -1;
    /* This function keeps a frame pointer: its CFA is fp + 16, its caller's rbp at fp[0], the
     * return address into the caller at fp[1]. That is the caller's state at the call. */
    const uintptr_t *fp = __builtin_frame_address(0);
    uintptr_t ip = fp[1], sp = (uintptr_t)fp + 16, bp = fp[0];
    int n = 0;
    while (n < depth) {
        pc[n++] = (void *)ip;
        struct rule rule = rule_for(ip);
        if (rule.kind == R_END)
            break;
        if (rule.kind != R_FRAME)
            return -1;
        uintptr_t cfa = (rule.cfa_rbp ? bp : sp) + (intptr_t)rule.cfa_off;
        /* Callers' frames are above: the CFA only grows, and stays below the stack's top. */
        if (cfa <= sp || (cfa & 7) || (stack_hi && cfa > stack_hi))
            return -1;
        uintptr_t next_ip = ((const uintptr_t *)cfa)[-1];
        if (rule.rbp_saved) {
            uintptr_t at = cfa + (intptr_t)rule.rbp_off;
            if (at < sp || (at & 7) || (stack_hi && at + 8 > stack_hi))
                return -1;
            bp = *(const uintptr_t *)at;
        }
        sp = cfa;
        ip = next_ip;
        if (!ip) /* libgcc would record a null above the outermost frame; backtrace drops it */
            break;
    }
    return n;
}
