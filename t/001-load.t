# vim:set ft= ts=4 sw=4 et fdm=marker:
# The module loads, takes every directive, and nginx refuses bad values
# with a message naming the directive (nginx -t style, via --- must_die).

use Test::Nginx::Socket;
use Cwd qw(abs_path);
use File::Copy qw(copy);
use File::Temp qw(tempdir);

$ENV{TEST_NGINX_MODEL_DIR} ||= abs_path('models/stories260K');

# model directories with a part missing: no config.json (so no context
# unless context= says it), no tokenizer.json, a broken config.json
{
    my $base = tempdir(CLEANUP => 1);
    my $src = $ENV{TEST_NGINX_MODEL_DIR};

    mkdir "$base/$_" or die for qw(noconfig notokenizer badconfig);

    for my $f ("tokenizer.json", "tokenizer_config.json") {
        copy("$src/$f", "$base/noconfig/$f") or die;
        copy("$src/$f", "$base/badconfig/$f") or die;
    }

    copy("$src/config.json", "$base/notokenizer/config.json") or die;

    open my $fh, '>', "$base/badconfig/config.json" or die;
    print $fh "{\"max_position_embeddings\": \"many\"}\n";
    close $fh;

    $ENV{TEST_NGINX_BAD_MODELS} = $base;
}

repeat_each(1);

# must_die blocks: "die as expected" + two error_log patterns; the two
# blocks that serve: status + body + one no_error_log pattern
plan tests => repeat_each() * (3 * blocks());

no_root_location();

add_block_preprocessor(sub {
    my $block = shift;

    # "[emerg]" among the patterns: the failure is expected, so no warning
    if (defined $block->must_die && defined $block->error_log) {
        my $pat = $block->error_log;
        chomp $pat if !ref $pat;
        $block->set_value('error_log', ['[emerg]', $pat]);
    }

    if (!defined $block->config) {
        $block->set_value('config', <<'_EOC_');
        location / {
            return 204;
        }
_EOC_
    }
});

run_tests();

__DATA__

=== TEST 1: the module loads and serves /health
--- http_config
    upstream workers {
        server 127.0.0.1:1;
    }
--- config
    location / {
        dynamo_pass workers;
    }
--- request
GET /health
--- response_body chomp
{"status":"ok","workers":1}
--- no_error_log
[emerg]



=== TEST 2: every directive with every parameter
--- main_config
    worker_rlimit_nofile 1024;
--- http_config
    dynamo_model name=stories260K path=$TEST_NGINX_MODEL_DIR block_size=16
                 context=512 alias=stories,tiny alias=story-1;
    dynamo_model name=org/second-model.v1 path=$TEST_NGINX_MODEL_DIR;
    dynamo_redis 127.0.0.1:6379 password=secret db=2 connect_timeout=250ms
                 timeout=2s;
    dynamo_zone dynamo 4m;
    dynamo_thread_pool default min=64k;

    upstream decode {
        dynamo_upstream kv overlap_weight=1.5 temperature=0.25
                        balance_margin=0.1 role=decode;
        server 127.0.0.1:1;
    }

    upstream prefill {
        dynamo_upstream least_load role=prefill;
        server 127.0.0.1:2;
    }

    upstream plain {
        dynamo_upstream round_robin;
        server 127.0.0.1:3;
    }
--- config
    location / {
        dynamo_pass decode;
    }

    location /prefill/ {
        dynamo_pass prefill;
    }

    location /plain/ {
        dynamo_pass plain;
    }

    location = /metrics {
        dynamo_metrics;
    }
--- request
GET /health
--- response_body_like chomp
^\{"status":"ok","workers":\d+\}$
--- no_error_log
[emerg]



=== TEST 3: dynamo_model: block_size not a number
--- http_config
    dynamo_model name=m path=$TEST_NGINX_MODEL_DIR block_size=x;
--- must_die
--- error_log
invalid block_size "x" in "dynamo_model"



=== TEST 4: dynamo_model: block_size out of range
--- http_config
    dynamo_model name=m path=$TEST_NGINX_MODEL_DIR block_size=4096;
--- must_die
--- error_log
invalid block_size "4096" in "dynamo_model"



=== TEST 5: dynamo_model: context must be positive
--- http_config
    dynamo_model name=m path=$TEST_NGINX_MODEL_DIR context=0;
--- must_die
--- error_log
invalid context "0" in "dynamo_model"



=== TEST 6: dynamo_model: name is required
--- http_config
    dynamo_model path=$TEST_NGINX_MODEL_DIR;
--- must_die
--- error_log
missing name= in "dynamo_model"



=== TEST 7: dynamo_model: path is required
--- http_config
    dynamo_model name=m;
--- must_die
--- error_log
missing path= in "dynamo_model"



=== TEST 8: dynamo_model: path must be a directory
--- http_config
    dynamo_model name=m path=$TEST_NGINX_MODEL_DIR/config.json;
