/*
 * dynamo-worker: leveled logging to stderr, one line per message:
 * "dynamo-worker: [level] message". Safe from any thread (one fprintf).
 */
#ifndef DW_LOG_H
#define DW_LOG_H

typedef enum {
    DW_LOG_ERROR = 0,
    DW_LOG_WARN,
    DW_LOG_INFO,
    DW_LOG_DEBUG
} dw_log_level_t;

/* "error", "warn", "info", "debug": 0 and sets *lvl, or -1. */
int dw_log_level_parse(const char *name, dw_log_level_t *lvl);
void dw_log_set_level(dw_log_level_t lvl);
int dw_log_enabled(dw_log_level_t lvl);

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
void dw_log(dw_log_level_t lvl, const char *fmt, ...);

#endif
