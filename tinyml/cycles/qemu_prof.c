/* tinyml's QEMU TCG plugin: exact execution counts per guest instruction, for the cycle model.
 *
 *   qemu-system-arm ... -plugin libtinyml_prof.so,out=prof.txt,open=0:0x1234,close=0:0x5678,flash=0x0:0x400000
 *
 * Per instruction address it counts
 *   count  executions (an inline counter added to the instruction when its block is translated),
 *   fall   how often the next instruction executed was the one right after it in memory ("fall-through": inside
 *          a block, counted by the next instruction's inline counter; for a block's last instruction, by a
 *          block-entry callback comparing the new block's start with the previous block's end),
 *   flash  data reads inside the `flash` address range (only when `flash=LO:HI` is given: a memory callback;
 *          registered for reads and writes, stores filtered out, as QEMU 7.2 did not call it for reads only).
 * `skip=LO:HI` (up to 4) names interrupt handlers: blocks there are transparent to fall-through counting, so
 * an instruction interrupted by the emulated timer's wrap still counts as falling through when execution resumes
 * right after it (silicon timed by DWT takes no such interrupt).
 * `open=CH:ADDR` / `close=CH:ADDR` (up to 4 channels, any number of marks) delimit intervals: executing an open
 * mark snapshots the counters of channel CH, executing a close mark writes what changed since that snapshot.
 * The file gets one "interval" block per closed interval and, at exit, every instruction seen with its bytes and
 * disassembly. Text format (hex addresses), read by tinyml/cycles/profile.py:
 *   I <ch> <open_pc> <close_pc>        then lines   <pc> <count> <fall> <flash>   then   E
 *   P <pc> <size> <bytes hex> <count> <fall> <flash> <disassembly>
 *
 * QEMU 7.2 (Debian 12) ships no qemu-plugin.h, so the few API types and functions used are declared below,
 * matching include/qemu/qemu-plugin.h of QEMU 7.2 (QEMU_PLUGIN_VERSION 1). Built by scripts/setup.sh (or on first
 * use) with the host gcc; never committed as a binary. Only loaded when a profile is asked for.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- QEMU 7.2 plugin API, the subset used (QEMU_PLUGIN_VERSION 1) ---- */
typedef uint64_t qemu_plugin_id_t;
typedef uint32_t qemu_plugin_meminfo_t;
typedef struct qemu_info_t qemu_info_t; /* only passed through */
struct qemu_plugin_tb;
struct qemu_plugin_insn;
enum qemu_plugin_cb_flags { QEMU_PLUGIN_CB_NO_REGS, QEMU_PLUGIN_CB_R_REGS, QEMU_PLUGIN_CB_RW_REGS };
enum qemu_plugin_mem_rw { QEMU_PLUGIN_MEM_R = 1, QEMU_PLUGIN_MEM_W, QEMU_PLUGIN_MEM_RW };
enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64 };
typedef void (*qemu_plugin_vcpu_tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);
typedef void (*qemu_plugin_vcpu_udata_cb_t)(unsigned int vcpu_index, void *userdata);
typedef void (*qemu_plugin_udata_cb_t)(qemu_plugin_id_t id, void *userdata);
typedef void (*qemu_plugin_vcpu_mem_cb_t)(unsigned int vcpu_index, qemu_plugin_meminfo_t info, uint64_t vaddr,
                                          void *userdata);

void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, qemu_plugin_vcpu_tb_trans_cb_t cb);
void qemu_plugin_register_vcpu_tb_exec_cb(struct qemu_plugin_tb *tb, qemu_plugin_vcpu_udata_cb_t cb,
                                          enum qemu_plugin_cb_flags flags, void *userdata);
void qemu_plugin_register_vcpu_insn_exec_cb(struct qemu_plugin_insn *insn, qemu_plugin_vcpu_udata_cb_t cb,
                                            enum qemu_plugin_cb_flags flags, void *userdata);
void qemu_plugin_register_vcpu_insn_exec_inline(struct qemu_plugin_insn *insn, enum qemu_plugin_op op, void *ptr,
                                                uint64_t imm);
void qemu_plugin_register_vcpu_mem_cb(struct qemu_plugin_insn *insn, qemu_plugin_vcpu_mem_cb_t cb,
                                      enum qemu_plugin_cb_flags flags, enum qemu_plugin_mem_rw rw, void *userdata);
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, qemu_plugin_udata_cb_t cb, void *userdata);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
uint64_t qemu_plugin_tb_vaddr(const struct qemu_plugin_tb *tb);
struct qemu_plugin_insn *qemu_plugin_tb_get_insn(const struct qemu_plugin_tb *tb, size_t idx);
const void *qemu_plugin_insn_data(const struct qemu_plugin_insn *insn);
size_t qemu_plugin_insn_size(const struct qemu_plugin_insn *insn);
uint64_t qemu_plugin_insn_vaddr(const struct qemu_plugin_insn *insn);
bool qemu_plugin_mem_is_store(qemu_plugin_meminfo_t info);
char *qemu_plugin_insn_disas(const struct qemu_plugin_insn *insn);
void qemu_plugin_outs(const char *string);