--- must_die
--- error_log eval
qr/model path "[^"]+config\.json" in "dynamo_model" is not a directory/



=== TEST 9: dynamo_model: missing path
--- http_config
    dynamo_model name=m path=$TEST_NGINX_MODEL_DIR/nonexistent;
--- must_die
--- error_log
cannot access model path



=== TEST 10: dynamo_model: unknown parameter
--- http_config
    dynamo_model name=m path=$TEST_NGINX_MODEL_DIR quant=int4;
--- must_die
--- error_log
invalid parameter "quant=int4" in "dynamo_model"



=== TEST 11: dynamo_model: bad characters in name
--- http_config
    dynamo_model "name=a b" path=$TEST_NGINX_MODEL_DIR;
--- must_die
--- error_log
invalid name "a b" in "dynamo_model"



=== TEST 12: dynamo_model: an alias may not repeat a served name
--- http_config
    dynamo_model name=a path=$TEST_NGINX_MODEL_DIR;
    dynamo_model name=b path=$TEST_NGINX_MODEL_DIR alias=c,a;
--- must_die
--- error_log
duplicate model name "a" in "dynamo_model"



=== TEST 13: dynamo_model: empty alias
--- http_config
    dynamo_model name=a path=$TEST_NGINX_MODEL_DIR alias=b,,c;
--- must_die
--- error_log
invalid alias "b,,c" in "dynamo_model"



=== TEST 14: dynamo_redis: bad port
--- http_config
    dynamo_redis 127.0.0.1:99999;
--- must_die
--- error_log
invalid port in address "127.0.0.1:99999" of "dynamo_redis"



=== TEST 15: dynamo_redis: bad db
--- http_config
    dynamo_redis 127.0.0.1:6379 db=x;
--- must_die
--- error_log
invalid db "x" in "dynamo_redis"



=== TEST 16: dynamo_redis: zero timeout
--- http_config
    dynamo_redis unix:/tmp/redis.sock timeout=0;
--- must_die
--- error_log
invalid timeout "0" in "dynamo_redis"



=== TEST 17: dynamo_redis: bad connect_timeout
--- http_config
    dynamo_redis 127.0.0.1 connect_timeout=soon;
--- must_die
--- error_log
invalid connect_timeout "soon" in "dynamo_redis"



=== TEST 18: dynamo_redis: only once
--- http_config
    dynamo_redis 127.0.0.1:6379;
    dynamo_redis 127.0.0.1:6380;
--- must_die
--- error_log
"dynamo_redis" directive is duplicate



=== TEST 19: dynamo_zone: bad size
--- http_config
    dynamo_zone dynamo lots;
--- must_die
--- error_log
invalid zone size "lots" in "dynamo_zone"



=== TEST 20: dynamo_zone: too small
--- http_config
    dynamo_zone dynamo 4k;
--- must_die
--- error_log
zone "dynamo" is too small in "dynamo_zone"



=== TEST 21: dynamo_upstream: unknown policy
--- http_config
    upstream workers {
        dynamo_upstream fastest;
        server 127.0.0.1:1;
    }
--- must_die
--- error_log
invalid policy "fastest" in "dynamo_upstream"



=== TEST 22: dynamo_upstream: bad overlap_weight
--- http_config
    upstream workers {
        dynamo_upstream kv overlap_weight=heavy;
        server 127.0.0.1:1;
    }
--- must_die
--- error_log
invalid overlap_weight "heavy" in "dynamo_upstream"



=== TEST 23: dynamo_upstream: negative temperature
--- http_config
    upstream workers {
        dynamo_upstream kv temperature=-1;
        server 127.0.0.1:1;
    }
--- must_die
--- error_log
invalid temperature "-1" in "dynamo_upstream"



=== TEST 24: dynamo_upstream: unknown role
--- http_config
    upstream workers {
        dynamo_upstream kv role=encode;
        server 127.0.0.1:1;
    }
--- must_die
--- error_log
invalid role "encode" in "dynamo_upstream"



=== TEST 25: dynamo_upstream only inside upstream {}
--- http_config
    dynamo_upstream kv;
--- must_die
--- error_log
"dynamo_upstream" directive is not allowed here



=== TEST 26: dynamo_pass takes an upstream name, not a URL
--- config
    location / {
        dynamo_pass http://127.0.0.1:1;
    }
--- must_die
--- error_log
invalid upstream "http://127.0.0.1:1" in "dynamo_pass"



=== TEST 27: dynamo_pass to an undefined upstream
--- config
    location / {
        dynamo_pass nowhere;
    }
--- must_die
--- error_log
no port in upstream "nowhere"



=== TEST 28: dynamo_pass and dynamo_metrics exclude each other
--- http_config
    upstream workers {
        server 127.0.0.1:1;
    }
