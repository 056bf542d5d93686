# vim:set ft= ts=4 sw=4 et fdm=marker:
# GET/HEAD /health, 405 and 404 OpenAI-style errors, /metrics.

use Test::Nginx::Socket;
use Cwd qw(abs_path);

$ENV{TEST_NGINX_MODEL_DIR} ||= abs_path('models/stories260K');

repeat_each(2);

plan tests => repeat_each() * (3 * blocks() + 4);

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

=== TEST 1: GET /health
--- request
GET /health
--- response_headers
Content-Type: application/json
--- response_body chomp
{"status":"ok"}
--- no_error_log
[error]



=== TEST 2: HEAD /health: headers only
--- request
HEAD /health
--- response_headers
Content-Type: application/json
Content-Length: 15
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
['^\{"status":"ok"\}$', '^\{"error":\{"message":"Invalid URL \(GET /v1/models/x\)"']



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
\z



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
{"status":"ok"}



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
