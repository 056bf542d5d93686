#ifndef DB_PROGRESS_H
#define DB_PROGRESS_H

/*
 * A one-line progress bar on stderr, only on a terminal:
 *   [#####.....] 512/1000  ok 510  fail 2  in flight 64  12.3s
 * redrawn at most 10 times a second; never written to a pipe or a file.
 */

#include <stddef.h>

typedef struct {
    int      on;          /* enabled and stderr is a terminal */
    size_t   total;       /* requests expected (0: unknown) */
    double   duration_s;  /* the run's --duration (0: none); the bar then
                             follows time when total is unknown */
    double   t0;          /* start, seconds (the caller's clock) */
    double   last;        /* last redraw */
    int      drawn;       /* something is on the line */
} db_progress_t;

void db_progress_init(db_progress_t *p, int enabled, size_t total,
    double duration_s, double now);
/* Redraws when 0.1 s has passed since the last redraw (or force). */
void db_progress_update(db_progress_t *p, double now, size_t ok,
    size_t fail, size_t in_flight, int force);
/* Final redraw, then a newline. */
void db_progress_end(db_progress_t *p, double now, size_t ok, size_t fail);

#endif