--- config
    location / {
        dynamo_pass workers;
        dynamo_metrics;
    }
--- must_die
--- error_log
"dynamo_metrics" directive cannot be combined with "dynamo_pass"



=== TEST 29: dynamo_metrics takes no arguments
--- config
    location /metrics {
        dynamo_metrics on;
    }
--- must_die
--- error_log
invalid number of arguments in "dynamo_metrics" directive



=== TEST 30: dynamo_model: a directory without tokenizer.json
--- http_config
    dynamo_model name=m path=$TEST_NGINX_BAD_MODELS/notokenizer;
--- must_die
--- error_log eval
qr/cannot load the tokenizer of model "m" from "[^"]+notokenizer" in "dynamo_model"/



=== TEST 31: dynamo_model: no context= and no config.json
--- http_config
    dynamo_model name=m path=$TEST_NGINX_BAD_MODELS/noconfig;
--- must_die
--- error_log eval
qr/model "m" in "dynamo_model" has no context= and "[^"]+noconfig\/config\.json" cannot be read/



=== TEST 32: dynamo_model: max_position_embeddings not a number
--- http_config
    dynamo_model name=m path=$TEST_NGINX_BAD_MODELS/badconfig;
--- must_die
--- error_log eval
qr/"[^"]+badconfig\/config\.json" has no max_position_embeddings/



=== TEST 33: dynamo_model: context= stands in for config.json
--- http_config
    dynamo_model name=m path=$TEST_NGINX_BAD_MODELS/noconfig context=256;

    upstream workers {
        server 127.0.0.1:1;
    }
--- config
    location / {
        dynamo_pass workers;
    }
--- request
GET /v1/models
--- response_body_like chomp
"max_model_len":256
--- no_error_log
[emerg]



=== TEST 34: dynamo_thread_pool: bad min
--- http_config
    dynamo_thread_pool default min=lots;
--- must_die
--- error_log
invalid min "lots" in "dynamo_thread_pool"



=== TEST 35: dynamo_thread_pool: unknown parameter
--- http_config
    dynamo_thread_pool default max=1k;
--- must_die
--- error_log
invalid parameter "max=1k" in "dynamo_thread_pool"



=== TEST 36: dynamo_thread_pool: a pool nginx does not know
--- http_config
    dynamo_model name=m path=$TEST_NGINX_MODEL_DIR;
    dynamo_thread_pool tokenizers;
--- must_die
--- error_log
unknown thread pool "tokenizers"



=== TEST 37: dynamo_thread_pool off
--- http_config
    dynamo_model name=m path=$TEST_NGINX_MODEL_DIR;
    dynamo_thread_pool off;

    upstream workers {
        server 127.0.0.1:1;
    }
--- config
    location / {
        dynamo_pass workers;
    }
--- request
GET /health
--- response_body chomp
{"status":"ok","workers":1}
--- no_error_log
[emerg]



=== TEST 38: dynamo_model: a name Redis cannot take as a namespace (':')
--- http_config
    dynamo_model name=llama3:8b path=$TEST_NGINX_MODEL_DIR;
    dynamo_redis 127.0.0.1:6379;
--- must_die
--- error_log
model name "llama3:8b" in "dynamo_model" is not a valid Redis namespace for "dynamo_redis"



=== TEST 39: dynamo_model: a name too long for a Redis namespace
--- http_config
    dynamo_model name=mmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmm path=$TEST_NGINX_MODEL_DIR;
    dynamo_redis 127.0.0.1:6379;
--- must_die
--- error_log
it takes 1 to 128 printable ASCII characters



=== TEST 40: dynamo_model: ':' in a name is fine without dynamo_redis
--- http_config
    dynamo_model name=llama3:8b path=$TEST_NGINX_MODEL_DIR;

    upstream workers {
        server 127.0.0.1:1;
    }
--- config
    location / {
        dynamo_pass workers;
    }
--- request
GET /v1/models
--- response_body_like chomp
"id":"llama3:8b"
--- no_error_log
[emerg]



=== TEST 41: dynamo_buffer_size: too small for a response header
--- config
    location / {
        dynamo_buffer_size 1;
    }
--- must_die
--- error_log
"dynamo_buffer_size" must be at least 256 bytes



=== TEST 42: dynamo_connect_timeout: 0
--- config
    location / {
        dynamo_connect_timeout 0;
    }
--- must_die
--- error_log
"dynamo_connect_timeout" directive must be greater than 0



=== TEST 43: dynamo_send_timeout: 0
--- http_config
    dynamo_send_timeout 0s;
--- must_die
--- error_log
"dynamo_send_timeout" directive must be greater than 0



=== TEST 44: dynamo_read_timeout: 0
--- http_config
    server {
        listen 127.0.0.1:1;
        dynamo_read_timeout 0ms;
    }
--- must_die
--- error_log
"dynamo_read_timeout" directive must be greater than 0
