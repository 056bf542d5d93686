# dynamo-worker --engine cuda where there is no GPU (CI): it exits 1 at
# once with a message naming the reason (no device or driver, or a build
# without CUDA) and pointing at --engine cpu, also with
# --tensor-parallel-size; a size that does not fit the model is named
# (exit 1); the tensor-parallel and dtype flags without --engine cuda are
# refused before anything starts (exit 2). Where a GPU is
# present the worker starts instead: that case is skipped here (make
# test-gpu covers the backend).

use strict;
use warnings;

use Test::More;
use IPC::Run qw(run timeout);

use Test::Dynamo::Worker qw(worker_bin);

plan skip_all => 'dynamo-worker not built (' . worker_bin() . ')'
    if !-x worker_bin();

my $MODEL = 'models/stories260K';

# Runs the worker with args; (exit status, stderr) or undef when it was
# still running after $secs (it started: a GPU is there).
sub worker_exit {
    my ($secs, @args) = @_;
    my ($out, $err) = ('', '');
    my $ok = eval {
        run([worker_bin(), @args], \undef, \$out, \$err, timeout($secs));
        1;
    };
    return (undef, $err) if !$ok && $@ =~ /timeout/;
    return ($? >> 8, $err);
}

my ($rc, $err) = worker_exit(30, '--engine', 'cuda', '--model', $MODEL,
                             '--redis', 'none', '--port', '0');
SKIP: {
    skip 'a CUDA device is present (the worker started): make test-gpu', 3
        if !defined $rc;
    is($rc, 1, 'no GPU: exit status 1');
    like($err, qr/no CUDA device: cudaGetDeviceCount: |built without CUDA/,
         'says why there is no GPU');
    like($err, qr/use --engine cpu/, 'points at the cpu backend');
}

# f16 and f32 storage are accepted: the worker gets as far as the device
for my $dt ('f16', 'f32') {
    ($rc, $err) = worker_exit(30, '--engine', 'cuda', '--model', $MODEL,
                              '--dtype', $dt, '--redis', 'none',
                              '--port', '0');
    SKIP: {
        skip "a CUDA device is present (--dtype $dt started)", 2
            if !defined $rc;
        is($rc, 1, "--dtype $dt, no GPU: exit status 1");
        like($err, qr/no CUDA device: |built without CUDA/,
             "--dtype $dt: refused for the device, not the dtype");
    }
}

($rc, $err) = worker_exit(30, '--engine', 'cuda', '--model', $MODEL,
                          '--redis', 'none', '--port', '0',
                          '--tensor-parallel-size', '2');
SKIP: {
    skip 'a CUDA device is present (the worker started): make test-gpu', 2
        if !defined $rc;
    is($rc, 1, '--tensor-parallel-size 2, no GPU: exit status 1');
    like($err, qr/no CUDA device: cudaGetDeviceCount: |built without CUDA/,
         'tensor parallelism: says why it cannot run');
}

($rc, $err) = worker_exit(30, '--engine', 'cuda', '--model', $MODEL,
                          '--redis', 'none', '--port', '0',
                          '--tensor-parallel-size', '3');
is($rc, 1, '--tensor-parallel-size 3 on 8 heads: exit status 1');
like($err, qr/--tensor-parallel-size 3 does not divide n_heads 8/,
     'tensor parallelism: says the size does not fit the model');

($rc, $err) = worker_exit(30, '--model', $MODEL,
                          '--tensor-parallel-size', '2');
is($rc, 2, '--tensor-parallel-size without --engine cuda: usage error');
like($err, qr/--tensor-parallel-size 2 needs --engine cuda/,
     'tensor parallelism: says which engine');

($rc, $err) = worker_exit(30, '--model', $MODEL, '--dtype', 'bf16');
is($rc, 2, '--dtype without --engine cuda: usage error');
like($err, qr/--dtype needs --engine cuda/, 'says which engine');

($rc, $err) = worker_exit(30, '--engine', 'tpu', '--model', $MODEL);
is($rc, 2, 'unknown engine: usage error');
like($err, qr/want cpu, cuda or mock/, 'lists the engines');

done_testing();
