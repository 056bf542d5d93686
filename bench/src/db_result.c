/* One request's raw measurements (db_result.h). */

#include "db_result.h"

#include <stdlib.h>

void db_result_free(db_result_t *r)
{
    if (r == NULL)
        return;
    free(r->error);
    free(r->itl_s);
    free(r->text);
    r->error = NULL;
    r->itl_s = NULL;
    r->text = NULL;
    r->n_itl = r->cap_itl = 0;
    r->text_len = 0;
}
