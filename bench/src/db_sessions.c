/*
 * Multi-turn sessions: N conversations of T turns. Turn 0 is a system part
 * shared by every session (system_len words) followed by the user's words;
 * each later turn brings input_len new words and waits think_s after the
 * previous turn's answer. The runner sends the history with each turn
 * (with_history = 1), so turn t's prompt on the wire is every earlier
 * prompt and reply plus this one.
 *
 * Order: all first turns, then all second turns, ...; the runner holds a
 * turn back until the same session's previous turn has completed.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db_dataset.h"
#include "db_dataset_int.h"
#include "db_words.h"

#define DB_SESSIONS_MAX_LEN  (1 << 24)

static int
check_conf(const db_sessions_conf_t *c, char *err, size_t errlen)
{
    if (c->sessions < 1 || c->turns < 1) {
        snprintf(err, errlen, "--num-sessions and --session-turns must be "
                 "at least 1");
        return -1;
    }
    if ((size_t) c->sessions * (size_t) c->turns > (size_t) 1 << 26) {
        snprintf(err, errlen, "too many session turns (%d x %d)",
                 c->sessions, c->turns);
        return -1;
    }
    if (c->system_len < 0 || c->system_len > DB_SESSIONS_MAX_LEN
        || c->input_len < 1 || c->input_len > DB_SESSIONS_MAX_LEN)
    {
        snprintf(err, errlen, "--session-system-len must be in [0, %d] and "
                 "--session-input-len in [1, %d]", DB_SESSIONS_MAX_LEN,
                 DB_SESSIONS_MAX_LEN);
        return -1;
    }
    if (c->output_len < 1 || c->output_len > DB_SESSIONS_MAX_LEN) {
        snprintf(err, errlen, "--session-output-len must be in [1, %d]",
                 DB_SESSIONS_MAX_LEN);
        return -1;
    }
    if (!(c->think_s >= 0 && c->think_s < 1e9)) {
        snprintf(err, errlen, "--session-think-ms must be >= 0");
        return -1;
    }
    return 0;
}

int
db_sessions_build(const kvr_tokenizer_t *tok, const db_sessions_conf_t *c,
    db_dataset_t *out, char *err, size_t errlen)
{
    db_words_t  w;
    int         s, t, rc = -1;

    if (check_conf(c, err, errlen) != 0
        || db_words_build(tok, &w, err, errlen) != 0)
    {
        return -1;
    }
    for (t = 0; t < c->turns; t++) {
        for (s = 0; s < c->sessions; s++) {
            db_request_t  *r = db_dataset_push(out);
            size_t         sys = t == 0 ? (size_t) c->system_len : 0;
            size_t         n = sys + (size_t) c->input_len;
            uint64_t       key = ((uint64_t) s << 32) | (uint64_t) t;

            if (r == NULL || (r->ids = malloc(n * sizeof(*r->ids))) == NULL)
            {
                snprintf(err, errlen, "out of memory");
                goto done;
            }
            /* the system part: one stream for every session */
            db_words_fill(&w, db_seed_mix(c->seed, 0x73797374ULL), r->ids,
                          sys);
            db_words_fill(&w, db_seed_mix(db_seed_mix(c->seed, 0x75736572),
                                          key),
                          r->ids + sys, (size_t) c->input_len);
            r->n_ids = n;
            r->prompt_len = (int64_t) n;
            r->output_len = c->output_len;
            r->session = s;
            r->turn = t;
            r->delay_s = t > 0 ? c->think_s : 0;
            r->with_history = 1;
            if (db_ids_text(tok, &w, r->ids, n, &r->prompt, err, errlen)
                != 0)
            {
                goto done;
            }
        }
    }
    out->has_sessions = 1;
    rc = 0;
done:
    db_words_free(&w);
    return rc;
}
