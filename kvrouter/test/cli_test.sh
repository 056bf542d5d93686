#!/bin/sh
# CLI tests for `dynamo-kv hash`: the golden vectors, streaming, and bad
# input (exit status 2 with a message naming the problem). Run from the
# repository root:
#   sh kvrouter/test/cli_test.sh [path/to/dynamo-kv]    (default build/bin/dynamo-kv)
# The last line is "N passed, N failed"; the exit status is 0 iff none failed.
set -u

DKV=${1:-build/bin/dynamo-kv}
GOLDEN=kvrouter/test/golden/hashes.txt

if [ ! -x "$DKV" ]; then
    echo "cli_test: $DKV not found or not executable (run make first)" >&2
    echo "0 passed, 1 failed"
    exit 1
fi
if [ ! -f "$GOLDEN" ]; then
    echo "cli_test: $GOLDEN not found (run from the repository root)" >&2
    echo "0 passed, 1 failed"
    exit 1
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM

pass=0
fail=0
ok()  { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }

# ---- golden vectors ----

# split the golden file into per-case files: .bs .lora .in .want
awk -v d="$tmp" '
    /^#/ { next }
    $1 == "case" {
        n++; f = d "/c" n
        print $2 > (f ".name"); print $4 > (f ".bs"); print $6 > (f ".lora")
        printf "" > (f ".want")
        next
    }
    $1 == "tokens" {
        s = ""
        for (i = 2; i <= NF; i++) s = s (i > 2 ? " " : "") $i
        print s > (f ".in")
        next
    }
    $1 == "block" { print $3 " " $4 > (f ".want"); next }
    $1 == "end" {
        close(f ".name"); close(f ".bs"); close(f ".lora")
        close(f ".in"); close(f ".want")
    }
    END { print n > (d "/count") }
' "$GOLDEN"

ncases=$(cat "$tmp/count")
TAB=$(printf '\t')
CR=$(printf '\r')
i=1
while [ "$i" -le "$ncases" ]; do
    f="$tmp/c$i"
    name=$(cat "$f.name")
    bs=$(cat "$f.bs")
    lora=$(cat "$f.lora")

    # vary the whitespace: spaces, one per line, CRLF + tabs
    case $((i % 3)) in
        0) cp "$f.in" "$f.feed" ;;
        1) tr ' ' '\n' < "$f.in" > "$f.feed" ;;
        2) sed "s/ /$TAB /g; s/\$/$CR/" < "$f.in" > "$f.feed" ;;
    esac

    if [ "$lora" = "-" ]; then
        "$DKV" hash --block-size "$bs" < "$f.feed" > "$f.got" 2> "$f.err"
    else
        "$DKV" hash --block-size "$bs" --lora "$lora" < "$f.feed" \
            > "$f.got" 2> "$f.err"
    fi
    rc=$?
    if [ "$rc" -eq 0 ] && cmp -s "$f.got" "$f.want"; then
        ok
    else
        bad "golden case $name (exit $rc): $(head -c 200 "$f.err")"
    fi
    i=$((i + 1))
done
[ "$ncases" -ge 100 ] && ok || bad "golden file has only $ncases cases"

# ---- helpers ----

# run NAME WANT_STATUS STDIN ARGS...: true iff the exit status is WANT;
# stdout in $tmp/out, stderr in $tmp/err, status in $last_rc
last_rc=0
run() {
    _want=$2; _in=$3; shift 3
    printf '%s' "$_in" | "$DKV" "$@" > "$tmp/out" 2> "$tmp/err"
    last_rc=$?
    [ "$last_rc" -eq "$_want" ]
}

# expect_err NAME STDIN PATTERN ARGS...: exit 2, stderr matches PATTERN
expect_err() {
    _n=$1; _i=$2; _p=$3; shift 3
    if ! run "$_n" 2 "$_i" "$@"; then
        bad "$_n: exit $last_rc, want 2"
    elif grep -q -- "$_p" "$tmp/err"; then
        ok
    else
        bad "$_n: stderr lacks \"$_p\": $(head -c 200 "$tmp/err")"
    fi
}

lines() { wc -l < "$tmp/out" | tr -d ' '; }

# ---- valid edge cases ----

if run "empty input" 0 "" hash --block-size 4 && [ ! -s "$tmp/out" ]; then
    ok
else
    bad "empty input printed something"
fi

run "max token" 0 "4294967295 0 4294967295 1" hash --block-size 2 &&
    [ "$(lines)" = 2 ] && ok || bad "max token: $(lines) lines"

run "partial tail" 0 "1 2 3 4 5 6 7" hash --block-size 4 &&
    [ "$(lines)" = 1 ] && ok || bad "partial tail: $(lines) lines"

run "dynamo vector" 0 "1 2 3 4 5 6 7 8" hash --block-size 4 &&
    printf '%s\n%s\n' "14643705804678351452 14643705804678351452" \
        "16777012769546811212 4945711292740353085" | cmp -s - "$tmp/out" &&
    ok || bad "dynamo vector"
cp "$tmp/out" "$tmp/ref"

run "leading zeros" 0 "0001 02 3 4 5 6 7 0008" hash --block-size 4 &&
    cmp -s "$tmp/out" "$tmp/ref" && ok || bad "leading zeros"
