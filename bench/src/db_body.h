#ifndef DB_BODY_H
#define DB_BODY_H

/*
 * The JSON body of one OpenAI request (compact, jansson): completions
 * ("prompt", "max_tokens") or chat ("messages", "max_completion_tokens"),
 * always streamed with usage asked for.
 */

#include <stddef.h>

#include "db_dataset.h"
#include "db_opts.h"

/* An earlier turn of the same session: what was asked, what came back. */
typedef struct {
    const char  *prompt;
    const char  *reply;       /* may be NULL (nothing received) */
    size_t       reply_len;
} db_body_turn_t;

/*
 * Returns the malloc'd body (NUL-terminated, *len its length), or NULL with
 * a message in err. hist (n_hist turns, oldest first) is sent only when
 * r->with_history: chat as user/assistant message pairs before this turn's
 * user message, completions as one concatenated prompt (prompt_0 + reply_0
 * + prompt_1 + ... + this prompt, one space at each joint where neither
 * side has whitespace: texts decoded from ids start without one, and would
 * glue words together). Token-id prompts (o->prompt_tokens) are
 * sent as ids only without history (the replies have no ids).
 */
char *db_body_build(const db_opts_t *o, const db_request_t *r,
    const db_body_turn_t *hist, size_t n_hist, size_t *len, char *err,
    size_t errlen);

#endif
