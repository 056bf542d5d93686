# vim:set ft= ts=4 sw=4 et fdm=marker:
# GET/HEAD /health (ready when a worker is usable), /v1/models, 405 and 404
# OpenAI-style errors, errors the gateway finds before any worker is asked
# (unknown model, body too large, prompt beyond the context), /metrics.

use Test::Nginx::Socket;
use Cwd qw(abs_path);

$ENV{TEST_NGINX_MODEL_DIR} ||= abs_path('models/stories260K');

repeat_each(2);

plan tests => repeat_each() * (3 * blocks() + 7);

no_root_location();
no_long_string();

add_block_preprocessor(sub {
    my $block = shift;

    if (!defined $block->http_config) {
        $block->set_value('http_config', <<'_EOC_');
    dynamo_model name=stories260K path=$TEST_NGINX_MODEL_DIR;

    upstream workers {
        dynamo_upstream kv;
        server 127.0.0.1:1;
    }
_EOC_
    }

    if (!defined $block->config) {
        $block->set_value('config', <<'_EOC_');
        location / {
            dynamo_pass workers;
        }

        location = /metrics {
            dynamo_metrics;
        }
_EOC_
    }
});

run_tests();

__DATA__

=== TEST 1: GET /health: ready, with the number of usable workers
--- request
GET /health
--- response_headers
Content-Type: application/json
--- response_body chomp
{"status":"ok","workers":1}
--- no_error_log
[error]



=== TEST 2: HEAD /health: headers only
--- request
HEAD /health
--- response_headers
Content-Type: application/json
Content-Length: 27
--- response_body chomp



=== TEST 3: POST /health: 405 with Allow and an OpenAI-style error
--- request
POST /health
{"ping": true}
--- more_headers
Content-Type: application/json
--- error_code: 405
--- response_headers
Allow: GET, HEAD
Content-Type: application/json
--- response_body chomp
{"error":{"message":"Method not allowed (POST /health)","type":"invalid_request_error","param":null,"code":null}}



