/*
 * libFuzzer target for `dynamo-bench serve`'s readers (db_serve_int.h):
 * the input as a script file (JSONL) and as a completions and a chat
 * request body. No crash, no leak; what loads must hold the documented
 * ranges.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db_serve_int.h"

static void
check_entry(const db_serve_entry_t *e)
{
    size_t  i;

    if ((e->itl_ms == NULL) != (e->n_itl == 0)
        || e->n_itl > DB_SERVE_ITL_MAX || e->tokens < -1
        || e->chunk_tokens == 0 || e->chunk_tokens < -1
        || (e->status != 0 && (e->status < 400 || e->status > 599))
        || e->error_after < -1 || e->disconnect_after < -1)
    {
        abort();
    }
    for (i = 0; i < e->n_itl; i++) {
        if (!(e->itl_ms[i] >= 0)) {
            abort();
        }
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    db_serve_script_t  s;
    db_serve_req_t     r;
    char               err[512];
    FILE              *f;
    size_t             i;
    int                chat;

    if (size > 0) {
        f = fmemopen((void *) data, size, "r");
        if (f != NULL) {
            if (db_serve_script_load_fp(f, "fuzz", &s, err, sizeof(err))
                == 0)
            {
                if (s.n == 0) {
                    abort();
                }
                for (i = 0; i < s.n; i++) {
                    check_entry(&s.v[i]);
                }
                db_serve_script_free(&s);
            } else if (strncmp(err, "fuzz", 4) != 0) {
                abort();
            }
            fclose(f);
        }
    }
    for (chat = 0; chat < 2; chat++) {
        if (db_serve_req_parse((const char *) data, size, chat, &r, err,
                sizeof(err)) == 0)
        {
            if (r.prompt_tokens < 0 || r.max_tokens == 0
                || r.max_tokens < -1)
            {
                abort();
            }
            db_serve_req_free(&r);
        }
    }
    return 0;
}
