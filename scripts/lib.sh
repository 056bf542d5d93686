# Shell helpers shared by scripts/run.sh and the bench/*/run.sh scripts
# (sourced, POSIX sh).

# free_port: a TCP port on 127.0.0.1 nobody listens on now
free_port() {
    perl -MIO::Socket::INET -e '
        my $s = IO::Socket::INET->new(Listen => 1, LocalAddr => "127.0.0.1",
                                      LocalPort => 0) or die "$!\n";
        print $s->sockport, "\n";'
}
