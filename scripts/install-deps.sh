#!/bin/sh
# Installs the Debian 12 packages ngx_dynamo builds, tests and runs with.
# Quiet and quick when everything is present; uses sudo when not root.
set -eu

PKGS="build-essential pkg-config git ca-certificates
 nginx nginx-dev redis-server
 libhiredis-dev libjansson-dev libpcre2-dev libxxhash-dev libmd-dev libevent-dev
 libutf8proc-dev libopenblas-dev libcurl4-openssl-dev
 libucx-dev ucx-utils
 libcmocka-dev clang libclang-rt-14-dev
 libtest-base-perl libtest-longstring-perl libtext-diff-perl
 liblist-moreutils-perl libwww-perl liburi-perl libipc-run-perl
 libhttp-message-perl curl gnuplot-nox
 wrk"

missing=""
for p in $PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
        missing="$missing $p"
    fi
done

# Node.js (test oracles from npm): any node on PATH will do.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    missing="$missing nodejs npm"
fi

[ -z "$missing" ] && exit 0

echo "install-deps: installing:$missing" >&2
SUDO=""
if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "install-deps: not root and no sudo; install as root:$missing" >&2
        exit 1
    fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