#define EXPORT __attribute__((visibility("default")))
EXPORT int qemu_plugin_version = 1;
EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc, char **argv);

/* ---- per-instruction records ---- */
#define CHANNELS 4
#define CHUNK 4096
#define MAX_MARKS 256

typedef struct {
    uint64_t count, fall, flash;
} counters_t;

typedef struct {
    counters_t c; /* inline counters point here: records never move */
    counters_t snap[CHANNELS];
    uint64_t pc;
    uint32_t size;
    uint8_t bytes[4];
    char *disas;
} rec_t;

typedef struct {
    uint64_t start, end; /* guest address range of one translated block */
    rec_t *last;
} tbinfo_t;

typedef struct {
    uint64_t pc;
    int channel;
    bool open;
} mark_t;

static rec_t **chunks;
static size_t n_recs, n_chunks;
static rec_t **table; /* open addressing on pc */
static size_t table_size;
static mark_t marks[MAX_MARKS];
static int n_marks;
static bool open_ch[CHANNELS];
static uint64_t open_pc[CHANNELS];
static uint64_t flash_lo, flash_hi;
static uint64_t skip_lo[4], skip_hi[4];
static int n_skip;
static bool count_flash;
static const tbinfo_t *prev_tb;
static FILE *out;

static void die(const char *msg) {
    qemu_plugin_outs(msg);
    exit(70);
}

static rec_t *rec_at(size_t i) {
    return &chunks[i / CHUNK][i % CHUNK];
}

static size_t slot(uint64_t pc, size_t size) {
    return (size_t)((pc >> 1) * 0x9E3779B97F4A7C15ull) & (size - 1);
}

static void grow_table(void) {
    size_t size = table_size ? table_size * 2 : 1u << 14;
    rec_t **t = calloc(size, sizeof *t);
    if (!t) die("tinyml_prof: out of memory\n");
    for (size_t i = 0; i < n_recs; i++) {
        rec_t *r = rec_at(i);
        size_t s = slot(r->pc, size);
        while (t[s]) s = (s + 1) & (size - 1);
        t[s] = r;
    }
    free(table);
    table = t;
    table_size = size;
}

static rec_t *lookup(struct qemu_plugin_insn *insn) {
    uint64_t pc = qemu_plugin_insn_vaddr(insn);
    if (2 * (n_recs + 1) > table_size) grow_table();
    size_t s = slot(pc, table_size);
    while (table[s]) {
        if (table[s]->pc == pc) return table[s];
        s = (s + 1) & (table_size - 1);
    }
    if (n_recs % CHUNK == 0) {
        rec_t **c = realloc(chunks, (n_chunks + 1) * sizeof *c);
        if (!c) die("tinyml_prof: out of memory\n");
        chunks = c;
        chunks[n_chunks] = calloc(CHUNK, sizeof(rec_t));
        if (!chunks[n_chunks]) die("tinyml_prof: out of memory\n");
        n_chunks++;
    }
    rec_t *r = rec_at(n_recs++);
    r->pc = pc;
    r->size = (uint32_t)qemu_plugin_insn_size(insn);
    memcpy(r->bytes, qemu_plugin_insn_data(insn), r->size < 4 ? r->size : 4);
    r->disas = qemu_plugin_insn_disas(insn);
    table[s] = r;
    return r;
}

/* ---- execution callbacks ---- */
static bool skipped(uint64_t pc) {
    for (int i = 0; i < n_skip; i++)
        if (pc >= skip_lo[i] && pc < skip_hi[i]) return true;
    return false;
}

static void on_tb_entry(unsigned int vcpu, void *udata) {
    const tbinfo_t *tb = udata;
    (void)vcpu;
    if (n_skip && skipped(tb->start)) return; /* an interrupt handler: keep the interrupted block as previous */
    if (prev_tb && prev_tb->end == tb->start) prev_tb->last->c.fall++;
    prev_tb = tb;
}

static void on_flash_read(unsigned int vcpu, qemu_plugin_meminfo_t info, uint64_t vaddr, void *udata) {
    (void)vcpu;
    if (!qemu_plugin_mem_is_store(info) && vaddr >= flash_lo && vaddr < flash_hi) ((rec_t *)udata)->c.flash++;
}

static void on_mark(unsigned int vcpu, void *udata) {
    const mark_t *m = udata;
    int ch = m->channel;
    (void)vcpu;
    if (m->open) {
        for (size_t i = 0; i < n_recs; i++) rec_at(i)->snap[ch] = rec_at(i)->c;
        open_ch[ch] = true;
        open_pc[ch] = m->pc;
        return;
    }
    if (!open_ch[ch]) return;
    fprintf(out, "I %d %llx %llx\n", ch, (unsigned long long)open_pc[ch], (unsigned long long)m->pc);
    for (size_t i = 0; i < n_recs; i++) {
        rec_t *r = rec_at(i);
        counters_t d = {r->c.count - r->snap[ch].count, r->c.fall - r->snap[ch].fall,
                        r->c.flash - r->snap[ch].flash};
        if (d.count || d.fall || d.flash)
            fprintf(out, "%llx %llu %llu %llu\n", (unsigned long long)r->pc, (unsigned long long)d.count,
                    (unsigned long long)d.fall, (unsigned long long)d.flash);
    }
    fputs("E\n", out);
    fflush(out);
    open_ch[ch] = false;
}

