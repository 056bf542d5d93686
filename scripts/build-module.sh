#!/bin/bash
# Builds ngx_dynamo_module.so against Debian's nginx-dev kit, with Debian's
# own configure flags, so it loads into the stock /usr/sbin/nginx.
#   scripts/build-module.sh [BUILD_DIR]
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
out=$(mkdir -p "${1:-build}" && cd "${1:-build}" && pwd)
kit=/usr/share/nginx/src

if [ ! -f "$kit/configure" ]; then
    echo "build-module: $kit missing; install nginx-dev (scripts/install-deps.sh)" >&2
    exit 1
fi

src="$out/nginx-src"
if [ ! -f "$src/configure" ] || [ "$kit/configure" -nt "$src/configure" ]; then
    rm -rf "$src"
    cp -r "$kit" "$src"
fi

cd "$src"
# shellcheck disable=SC1091
. ./conf_flags
# the source list is part of the key: config globs it at configure time
flags="${NGX_CONF_FLAGS[*]} --add-dynamic-module=$repo $(cd "$repo" && echo kvrouter/src/*.c ngx_dynamo_module/*.c)"
if [ ! -f "$out/nginx-obj/Makefile" ] || \
   [ "$(cat "$out/nginx-obj/.flags" 2>/dev/null)" != "$flags" ] || \
   [ "$repo/config" -nt "$out/nginx-obj/Makefile" ]; then
    ./configure "${NGX_CONF_FLAGS[@]}" --add-dynamic-module="$repo" \
        --builddir="$out/nginx-obj" > "$out/nginx-configure.log" 2>&1 || {
        tail -n 30 "$out/nginx-configure.log" >&2
        exit 1
    }
    echo "$flags" > "$out/nginx-obj/.flags"
fi
make -s -f "$out/nginx-obj/Makefile" modules
mkdir -p "$out/modules"
# replace, never overwrite in place: a running nginx has the old file mapped
cp "$out/nginx-obj/ngx_dynamo_module.so" "$out/modules/.ngx_dynamo_module.so.new"
mv -f "$out/modules/.ngx_dynamo_module.so.new" "$out/modules/ngx_dynamo_module.so"
echo "built $out/modules/ngx_dynamo_module.so"
