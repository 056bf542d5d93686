/*
 * Paged grouped-query attention (dw_cpu_attention) against a naive
 * contiguous attention in double: several sequences in one step, prompt
 * chunks with earlier context (pos > 0) and single tokens, block tables
 * shuffled over the pool, awkward block sizes and head counts, 1-3
 * threads.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "dw_backend_cpu_int.h"
#include "support/dw_tsupport_model.h"

typedef struct {
    uint32_t  heads, kv_heads, hd, bs, threads;
} attn_case_t;

static void
run_case(const attn_case_t *ac, uint64_t seed)
{
    /* seq: (pos, n_tokens) */
    static const uint32_t  sp[][2] = { { 0, 5 }, { 9, 1 }, { 3, 4 },
                                       { 0, 1 }, { 30, 1 }, { 17, 6 } };
    enum { NS = 6 };
    dw_model_t      m;
    dw_cpu_t        c;
    dw_seq_step_t   seqs[NS];
    dw_step_t       st;
    uint32_t        blocks[NS][64], perm[256], ctx[NS];
    float          *Kc[NS], *Vc[NS];     /* contiguous K/V per sequence */
    uint64_t        s = seed;
    uint32_t        i, j, t, h, d, rows, row, n_pool, nb, kvh, p;
    double          sc[64], mx, sum, ref, err;
    size_t          off;
    const float    *q, *kk;

    memset(&m, 0, sizeof(m));
    memset(&c, 0, sizeof(c));
    m.cfg.n_heads = ac->heads;
    m.cfg.n_kv_heads = ac->kv_heads;
    m.cfg.head_dim = ac->hd;
    c.m = &m;
    c.bs = ac->bs;
    c.qd = ac->heads * ac->hd;
    c.kvd = ac->kv_heads * ac->hd;
    c.nth = ac->threads;
    c.pool = dw_pool_create(ac->threads);
    assert_non_null(c.pool);

    /* a shuffled pool of blocks handed out to the sequences */
    n_pool = 0;
    for (i = 0; i < NS; i++) {
        ctx[i] = sp[i][0] + sp[i][1];
        n_pool += (ctx[i] + ac->bs - 1) / ac->bs;
    }
    n_pool += 7;                          /* unused blocks too */
    assert_true(n_pool <= 256);
    for (i = 0; i < n_pool; i++) {
        perm[i] = i;
    }
    for (i = n_pool - 1; i > 0; i--) {
        j = (uint32_t) (dw_ts_rand(&s) % (i + 1));
        t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    c.n_blocks = n_pool;
    c.kv_pool = (size_t) n_pool * ac->bs * c.kvd;
    c.kv = calloc(2 * c.kv_pool, sizeof(float));   /* one layer */
    assert_non_null(c.kv);
    for (i = 0; i < 2 * c.kv_pool; i++) {
        c.kv[i] = NAN;         /* any read outside the table poisons it */
    }

    rows = 0;
    j = 0;
    for (i = 0; i < NS; i++) {
        nb = (ctx[i] + ac->bs - 1) / ac->bs;
        for (t = 0; t < nb; t++) {
            blocks[i][t] = perm[j++];
        }
        Kc[i] = malloc((size_t) ctx[i] * c.kvd * 4);
        Vc[i] = malloc((size_t) ctx[i] * c.kvd * 4);
        for (t = 0; t < ctx[i]; t++) {
            off = ((size_t) blocks[i][t / ac->bs] * ac->bs + t % ac->bs)
                  * c.kvd;
            for (d = 0; d < c.kvd; d++) {
                Kc[i][t * c.kvd + d] = c.kv[off + d] = dw_ts_randf(&s);
                Vc[i][t * c.kvd + d] = c.kv[c.kv_pool + off + d]
                    = dw_ts_randf(&s);
            }
        }
        seqs[i].pos = sp[i][0];
        seqs[i].n_tokens = sp[i][1];
        seqs[i].blocks = blocks[i];
        seqs[i].n_blocks = nb;
        rows += sp[i][1];
    }
    st.seqs = seqs;
    st.n_seqs = NS;
    c.q = malloc((size_t) rows * c.qd * 4);
    c.att = malloc((size_t) rows * c.qd * 4);
    c.row_pos = malloc(rows * 4);
    c.row_seq = malloc(rows * 4);
    c.cap_ctx = 64;
    c.scores = malloc((size_t) DW_CPU_ATTN_CHUNKS(&c)
                      * DW_CPU_ATTN_SCRATCH(&c, 64) * 4);
    /* rows in reverse seq order, as the backend may lay them out */
    row = 0;
    for (i = NS; i-- > 0; ) {
        for (t = 0; t < sp[i][1]; t++, row++) {
            c.row_pos[row] = sp[i][0] + t;
            c.row_seq[row] = i;
        }
    }
    for (i = 0; i < rows * c.qd; i++) {
        c.q[i] = dw_ts_randf(&s);
    }

    dw_cpu_attention(&c, &st, 0, rows);

    for (row = 0; row < rows; row++) {
        i = c.row_seq[row];
        p = c.row_pos[row];
        for (h = 0; h < ac->heads; h++) {
            kvh = h / (ac->heads / ac->kv_heads);
            q = c.q + (size_t) row * c.qd + h * ac->hd;
            mx = -INFINITY;
            for (t = 0; t <= p; t++) {
                kk = Kc[i] + (size_t) t * c.kvd + kvh * ac->hd;
                sc[t] = 0;
                for (d = 0; d < ac->hd; d++) {
                    sc[t] += (double) q[d] * kk[d];
                }
                sc[t] /= sqrt(ac->hd);
                mx = sc[t] > mx ? sc[t] : mx;
            }
            sum = 0;
            for (t = 0; t <= p; t++) {
                sc[t] = exp(sc[t] - mx);
                sum += sc[t];
            }
            for (d = 0; d < ac->hd; d++) {
                ref = 0;
                for (t = 0; t <= p; t++) {
                    ref += sc[t] / sum
                           * Vc[i][(size_t) t * c.kvd + kvh * ac->hd + d];
                }
                err = fabs(c.att[(size_t) row * c.qd + h * ac->hd + d] - ref);
                if (!(err < 1e-5)) {
                    fail_msg("heads %u/%u hd %u bs %u: row %u (seq %u pos "
                             "%u) head %u dim %u: %g vs %g", ac->heads,
                             ac->kv_heads, ac->hd, ac->bs, row, i, p, h, d,
                             c.att[(size_t) row * c.qd + h * ac->hd + d],
                             ref);
                }
            }
        }
    }
    /* more chunks than rows: a row's heads are split into groups over
     * the work items, which must not change a bit */
    {
        float     *att1 = malloc((size_t) rows * c.qd * 4);
        uint32_t   nth = c.nth;

        assert_non_null(att1);
        memcpy(att1, c.att, (size_t) rows * c.qd * 4);
        c.nth = rows;
        free(c.scores);
        c.scores = malloc((size_t) DW_CPU_ATTN_CHUNKS(&c)
                          * DW_CPU_ATTN_SCRATCH(&c, 64) * 4);
        assert_non_null(c.scores);
        memset(c.att, 0, (size_t) rows * c.qd * 4);
        dw_cpu_attention(&c, &st, 0, rows);
        assert_memory_equal(att1, c.att, (size_t) rows * c.qd * 4);
        c.nth = nth;
        free(att1);
    }
    for (i = 0; i < NS; i++) {
        free(Kc[i]);
        free(Vc[i]);
    }
    free(c.kv);
    free(c.q);
    free(c.att);
    free(c.row_pos);
    free(c.row_seq);
    free(c.scores);
    dw_pool_destroy(c.pool);
}

static void
test_paged_attention(void **state)
{
    static const attn_case_t  cases[] = {
        { 8, 4, 8, 16, 1 },
        { 8, 4, 8, 1, 2 },
        { 4, 1, 12, 3, 3 },
        { 6, 6, 16, 5, 2 },
        { 2, 2, 2, 7, 1 },
        { 12, 3, 64, 4, 2 },
        /* the vector paths: 8 keys at a time need 8 in a block; the
         * weighted sum of V goes 64 dimensions at a time, then the rest */
        { 4, 2, 128, 16, 2 },
        { 2, 1, 96, 8, 1 },
        { 3, 3, 72, 9, 3 },
    };
    size_t  i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        run_case(&cases[i], 100 + i);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_paged_attention),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
