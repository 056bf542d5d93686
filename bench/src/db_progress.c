/* The progress bar (db_progress.h). */

#include "db_progress.h"

#include <stdio.h>
#include <unistd.h>

#define BAR_WIDTH  30

void db_progress_init(db_progress_t *p, int enabled, size_t total,
    double duration_s, double now)
{
    p->on = enabled && isatty(2);
    p->total = total;
    p->duration_s = duration_s;
    p->t0 = now;
    p->last = -1;
    p->drawn = 0;
}

void db_progress_update(db_progress_t *p, double now, size_t ok,
    size_t fail, size_t in_flight, int force)
{
    if (!p->on || (!force && p->last >= 0 && now - p->last < 0.1))
        return;
    p->last = now;

    double el = now - p->t0, frac = 0;
    size_t done = ok + fail;
    if (p->duration_s > 0)
        frac = el / p->duration_s;
    else if (p->total > 0)
        frac = (double)done / (double)p->total;
    if (frac > 1)
        frac = 1;
    if (frac < 0)
        frac = 0;

    char bar[BAR_WIDTH + 1];
    int fill = (int)(frac * BAR_WIDTH + 0.5);
    for (int i = 0; i < BAR_WIDTH; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[BAR_WIDTH] = '\0';

    char count[64];
    if (p->total > 0 && p->duration_s <= 0)
        snprintf(count, sizeof(count), "%zu/%zu", done, p->total);
    else
        snprintf(count, sizeof(count), "%zu", done);
    /* \r then clear to the end of the line: a shorter line leaves no
     * remnants of the previous one */
    fprintf(stderr, "\r[%s] %s  ok %zu  fail %zu  in flight %zu  %.1fs\033[K",
        bar, count, ok, fail, in_flight, el);
    fflush(stderr);
    p->drawn = 1;
}

void db_progress_end(db_progress_t *p, double now, size_t ok, size_t fail)
{
    if (!p->on)
        return;
    db_progress_update(p, now, ok, fail, 0, 1);
    fputc('\n', stderr);
    fflush(stderr);
    p->drawn = 0;
}