static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb) {
    size_t n = qemu_plugin_tb_n_insns(tb);
    tbinfo_t *info = calloc(1, sizeof *info); /* kept: the block may run until the end */
    rec_t *prev = NULL;
    (void)id;
    if (!info || n == 0) return;
    info->start = qemu_plugin_tb_vaddr(tb);
    qemu_plugin_register_vcpu_tb_exec_cb(tb, on_tb_entry, QEMU_PLUGIN_CB_NO_REGS, info);
    for (size_t i = 0; i < n; i++) {
        struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
        rec_t *r = lookup(insn);
        for (int k = 0; k < n_marks; k++)
            if (marks[k].pc == r->pc)
                qemu_plugin_register_vcpu_insn_exec_cb(insn, on_mark, QEMU_PLUGIN_CB_NO_REGS, &marks[k]);
        qemu_plugin_register_vcpu_insn_exec_inline(insn, QEMU_PLUGIN_INLINE_ADD_U64, &r->c.count, 1);
        if (prev) qemu_plugin_register_vcpu_insn_exec_inline(insn, QEMU_PLUGIN_INLINE_ADD_U64, &prev->c.fall, 1);
        if (count_flash)
            qemu_plugin_register_vcpu_mem_cb(insn, on_flash_read, QEMU_PLUGIN_CB_NO_REGS, QEMU_PLUGIN_MEM_RW, r);
        prev = r;
        info->end = r->pc + r->size;
        info->last = r;
    }
}

static void on_qemu_exit(qemu_plugin_id_t id, void *udata) {
    (void)id;
    (void)udata;
    for (size_t i = 0; i < n_recs; i++) {
        rec_t *r = rec_at(i);
        fprintf(out, "P %llx %u ", (unsigned long long)r->pc, r->size);
        for (uint32_t b = 0; b < r->size && b < 4; b++) fprintf(out, "%02x", r->bytes[b]);
        fprintf(out, " %llu %llu %llu %s\n", (unsigned long long)r->c.count, (unsigned long long)r->c.fall,
                (unsigned long long)r->c.flash, r->disas ? r->disas : "?");
    }
    fputs("END\n", out);
    fclose(out);
}

/* ---- arguments ---- */
static bool parse_mark(const char *v, bool open) {
    char *end;
    long ch = strtol(v, &end, 10);
    if (end == v || *end != ':' || ch < 0 || ch >= CHANNELS || n_marks >= MAX_MARKS) return false;
    uint64_t pc = strtoull(end + 1, &end, 0);
    if (*end) return false;
    marks[n_marks++] = (mark_t){pc & ~1ull, (int)ch, open};
    return true;
}

EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc, char **argv) {
    const char *path = NULL;
    (void)info;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        bool ok = true;
        if (strncmp(a, "out=", 4) == 0) {
            path = a + 4;
        } else if (strncmp(a, "open=", 5) == 0) {
            ok = parse_mark(a + 5, true);
        } else if (strncmp(a, "close=", 6) == 0) {
            ok = parse_mark(a + 6, false);
        } else if (strncmp(a, "skip=", 5) == 0 && n_skip < 4) {
            char *end;
            skip_lo[n_skip] = strtoull(a + 5, &end, 0);
            ok = *end == ':';
            if (ok) skip_hi[n_skip] = strtoull(end + 1, &end, 0);
            ok = ok && !*end && skip_hi[n_skip] > skip_lo[n_skip];
            n_skip += ok;
        } else if (strncmp(a, "flash=", 6) == 0) {
            char *end;
            flash_lo = strtoull(a + 6, &end, 0);
            ok = *end == ':';
            if (ok) flash_hi = strtoull(end + 1, &end, 0);
            ok = ok && !*end && flash_hi > flash_lo;
            count_flash = ok;
        } else {
            ok = false;
        }
        if (!ok) {
            fprintf(stderr, "tinyml_prof: bad argument '%s' (out=PATH, open=CH:ADDR, close=CH:ADDR, flash=LO:HI, skip=LO:HI)\n", a);
            return -1;
        }
    }
    if (!path) {
        fprintf(stderr, "tinyml_prof: out=PATH is required\n");
        return -1;
    }
    out = fopen(path, "w");
    if (!out) {
        fprintf(stderr, "tinyml_prof: cannot write %s\n", path);
        return -1;
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
    qemu_plugin_register_atexit_cb(id, on_qemu_exit, NULL);
    return 0;
}
