# vim:set ft= ts=4 sw=4 et fdm=marker:
# Every client-facing error of the OpenAI gateway, in OpenAI's error JSON
# {"error":{"message","type","param","code"}} with the right status:
# invalid JSON and schema errors 400 naming the field, unknown model 404
# (model_not_found), prompt beyond the context 400, body too large 413,
# wrong method 405, no live worker 503. One real dynamo-worker (cpu,
# embedded model) behind the upstream so that a valid request is served.

use Test::Nginx::Socket;
use Test::Dynamo::Worker qw(start_worker stop_worker);
use Cwd qw(abs_path);

$ENV{TEST_NGINX_MODEL_DIR} ||= abs_path('models/stories260K');

my $w = start_worker('--engine', 'cpu', '--model', $ENV{TEST_NGINX_MODEL_DIR},
                     '--threads', '1', '--redis', 'none');
$ENV{TEST_NGINX_WORKER_PORT} = $w->{port};

repeat_each(1);

# status + body per block, plus the response_headers lines
plan tests => repeat_each() * (2 * blocks() + 3);

no_root_location();
no_long_string();
no_shuffle();

add_block_preprocessor(sub {
    my $block = shift;

    if (!defined $block->http_config) {
        $block->set_value('http_config', <<'_EOC_');
    dynamo_model name=stories260K path=$TEST_NGINX_MODEL_DIR context=64;

    upstream workers {
        dynamo_upstream kv;
        server 127.0.0.1:$TEST_NGINX_WORKER_PORT;
    }
_EOC_
    }

    if (!defined $block->config) {
        $block->set_value('config', <<'_EOC_');
        location / {
            client_max_body_size 4k;
            dynamo_pass workers;
        }
_EOC_
    }

    if (!defined $block->more_headers) {
        $block->set_value('more_headers', 'Content-Type: application/json');
    }
});

run_tests();

# before Test::Dynamo::Worker's END, which would clobber the exit status
stop_worker($w);

__DATA__

=== TEST 1: control: a valid completion is served
--- request
POST /v1/completions
{"model":"stories260K","prompt":"Once upon a time","max_tokens":4,"temperature":0}
--- response_body_like: ^\{"id":"cmpl-[^"]+","object":"text_completion","created":\d+,"model":"stories260K","choices":\[\{"index":0,"text":", there was a",



