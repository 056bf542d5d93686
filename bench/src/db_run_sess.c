/*
 * The runner's small containers (the FIFO of arrived requests, the heap
 * of session turns not yet due, the results) and its sessions: the
 * dataset's turns grouped by session, and the running instances.
 */

#include "db_run_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- small containers ---- */

/* v with room for element n (capacity *cap, doubled from first), or NULL
 * when out of memory (v is then left as it was). */
void *db_run_grow(void *v, size_t n, size_t *cap, size_t elem, size_t first)
{
    if (n < *cap)
        return v;
    size_t c = *cap ? *cap * 2 : first;
    void *p = realloc(v, c * elem);
    if (p != NULL)
        *cap = c;
    return p;
}

int db_run_fifo_push(run_t *R, item_t it)
{
    if (R->f_len == R->f_cap) {
        size_t cap = R->f_cap ? R->f_cap * 2 : 64;
        item_t *v = malloc(cap * sizeof(*v));
        if (v == NULL)
            return -1;
        for (size_t i = 0; i < R->f_len; i++)
            v[i] = R->fifo[(R->f_head + i) % R->f_cap];
        free(R->fifo);
        R->fifo = v;
        R->f_cap = cap;
        R->f_head = 0;
    }
    R->fifo[(R->f_head + R->f_len) % R->f_cap] = it;
    R->f_len++;
    return 0;
}

item_t db_run_fifo_pop(run_t *R)
{
    item_t it = R->fifo[R->f_head];
    R->f_head = (R->f_head + 1) % R->f_cap;
    R->f_len--;
    return it;
}

int db_run_heap_push(run_t *R, item_t it)
{
    item_t *v = db_run_grow(R->heap, R->h_len, &R->h_cap, sizeof(*v), 64);
    if (v == NULL)
        return -1;
    R->heap = v;
    size_t i = R->h_len++;
    while (i > 0 && R->heap[(i - 1) / 2].t > it.t) {
        R->heap[i] = R->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    R->heap[i] = it;
    return 0;
}

item_t db_run_heap_pop(run_t *R)
{
    item_t top = R->heap[0], last = R->heap[--R->h_len];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= R->h_len)
            break;
        if (c + 1 < R->h_len && R->heap[c + 1].t < R->heap[c].t)
            c++;
        if (R->heap[c].t >= last.t)
            break;
        R->heap[i] = R->heap[c];
        i = c;
    }
    if (R->h_len > 0)
        R->heap[i] = last;
    return top;
}

/* A new zeroed result; SIZE_MAX when out of memory. */
size_t db_run_res_new(run_t *R, size_t ds)
{
    db_result_t *v = db_run_grow(R->res, R->n_res, &R->cap_res, sizeof(*v),
        256);
    if (v == NULL) {
        R->oom = 1;
        return SIZE_MAX;
    }
    R->res = v;
    db_result_t *r = &R->res[R->n_res];
    memset(r, 0, sizeof(*r));
    const db_request_t *q = &R->ds->v[ds];
    r->index = ds;
    r->session = q->session;
    r->turn = q->turn;
    r->warmup = R->warmup;
    r->ttft_s = -1;
    r->prompt_tokens = q->prompt_len;
    r->output_tokens = -1;
    r->cached_tokens = -1;
    return R->n_res++;
}

/* ---- sessions ---- */

typedef struct { int64_t s; int turn; size_t i; } key_t_;

static int key_cmp(const void *a, const void *b)
{
    const key_t_ *x = a, *y = b;
    if (x->s != y->s)
        return x->s < y->s ? -1 : 1;
    if (x->turn != y->turn)
        return x->turn < y->turn ? -1 : 1;
    return x->i < y->i ? -1 : x->i > y->i;
}

/* Groups the dataset's requests in [lo, hi) by session (turn order). */
int db_run_groups_build(run_t *R, size_t lo, size_t hi)
{
    const db_dataset_t *ds = R->ds;
    for (size_t i = 0; i < ds->n; i++)
        R->group_of[i] = SIZE_MAX;
    free(R->groups);
    free(R->pairs);
    R->groups = NULL;
    R->pairs = NULL;
    R->n_groups = 0;

    size_t n = 0;
    for (size_t i = lo; i < hi; i++)
        n += ds->v[i].session >= 0;
    if (n == 0)
        return 0;
    key_t_ *k = malloc(n * sizeof(*k));
    R->pairs = malloc(n * sizeof(*R->pairs));
    R->groups = malloc(n * sizeof(*R->groups));
    if (k == NULL || R->pairs == NULL || R->groups == NULL) {
        free(k);
        return -1;
    }
    n = 0;
    for (size_t i = lo; i < hi; i++)
        if (ds->v[i].session >= 0)
            k[n++] = (key_t_){ ds->v[i].session, ds->v[i].turn, i };
    qsort(k, n, sizeof(*k), key_cmp);
    for (size_t j = 0; j < n; j++) {
        if (j == 0 || k[j].s != k[j - 1].s) {
            R->groups[R->n_groups++] = (group_t){ k[j].s, &R->pairs[j], 0 };
        }
        group_t *g = &R->groups[R->n_groups - 1];
        R->pairs[j] = k[j].i;
        R->group_of[k[j].i] = R->n_groups - 1;
        R->group_pos[k[j].i] = g->n++;
    }
    free(k);
    return 0;
}

/* Is dataset index i sent by the arrival process (not a later turn)? */
int db_run_is_lead(const run_t *R, size_t i)
{
    return R->group_of[i] == SIZE_MAX || R->group_pos[i] == 0;
}

sess_t *db_run_sess_new(run_t *R, size_t lead)
{
    const group_t *g = &R->groups[R->group_of[lead]];
    sess_t *s = calloc(1, sizeof(*s));
    if (s == NULL || (s->res = calloc(g->n, sizeof(size_t))) == NULL) {
        free(s);
        R->oom = 1;
        return NULL;
    }
    s->g = g;
    s->first = s->next = R->group_pos[lead];
    s->all = R->sessions;
    R->sessions = s;
    return s;
}

/* The later turns of a session whose turn failed: recorded, never sent. */
void db_run_sess_fail_rest(run_t *R, sess_t *s, size_t failed_pos,
    double now)
{
    const group_t *g = s->g;
    for (size_t p = failed_pos + 1; p < g->n; p++) {
        size_t k = db_run_res_new(R, g->idx[p]);
        if (k == SIZE_MAX)
            return;
        db_result_t *r = &R->res[k];
        char m[96];
        snprintf(m, sizeof(m), "session %lld: turn %d failed",
            (long long)g->id, R->ds->v[g->idx[failed_pos]].turn);
        r->error = strdup(m);
        r->start_s = now;
        R->n_fail++;
    }
    s->next = g->n;
}