=== TEST 4: DELETE /health
--- request
DELETE /health
--- error_code: 405
--- response_headers
Allow: GET, HEAD
--- response_body_like: ^\{"error":\{"message":"Method not allowed \(DELETE /health\)"



=== TEST 5: unknown path: 404 OpenAI-style error
--- request
GET /v1/nope?stream=true
--- error_code: 404
--- response_headers
Content-Type: application/json
--- response_body chomp
{"error":{"message":"Invalid URL (GET /v1/nope)","type":"invalid_request_error","param":null,"code":null}}



=== TEST 6: quotes, control bytes and invalid UTF-8 in the path stay valid JSON
--- request
GET /a%22b%5Cc%01%ff
--- error_code: 404
--- response_body eval
qq#{"error":{"message":"Invalid URL (GET /a\\"b\\\\c\\u0001\xef\xbf\xbd)","type":"invalid_request_error","param":null,"code":null}}#



=== TEST 7: several requests in one block
--- request eval
["GET /health", "GET /v1/models/x"]
--- error_code eval
[200, 404]
--- response_body_like eval
['^\{"status":"ok","workers":1\}$', '^\{"error":\{"message":"The model `x` does not exist\."']



=== TEST 8: /metrics in the Prometheus text format
--- request
GET /metrics
--- response_headers
Content-Type: text/plain; version=0.0.4
--- response_body_like chomp
\A# HELP dynamo_up [^\n]+
# TYPE dynamo_up gauge
dynamo_up 1
# HELP dynamo_build_info [^\n]+
# TYPE dynamo_build_info gauge
dynamo_build_info\{version="[0-9.]+",nginx="[0-9.]+"\} 1
# HELP dynamo_requests_total [^\n]+
# TYPE dynamo_requests_total counter
dynamo_requests_total \d+
.*
dynamo_no_worker_total \d+
.*
dynamo_gateway_worker_in_flight\{worker="127\.0\.0\.1:1"\} 0




=== TEST 9: /metrics only answers GET and HEAD
--- request
POST /metrics
--- error_code: 405
--- response_headers
Allow: GET, HEAD
--- response_body
method not allowed



=== TEST 10: a chunked response (ssi drops Content-Length) is decoded
--- config
    location / {
        ssi on;
        ssi_types application/json;
        dynamo_pass workers;
    }
--- request
GET /health
--- raw_response_headers_like: Transfer-Encoding: chunked\r\n
--- response_body chomp
{"status":"ok","workers":1}



=== TEST 11: dynamo_pass under a prefix location answers /health only there
--- config
    location /v1/ {
        dynamo_pass workers;
    }

    location = /health {
        dynamo_pass workers;
    }
--- request eval
["GET /health", "GET /v1/health"]
--- error_code eval
[200, 404]
--- response_body_like eval
['"ok"', 'Invalid URL \(GET /v1/health\)']
--- timeout: 5



=== TEST 12: /health is 503 while no worker is usable
--- http_config
    dynamo_model name=stories260K path=$TEST_NGINX_MODEL_DIR;

    upstream workers {
        dynamo_upstream kv;
        server 127.0.0.1:1 down;
    }
--- request eval
["GET /health", "HEAD /health",
 "POST /v1/completions\n" . '{"model":"stories260K","prompt":"Once upon a time"}']
--- error_code eval
[503, 503, 503]
--- response_body eval
['{"status":"unavailable","workers":0}', "",
 '{"error":{"message":"No worker is available for model stories260K","type":"server_error","param":null,"code":null}}']



=== TEST 13: /v1/models: every name and alias in OpenAI's list shape
--- http_config
    dynamo_model name=stories260K path=$TEST_NGINX_MODEL_DIR alias=tiny;
    dynamo_model name=org/other:v1 path=$TEST_NGINX_MODEL_DIR context=128;

    upstream workers {
        dynamo_upstream kv;
        server 127.0.0.1:1;
    }
--- request
GET /v1/models
--- response_headers
Content-Type: application/json
--- response_body_like chomp
^\{"object":"list","data":\[\{"id":"stories260K","object":"model","created":\d+,"owned_by":"ngx_dynamo","max_model_len":512\},\{"id":"tiny","object":"model","created":\d+,"owned_by":"ngx_dynamo","max_model_len":512\},\{"id":"org/other:v1","object":"model","created":\d+,"owned_by":"ngx_dynamo","max_model_len":128\}\]\}$



=== TEST 14: /v1/models/{id}: one model, by name or alias (ids may hold '/')
--- http_config
    dynamo_model name=stories260K path=$TEST_NGINX_MODEL_DIR alias=tiny;
    dynamo_model name=org/other:v1 path=$TEST_NGINX_MODEL_DIR;

    upstream workers {
        dynamo_upstream kv;
        server 127.0.0.1:1;
    }
--- request eval
["GET /v1/models/tiny", "GET /v1/models/org/other:v1", "POST /v1/models/tiny"]
--- error_code eval
[200, 200, 405]
--- response_body_like eval
['^\{"id":"tiny","object":"model","created":\d+,"owned_by":"ngx_dynamo","max_model_len":512\}$',
 '^\{"id":"org/other:v1","object":"model"',
 'Method not allowed \(POST /v1/models/tiny\)']



=== TEST 15: /v1/models/{id}: unknown model
--- request
GET /v1/models/gpt-4o
--- error_code: 404
--- response_body chomp
{"error":{"message":"The model `gpt-4o` does not exist.","type":"invalid_request_error","param":"model","code":"model_not_found"}}



=== TEST 16: the generation endpoints take POST only
--- request eval
["GET /v1/chat/completions", "PUT /v1/completions"]
--- error_code eval
[405, 405]
--- response_headers eval
["Allow: POST", "Allow: POST"]
--- response_body_like eval
['Method not allowed \(GET /v1/chat/completions\)',
 'Method not allowed \(PUT /v1/completions\)']



=== TEST 17: unknown model in a completion request: 404 model_not_found
--- request
POST /v1/completions
{"model":"gpt-3.5-turbo-instruct","prompt":"Once upon a time","max_tokens":4}
--- error_code: 404
--- response_body chomp
{"error":{"message":"The model `gpt-3.5-turbo-instruct` does not exist.","type":"invalid_request_error","param":"model","code":"model_not_found"}}



=== TEST 18: a declared body over client_max_body_size: 413 as JSON
--- config
    location / {
        client_max_body_size 64;
        dynamo_pass workers;
    }
--- request eval
"POST /v1/completions\n" . '{"model":"stories260K","prompt":"' . ("x" x 100) . '"}'
--- error_code: 413
--- response_body_like chomp
^\{"error":\{"message":"Request body too large \(the limit is 64 bytes\)","type":"invalid_request_error","param":null,"code":null\}\}$



=== TEST 19: a chunked body over client_max_body_size: 413 as JSON
--- config
    location / {
        client_max_body_size 64;
        dynamo_pass workers;
    }
--- raw_request eval
"POST /v1/completions HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
. "Transfer-Encoding: chunked\r\n\r\n"
. "21\r\n" . ('{"model":"stories260K","prompt":"') . "\r\n"
. "64\r\n" . ("x" x 100) . "\r\n"
. "2\r\n" . '"}' . "\r\n0\r\n\r\n"
--- error_code: 413
--- response_body_like chomp
^\{"error":\{"message":"Request body too large \(the limit is 64 bytes\)","type":"invalid_request_error","param":null,"code":null\}\}$



=== TEST 20: prompt beyond the model's context: 400 before any worker is asked
--- request eval
"POST /v1/completions\n"
. '{"model":"stories260K","prompt":[' . join(",", (300) x 512) . ']}'
--- error_code: 400
--- response_body chomp
{"error":{"message":"This model's maximum context length is 512 tokens. However, your request has 512 input tokens. Please reduce the length of the input messages.","type":"invalid_request_error","param":"prompt","code":"context_length_exceeded"}}



=== TEST 21: prompt + max_tokens beyond the context
--- request eval
"POST /v1/chat/completions\n"
. '{"model":"stories260K","max_tokens":500,'
. '"messages":[{"role":"user","content":"' . ("the dog " x 10) . '"}]}'
--- error_code: 400
--- response_body_like chomp
^\{"error":\{"message":"This model's maximum context length is 512 tokens\. However, you requested (\d+) tokens \(\d+ in the messages, 500 in the completion\)\. Please reduce the length of the messages or completion\.","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"\}\}$



=== TEST 22: token ids beyond the vocabulary
--- request
POST /v1/completions
{"model":"stories260K","prompt":[1,403,512]}
--- error_code: 400
--- response_body chomp
{"error":{"message":"Token id 512 is out of vocabulary (vocabulary size 512).","type":"invalid_request_error","param":"prompt","code":null}}



=== TEST 23: long prompts tokenized in the thread pool count as on the event loop
--- http_config
    dynamo_model name=stories260K path=$TEST_NGINX_MODEL_DIR;
    dynamo_thread_pool default min=1k;

    upstream workers {
        dynamo_upstream kv;
        server 127.0.0.1:1;
    }
--- request eval
# 602 tokens: the count dynamo-kv tokenize gives (BOS included)
["POST /v1/completions\n"
 . '{"model":"stories260K","prompt":"' . ("Lily saw a dog. " x 100) . '"}',
 "POST /v1/chat/completions\n"
 . '{"model":"stories260K","messages":[{"role":"user","content":"'
 . ("Lily saw a dog. " x 100) . '"}]}']
--- error_code eval
[400, 400]
--- response_body_like eval
['your request has 602 input tokens', 'your request has 602 input tokens']



=== TEST 24: proxy_pass to a dynamo_upstream is refused, not misread
--- config
    location / {
        dynamo_pass workers;
    }

    location /p/ {
        proxy_pass http://workers/;
    }
--- request
GET /p/health
--- error_code: 500
--- response_body_like: 500 Internal Server Error
--- error_log
dynamo_upstream "workers" used outside dynamo_pass



=== TEST 25: /metrics with a thousand workers is whole (no cut family or line)
--- http_config eval
"    dynamo_model name=stories260K path=\$TEST_NGINX_MODEL_DIR;
    upstream workers {
        dynamo_upstream round_robin;
" . join("", map { "        server 127.0.0.2:$_;\n" } 1 .. 1030) . "    }\n"
--- config
    location = /metrics {
        dynamo_metrics;
    }
--- request
GET /metrics
--- response_body_like chomp
dynamo_gateway_worker_failures_total\{worker="127\.0\.0\.2:1030"\} 0\n[\s\S]*dynamo_redis_disconnects_total\{model="stories260K"\} 0\n\z
--- no_error_log
[error]
