# vim:set ft= ts=4 sw=4 et fdm=marker:
# The throwaway Redis of Test::Dynamo::Redis, and $TEST_NGINX_REDIS_PORT
# expanded into dynamo_redis (parsed only, for now).

use Test::Nginx::Socket;
use Test::Dynamo::Redis qw(start_redis redis_command);
use Cwd qw(abs_path);

$ENV{TEST_NGINX_MODEL_DIR} ||= abs_path('models/stories260K');

my $port = start_redis();

repeat_each(2);

# 3 checks of the helper itself, then status + body per block
plan tests => 3 + repeat_each() * (2 * blocks() + 4);

like($port, qr/^\d+$/, 'redis port');
is($ENV{TEST_NGINX_REDIS_PORT}, $port, 'TEST_NGINX_REDIS_PORT is set');
is(redis_command('PING'), 'PONG', 'redis answers PING');

no_root_location();
no_shuffle();

add_block_preprocessor(sub {
    my $block = shift;

    if (!defined $block->config) {
        $block->set_value('config', <<'_EOC_');
        location / {
            dynamo_pass workers;
        }
_EOC_
    }
});

run_tests();

__DATA__

=== TEST 1: dynamo_redis at the helper's port
--- http_config
    dynamo_model name=stories260K path=$TEST_NGINX_MODEL_DIR;
    dynamo_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;

    upstream workers {
        dynamo_upstream kv;
        server 127.0.0.1:1;
    }
--- request
GET /health
--- response_body_like chomp
^\{"status":"ok","workers":1\}$



=== TEST 2: with db, timeouts, and the port in a user file
--- http_config
    dynamo_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT db=3 connect_timeout=100ms
                 timeout=1s;

    upstream workers {
        server 127.0.0.1:1;
    }
--- config
    location / {
        dynamo_pass workers;
    }

    location = /redis-port.txt {
        root html;
    }
--- user_files
>>> redis-port.txt
$TEST_NGINX_REDIS_PORT
--- request eval
["GET /health", "GET /redis-port.txt"]
--- response_body_like eval
['^\{"status":"ok","workers":1\}$', "^$ENV{TEST_NGINX_REDIS_PORT}\n\$"]
--- no_error_log
[error]