=== TEST 2: invalid JSON: 400, param null
--- request
POST /v1/chat/completions
{"model":"stories260K","messages":[{"role":"user","content":"hi"}
--- error_code: 400
--- response_body_like: ^\{"error":\{"message":"[^"]+","type":"invalid_request_error","param":null,"code":null\}\}$



=== TEST 3: a body that is not an object
--- request
POST /v1/completions
[1,2,3]
--- error_code: 400
--- response_body_like: ^\{"error":\{"message":"[^"]+","type":"invalid_request_error","param":null,"code":null\}\}$



=== TEST 4: model missing: 400 naming model
--- request
POST /v1/completions
{"prompt":"Once upon a time"}
--- error_code: 400
--- response_body_like: ^\{"error":\{"message":"[^"]*model[^"]*","type":"invalid_request_error","param":"model","code":(null|"[^"]+")\}\}$



=== TEST 5: messages missing: 400 naming messages
--- request
POST /v1/chat/completions
{"model":"stories260K"}
--- error_code: 400
--- response_body_like: ^\{"error":\{"message":"[^"]+","type":"invalid_request_error","param":"messages","code":(null|"[^"]+")\}\}$



=== TEST 6: temperature of the wrong type: 400 naming temperature
--- request
POST /v1/chat/completions
{"model":"stories260K","messages":[{"role":"user","content":"hi"}],"temperature":"hot"}
--- error_code: 400
--- response_body_like: ^\{"error":\{"message":"[^"]*temperature[^"]*","type":"invalid_request_error","param":"temperature","code":(null|"[^"]+")\}\}$



=== TEST 7: temperature out of range
--- request
POST /v1/completions
{"model":"stories260K","prompt":"x","temperature":3}
--- error_code: 400
--- response_body_like: "param":"temperature"



=== TEST 8: n > 1 refused clearly
--- request
POST /v1/chat/completions
{"model":"stories260K","messages":[{"role":"user","content":"hi"}],"n":2}
--- error_code: 400
--- response_body_like: ^\{"error":\{"message":"[^"]*n[^"]*","type":"invalid_request_error","param":"n",



=== TEST 9: max_tokens 0
--- request
POST /v1/completions
{"model":"stories260K","prompt":"x","max_tokens":0}
--- error_code: 400
--- response_body_like: "param":"max_tokens"



=== TEST 10: stream_options without stream
--- request
POST /v1/completions
{"model":"stories260K","prompt":"x","stream_options":{"include_usage":true}}
--- error_code: 400
--- response_body_like: "param":"stream_options"



=== TEST 11: an image part: only text is supported
--- request
POST /v1/chat/completions
{"model":"stories260K","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"http://x/y.png"}}]}]}
--- error_code: 400
--- response_body_like: "type":"invalid_request_error","param":"messages\[0\]\.content\[0\]\.type"



=== TEST 12: batched prompts refused
--- request
POST /v1/completions
{"model":"stories260K","prompt":["a","b"]}
--- error_code: 400
--- response_body_like: "param":"prompt"



=== TEST 13: a token id beyond the vocabulary (512)
--- request
POST /v1/completions
{"model":"stories260K","prompt":[1,403,512]}
--- error_code: 400
--- response_body_like: ^\{"error":\{"message":"[^"]+","type":"invalid_request_error","param":"prompt",



=== TEST 14: unknown model: 404 model_not_found
--- request
POST /v1/chat/completions
{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}
--- error_code: 404
--- response_headers
Content-Type: application/json
--- response_body chomp
{"error":{"message":"The model `gpt-4o` does not exist.","type":"invalid_request_error","param":"model","code":"model_not_found"}}



=== TEST 15: GET /v1/models/unknown: 404 model_not_found
--- request
GET /v1/models/gpt-4o
--- error_code: 404
--- response_body_like: "code":"model_not_found"



=== TEST 16: prompt beyond the context (64 tokens here): 400
--- request eval
"POST /v1/completions\n"
. '{"model":"stories260K","prompt":"' . ("Once upon a time " x 20) . '"}'
--- error_code: 400
--- response_body_like: ^\{"error":\{"message":"This model's maximum context length is 64 tokens\.[^"]*","type":"invalid_request_error","param":"prompt",



=== TEST 17: prompt + max_tokens beyond the context: 400
--- request
POST /v1/chat/completions
{"model":"stories260K","messages":[{"role":"user","content":"Once upon a time"}],"max_tokens":100}
--- error_code: 400
--- response_body_like: maximum context length is 64 tokens



=== TEST 18: body over client_max_body_size: 413 in OpenAI JSON
--- request eval
"POST /v1/completions\n"
. '{"model":"stories260K","prompt":"' . ("x" x 5000) . '"}'
--- error_code: 413
--- response_body_like: ^\{"error":\{"message":"[^"]+","type":"invalid_request_error","param":null,"code":null\}\}$



=== TEST 19: wrong method: 405 with Allow
--- request
GET /v1/chat/completions
--- error_code: 405
--- response_headers
Allow: POST
Content-Type: application/json
--- response_body_like: ^\{"error":\{"message":"[^"]+","type":"invalid_request_error","param":null,"code":null\}\}$



=== TEST 20: no live worker (the only server is down): 503
--- http_config
    dynamo_model name=stories260K path=$TEST_NGINX_MODEL_DIR;

    upstream workers {
        dynamo_upstream kv;
        server 127.0.0.1:$TEST_NGINX_WORKER_PORT down;
    }
--- request
POST /v1/completions
{"model":"stories260K","prompt":"Once upon a time","max_tokens":2}
--- error_code: 503
--- response_body_like: ^\{"error":\{"message":"[^"]+","type":"[a-z_]+","param":null,"code":(null|"[^"]+")\}\}$



=== TEST 21: the only worker refuses connections: 502/503 in OpenAI JSON, no hang
--- http_config
    dynamo_model name=stories260K path=$TEST_NGINX_MODEL_DIR;

    upstream workers {
        dynamo_upstream kv;
        server 127.0.0.1:1;
    }
--- request
POST /v1/chat/completions
{"model":"stories260K","messages":[{"role":"user","content":"hi"}],"stream":true}
--- error_code_like: ^50[23]$
--- response_body_like: ^\{"error":\{"message":"[^"]+","type":"server_error",
--- timeout: 10



=== TEST 22: a chunked request body is read
--- raw_request eval
"POST /v1/completions HTTP/1.1\r
Host: localhost\r
Connection: close\r
Content-Type: application/json\r
Transfer-Encoding: chunked\r
\r
18\r
{\"model\":\"stories260K\",\"\r
2b\r
prompt\":[1,403,407,261,378],\"max_tokens\":4}\r
0\r
\r
"
--- response_body_like: "object":"text_completion"



=== TEST 23: /health with no usable worker: 503
--- http_config
    dynamo_model name=stories260K path=$TEST_NGINX_MODEL_DIR;

    upstream workers {
        dynamo_upstream kv;
        server 127.0.0.1:$TEST_NGINX_WORKER_PORT down;
    }
--- request
GET /health
--- error_code: 503
--- response_body_like: ^\{"status":"(?!ok")



=== TEST 24: invalid UTF-8 in a JSON string: 400
--- request eval
"POST /v1/completions\n{\"model\":\"stories260K\",\"prompt\":\"\xff\xfe\"}"
--- error_code: 400
--- response_body_like: ^\{"error":\{"message":"[^"]+","type":"invalid_request_error",
