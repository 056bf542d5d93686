# vim:set ft=perl ts=4 sw=4 et:
# conf/nginx.conf.example, which `make run` is generated from: every
# directive the module registers is in it and in README.md, and it passes
# `nginx -t` with only its paths rewritten (as scripts/run.sh does).

use strict;
use warnings;

use lib 't/lib';
use Test::More;
use File::Temp qw(tempdir);
use Test::Dynamo::Gateway qw(nginx_bin module_path model_dir read_file);

my $example = read_file('conf/nginx.conf.example');
my $readme = read_file('README.md');
my $src = join '', map { read_file($_) } glob 'ngx_dynamo_module/*.c';

my %dir = map { $_ => 1 }
          $src =~ /ngx_string\("(dynamo_\w+)"\)\s*,\s*\n\s*NGX_/g;
my %var = map { $_ => 1 } $src =~ /ngx_string\("(dynamo_\w+)"\)\s*,\s*NULL/g;
ok(keys %dir >= 12, 'the module\'s directives found in its sources ('
                    . join(' ', sort keys %dir) . ')');

for my $d (sort keys %dir) {
    like($example, qr/^\s*\Q$d\E[\s;]/m,
         "$d is used in conf/nginx.conf.example");
    like($readme, qr/`\Q$d\E[ `]/, "$d is documented in README.md");
}
for my $v (sort keys %var) {
    like($readme, qr/`\$\Q$v\E`/, "\$$v is documented in README.md");
}
like($example, qr/^\s*keepalive\s+\d+;/m, 'the stock keepalive is shown');
like($example, qr/^\s*log_format\s.*\$dynamo_worker/ms,
     'a log_format with the $dynamo_* variables');

my $p = tempdir(CLEANUP => 1);
mkdir "$p/$_" for qw(conf logs);
my $mod = module_path();
my $model = model_dir();
(my $conf = $example) =~ s{^(\s*load_module\s+)\S+;}{$1$mod;}m;
$conf =~ s{^(\s*pid\s+)\S+;}{$1$p/logs/nginx.pid;}m;
$conf =~ s{^(\s*error_log\s+)\S+}{$1$p/logs/error.log}m;
$conf =~ s{^(\s*access_log\s+)\S+}{$1$p/logs/access.log}m;
$conf =~ s{^(\s*dynamo_model\s.*path=)\S+}{$1$model}m;
my $temps = join '', map { "    ${_}_temp_path $p/${_}_temp;\n" }
            qw(client_body proxy fastcgi uwsgi scgi);
$conf =~ s{^(http\s*\{\n)}{$1$temps}m;
open my $f, '>', "$p/conf/nginx.conf" or die $!;
print $f $conf;
close $f;

my $bin = nginx_bin();
my $cmd = "'$bin' -t -p '$p/' -c '$p/conf/nginx.conf' -e '$p/logs/error.log'";
my $out = `$cmd 2>&1`;
is($?, 0, 'nginx -t accepts the example') or diag $out;
like($out, qr/test is successful/, 'test is successful');

done_testing();
