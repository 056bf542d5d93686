#!/usr/bin/perl
# Writes the request bodies of the gateway benchmark for one prompt size:
# K different story-like English prompts that each tokenize to about
# TOKENS tokens of the model's tokenizer (checked with dynamo-kv tokenize),
# as an OpenAI completion (DIR/oai-TOKENS-i.json, for dynamo_pass) and as
# the worker's /v1/generate body with the same token ids
# (DIR/gen-TOKENS-i.json, for the proxy_pass baseline).
#   prompt.pl DYNAMO_KV MODEL_DIR MODEL_NAME TOKENS MAX_TOKENS K DIR
# Prints "TOKENS_MIN TOKENS_MAX BYTES_MEAN".
use strict;
use warnings;
use IPC::Open2;
use JSON::PP;

my ($dkv, $model, $name, $target, $max_tokens, $k, $dir) = @ARGV;
die "usage: prompt.pl DYNAMO_KV MODEL_DIR MODEL_NAME TOKENS MAX_TOKENS K DIR\n"
    unless defined $dir;

my @words = qw(the a little girl boy dog cat bird tree house park ball sun
    day mom dad friend happy sad big small red blue green went saw played
    said wanted found looked ran jumped smiled was had liked to and with in
    on at of they she he it her his very one named Lily Tim Ben Sue toy car
    flower water garden school together every morning because when then but
    so could would help share learned important lesson kind brave careful
    shiny soft loud quiet fast slow cookie cake apple banana river boat sky
    cloud rain snow hat shoe book picture song);

my $rng;
sub rnd { $rng = ($rng * 1103515245 + 12345) % 2147483648; return $rng >> 8 }

sub story {
    my ($bytes) = @_;
    my $s = '';
    while (length($s) < $bytes) {
        my $n = 5 + rnd() % 10;
        my @w = map { $words[rnd() % @words] } 1 .. $n;
        $s .= ucfirst(join(' ', @w)) . (rnd() % 5 ? '.' : '!')
            . (rnd() % 8 ? ' ' : "\n");
    }
    return $s;
}

sub tokenize {
    my ($text) = @_;
    my $pid = open2(my $out, my $in, $dkv, 'tokenize', '--tokenizer', $model)
        or die "prompt.pl: cannot run $dkv\n";
    binmode $in;
    print $in $text;
    close $in;
    my $line = do { local $/; <$out> };
    waitpid $pid, 0;
    die "prompt.pl: $dkv tokenize failed\n" if $? != 0;
    return [ split ' ', $line ];
}

# cut text at a word boundary near len bytes
sub cut {
    my ($text, $len) = @_;
    return $text if $len >= length $text;
    my $c = substr($text, 0, $len);
    $c =~ s/\s+\S*$//;
    return $c;
}

my $json = JSON::PP->new->canonical;
my ($min, $max, $bytes) = (1e18, 0, 0);
for my $i (1 .. $k) {
    $rng = 7919 * $i + $target;
    my $text = story($target * 6 + 256);
    my $ids = tokenize($text);
    die "prompt.pl: text too short for $target tokens\n" if @$ids < $target;
    # two proportional corrections land within a few tokens
    for (1 .. 3) {
        my $len = int(length($text) * $target / @$ids) + 1;
        $text = cut($text, $len);
        $ids = tokenize($text);
        last if abs(@$ids - $target) <= $target / 200 + 2;
    }
    $min = @$ids if @$ids < $min;
    $max = @$ids if @$ids > $max;
    $bytes += length $text;

    my %oai = (model => $name, prompt => $text,
               max_tokens => $max_tokens + 0, temperature => 0,
               stream => JSON::PP::false);
    my %gen = (token_ids => [ map { $_ + 0 } @$ids ],
               max_tokens => $max_tokens + 0, sampling => { temperature => 0 });
    for ([ "oai", \%oai ], [ "gen", \%gen ]) {
        my $f = "$dir/$_->[0]-$target-$i.json";
        open my $fh, '>', $f or die "prompt.pl: $f: $!\n";
        print $fh $json->encode($_->[1]);
        close $fh;
    }
}
printf "%d %d %d\n", $min, $max, $bytes / $k;