run "--block-size=4" 0 "1 2 3 4 5 6 7 8" hash --block-size=4 &&
    cmp -s "$tmp/out" "$tmp/ref" && ok || bad "--block-size=4"
run "--lora empty" 0 "1 2 3 4 5 6 7 8" hash --block-size 4 --lora "" &&
    cmp -s "$tmp/out" "$tmp/ref" && ok || bad "--lora \"\" differs from none"
run "surrounding whitespace" 0 "
  1 2 3 4 5 6 7 8" hash --block-size 4 &&
    cmp -s "$tmp/out" "$tmp/ref" && ok || bad "whitespace handling"

run "lora" 0 "1 2 3 4 5 6 7 8" hash --lora alpha-7b --block-size 4 &&
    cp "$tmp/out" "$tmp/lora1" &&
    run "lora=" 0 "1 2 3 4 5 6 7 8" hash --block-size 4 --lora=alpha-7b &&
    cmp -s "$tmp/out" "$tmp/lora1" && ! cmp -s "$tmp/out" "$tmp/ref" &&
    ok || bad "--lora NAME / --lora=NAME"

# a token split across reads must not matter
(printf '1 2 3 4 5 6 '; sleep 1; printf '7 8') |
    "$DKV" hash --block-size 4 > "$tmp/out" 2> "$tmp/err" &&
    cmp -s "$tmp/out" "$tmp/ref" && ok || bad "input split across reads"
(printf '1 2 3 4 5 6 7 '; sleep 1; printf '8') |
    "$DKV" hash --block-size 4 > "$tmp/out" 2> "$tmp/err" &&
    cmp -s "$tmp/out" "$tmp/ref" && ok || bad "token split across reads"

# streaming: a block's line comes out before the input ends
if mkfifo "$tmp/fifo" 2>/dev/null; then
    "$DKV" hash --block-size 4 < "$tmp/fifo" > "$tmp/out" 2> "$tmp/err" &
    dkv_pid=$!
    exec 3> "$tmp/fifo"
    printf '1 2 3 4 ' >&3
    n=0
    while [ ! -s "$tmp/out" ] && [ "$n" -lt 50 ]; do
        sleep 0.1; n=$((n + 1))
    done
    [ -s "$tmp/out" ] && ok || bad "no output before end of input"
    exec 3>&-
    wait "$dkv_pid"
fi

# a large input goes through in bounded memory; count the lines
awk 'BEGIN { for (i = 0; i < 1000000; i++) printf "%d%s", (i * 2654435761) % 4294967296, (i % 20 == 19) ? "\n" : " " }' \
    > "$tmp/big"
if "$DKV" hash --block-size 16 < "$tmp/big" > "$tmp/out" 2> "$tmp/err" &&
   [ "$(lines)" = 62500 ]; then
    ok
else
    bad "large input: $(lines) lines, want 62500"
fi

# ---- bad input: exit 2 and a message naming the problem ----

expect_err "word"        "1 2 abc 4" "token 3.*abc.*not an unsigned decimal" \
    hash --block-size 2
expect_err "negative"    "5 -1"      "token 2.*-1.*negative" hash --block-size 1
expect_err "2^32"        "4294967296" "token 1.*out of range" hash --block-size 1
expect_err "huge"        "1 99999999999999999999999" "token 2.*out of range" \
    hash --block-size 1
expect_err "decimal"     "1.5"       "not an unsigned decimal" hash --block-size 1
expect_err "plus sign"   "+3"        "not an unsigned decimal" hash --block-size 1
expect_err "hex"         "0x10"      "not an unsigned decimal" hash --block-size 1
expect_err "lone minus"  "-"         "not an unsigned decimal" hash --block-size 1
expect_err "byte offset" "1  x"      "byte offset 3" hash --block-size 1
expect_err "no block size"   "1 2"   "missing --block-size" hash
expect_err "block size 0"    "1 2"   "invalid --block-size" hash --block-size 0
expect_err "block size word" "1 2"   "invalid --block-size" hash --block-size abc
expect_err "block size neg"  "1 2"   "invalid --block-size" hash --block-size -4
expect_err "block size big"  "1 2"   "invalid --block-size" \
    hash --block-size 16777217
expect_err "block size empty" "1 2"  "invalid --block-size" hash --block-size=
expect_err "block size missing value" "" "needs a value" hash --block-size
expect_err "lora missing value" "" "needs a value" hash --block-size 4 --lora
expect_err "unknown flag" "" "unknown argument.*--frobnicate" \
    hash --block-size 4 --frobnicate
expect_err "positional"  ""          "unknown argument.*extra" \
    hash --block-size 4 extra
expect_err "unknown command" ""      "unknown command.*hashh" hashh
expect_err "no command"  ""          "usage"

if run "--help" 2 "" --help && grep -q "usage" "$tmp/out"; then
    ok
else
    bad "--help: usage on stdout, exit 2"
fi

# blocks before a bad token are printed; the status still reports it
if run "late error" 2 "1 2 3 4 5 oops" hash --block-size 2 &&
   [ "$(lines)" = 2 ] && grep -q "token 6" "$tmp/err"; then
    ok
else
    bad "late error"
fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
