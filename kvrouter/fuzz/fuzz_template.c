/*
 * libFuzzer target: chat templates. The input is template source; it is
 * compiled and, when that succeeds, rendered against a small fixed
 * conversation (system/user/assistant with tool calls and a tool result,
 * list-of-parts content, tools, an extra variable).
 *
 * Checks: no crash, leak, hang or sanitizer report; errors come with a
 * message; a failed render leaves the output buffer as it was; rendering
 * twice gives the same bytes (a compiled template is immutable).
 */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kvr_err.h"
#include "kvr_template.h"

static const char *context_json =
    "{\"messages\": ["
    "{\"role\": \"system\", \"content\": \"Be brief.\"},"
    "{\"role\": \"user\", \"content\": [{\"type\": \"text\","
    " \"text\": \"Hi \\\"x\\\"\"},"
    " {\"type\": \"image\"}]},"
    "{\"role\": \"assistant\", \"content\": null, \"tool_calls\":"
    " [{\"type\": \"function\", \"function\": {\"name\": \"f\","
    " \"arguments\": {\"a\": 1, \"b\": [true, 2.5]}}}]},"
    "{\"role\": \"tool\", \"content\": \"ok \\u00e9\"},"
    "{\"role\": \"user\", \"content\": \"<think>x</think> y\"}],"
    "\"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"f\","
    " \"parameters\": {\"type\": \"object\"}}}],"
    "\"extra\": {\"enable_thinking\": false, \"n\": 3}}";

static json_t *ctx;

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    kvr_template_t       *t;
    kvr_template_vars_t   v;
    kvr_buf_t             out, again;
    char                  err[256];
    int                   rc, rc2;

    if (ctx == NULL) {
        ctx = json_loads(context_json, 0, NULL);
        if (ctx == NULL) {
            abort();
        }
    }
    err[0] = '\0';
    rc = kvr_template_compile((const char *) data, size, &t, err,
                              sizeof(err));
    if (rc != KVR_OK) {
        if (err[0] == '\0' && rc != KVR_ERR_NOMEM) {
            abort();
        }
        return 0;
    }
    memset(&v, 0, sizeof(v));
    v.messages = json_object_get(ctx, "messages");
    v.tools = json_object_get(ctx, "tools");
    v.extra = json_object_get(ctx, "extra");
    v.bos_token = "<s>";
    v.eos_token = "</s>";
    v.add_generation_prompt = 1;
    v.now = 1700000000;

    memset(&out, 0, sizeof(out));
    kvr_buf_append(&out, "pre", 3);
    err[0] = '\0';
    rc = kvr_template_render(t, &v, &out, err, sizeof(err));
    if (rc != KVR_OK) {
        if ((err[0] == '\0' && rc != KVR_ERR_NOMEM) || out.len != 3
            || memcmp(out.data, "pre", 3) != 0)
        {
            abort();
        }
    } else {
        memset(&again, 0, sizeof(again));
        kvr_buf_append(&again, "pre", 3);
        rc2 = kvr_template_render(t, &v, &again, err, sizeof(err));
        if (rc2 != KVR_OK || again.len != out.len
            || memcmp(again.data, out.data, out.len) != 0)
        {
            abort();
        }
        kvr_buf_free(&again);
    }
    kvr_buf_free(&out);
    kvr_template_free(t);
    return 0;
}
