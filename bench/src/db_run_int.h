#ifndef DB_RUN_INT_H
#define DB_RUN_INT_H

/*
 * The runner's internals (db_run.h is its interface): the types and
 * functions that the phases and the run (db_run.c), the containers and
 * sessions (db_run_sess.c) and one request's stream (db_run_stream.c)
 * share.
 */

#include <stddef.h>
#include <stdint.h>

#include "db_http.h"
#include "db_run.h"
#include "db_sse.h"

#define ERRBODY_MAX     4096     /* error bodies kept for the message */

/* Sessions: the turns of one session id, in turn order. */
typedef struct {
    int64_t    id;
    size_t    *idx;      /* dataset indexes */
    size_t     n;
} group_t;

/* One running instance of a session (a cycle of --duration may run the
 * same session again). */
typedef struct sess_s {
    const group_t  *g;
    size_t          first;   /* position in g of this instance's lead */
    size_t          next;    /* position of the next turn to send */
    size_t         *res;     /* result index of each sent turn (by pos) */
    struct sess_s  *all;     /* every instance, for freeing */
} sess_t;

typedef struct {
    double     t;            /* due (absolute) */
    size_t     ds;
    sess_t    *sess;
} item_t;

typedef struct run_s run_t;

typedef struct {
    run_t     *run;
    size_t     res;          /* index into run->res */
    size_t     ds;
    sess_t    *sess;
    char      *body;
    db_sse_t   sse;
    double     start, last, now;
    size_t     n_data;       /* SSE data lines seen */
    char      *err;          /* first in-stream problem */
    char      *errbody;      /* non-200 body, first ERRBODY_MAX bytes */
    size_t     errbody_len;
} req_t;

struct run_s {
    const db_opts_t     *o;
    const db_dataset_t  *ds;
    db_http_t           *http;
    size_t               maxc;
    int                  warmup;        /* the phase running */

    db_result_t         *res;
    size_t               n_res, cap_res;

    group_t             *groups;
    size_t               n_groups;
    size_t              *group_of;      /* per dataset index; SIZE_MAX */
    size_t              *group_pos;     /* position within its group */
    size_t              *pairs;         /* storage of the groups' idx */
    sess_t              *sessions;      /* list of instances */

    item_t              *fifo;          /* arrived, waiting for a slot */
    size_t               f_head, f_len, f_cap;
    item_t              *heap;          /* session turns not yet due */
    size_t               h_len, h_cap;

    size_t               n_ok, n_fail;
    size_t               peak;
    double               first_start;   /* timed run: first send */
    double               last_end;      /* timed run: last completion */
    int                  stopping;      /* no new requests */
    int                  oom;
};

/* db_run_sess.c: the small containers */
void *db_run_grow(void *v, size_t n, size_t *cap, size_t elem, size_t first);
int db_run_fifo_push(run_t *R, item_t it);
item_t db_run_fifo_pop(run_t *R);
int db_run_heap_push(run_t *R, item_t it);
item_t db_run_heap_pop(run_t *R);
size_t db_run_res_new(run_t *R, size_t ds);

/* db_run_sess.c: sessions */
int db_run_groups_build(run_t *R, size_t lo, size_t hi);
int db_run_is_lead(const run_t *R, size_t i);
sess_t *db_run_sess_new(run_t *R, size_t lead);
void db_run_sess_fail_rest(run_t *R, sess_t *s, size_t failed_pos,
    double now);

/* db_run_stream.c: one request's stream (the transport's callbacks, and
 * handing a request to it) */
int db_run_on_data(void *ctx, const char *buf, size_t n, long status,
    double now);
void db_run_on_done(void *ctx, int ok, int timed_out, long status,
    const char *msg, double now);
int db_run_issue(run_t *R, item_t it, char *err, size_t errlen);

#endif
