#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Benchmark: a qcow2 cloud image served over HTTP (nginx on 127.0.0.1),
# copied to a raw file by every way there is, side by side in one run.
# Not part of `make check`; needs Debian packages only (nbdkit with its
# curl plugin, libnbd-bin, qemu-utils, qemu-block-extra, nginx-light,
# curl).
#
#   bench/remote.sh                        1 GiB guest, 3 rounds
#   SIZE=256M ROUNDS=1 bench/remote.sh     smaller and quicker
#   IMAGES=zlib PATHS="ours cdi" bench/remote.sh   some images, some paths
#   DELAY=20ms bench/remote.sh             another latency
#   PLUGIN=... FILTER=... bench/remote.sh  other builds (default: this tree's)
#   KEEP=/var/tmp/rbench bench/remote.sh   keep (and reuse) the images
#   VERIFY=0 bench/remote.sh               skip the byte check of each path
#
# Images: SIZE of guest data, the first half random (which qemu stores
# uncompressed), the second half system binaries (which compress about
# 3:1), converted with `qemu-img convert -c` to zlib.qcow2 and zstd.qcow2
# (64 KiB clusters).  nginx serves them (one worker, keep-alive, byte
# ranges); its access log gives the requests and body bytes of each run.
#
# Paths, each copying the whole guest disk to out.raw (ROUNDS rounds,
# the paths taking turns within a round; medians printed):
#   local     the reference: nbdkit-qcow2map-plugin on the local file,
#             nbdcopy to out.raw (no HTTP)
#   ours      nbdkit -r curl URL --filter=qcow2map, nbdcopy
#   qcow2dec  nbdkit -r curl URL --filter=qcow2dec, nbdcopy (nbdkit >= 1.40)
#   cdi       nbdkit -r curl URL, qemu-img convert -f qcow2 over NBD
#             (KubeVirt CDI's path without scratch space)
#   scratch   curl downloads the file, then a local qemu-img convert
#             (CDI's scratch-space path)
#   qemu-http qemu-img convert -f qcow2 http://... (qemu's curl driver)
#             It stalls (waits for ever, a known hang of qemu's curl driver
#             with several coroutines, e.g. KubeVirt CDI issue 914): when
#             nginx has logged no request for STALL seconds (default 20),
#             the round counts as "stall", with the requests and bytes it
#             had fetched.
#   qemu-http-m1  the same with -m 1 (one coroutine), which stalled less
#             in our runs
# Each path twice: plain, and with DELAY (default 10ms) per HTTP request:
# for the nbdkit paths `--filter=delay delay-read=DELAY` between the
# decoder (ours, qcow2dec) or the NBD server's client (cdi) and curl, as
# in the issue; qemu's curl driver and a download have no layer to put it
# in, so there nginx answers every request DELAY late instead (the echo
# module's echo_sleep before the file, URL /slow/NAME): the same cost, one
# DELAY per HTTP request (the nbdkit curl plugin makes one request per
# read, so the two are equivalent; for scratch it is one DELAY in all).
set -euo pipefail
source "$(dirname "$0")/common.sh"
source "$top/tests/nginx-functions.sh"
size=${SIZE:-1G}
rounds=${ROUNDS:-3}
images=${IMAGES:-zlib zstd}
paths=${PATHS:-local ours qcow2dec cdi scratch qemu-http qemu-http-m1}
delay=${DELAY:-10ms}
filter=${FILTER:-$top/filter-qcow2map/.libs/nbdkit-qcow2map-filter.so}
limit=${LIMIT:-600}          # seconds any copy may take
# qemu's curl driver stalls on some runs (it waits for ever): when nginx
# has logged no request for STALL seconds, the copy counts as stalled.
stall=${STALL:-20}

if [ -n "${KEEP:-}" ]; then
    work=$KEEP; mkdir -p "$work"; cd "$work"
    trap 'nginx_stop' EXIT
else
    bench_workdir qcow2map-remote
    trap 'nginx_stop; cd /; rm -rf "$work"' EXIT
fi
bytes=$(numfmt --from=iec "$size")
delay_s=$(awk -v d="$delay" 'BEGIN { v = d + 0; if (d ~ /ms$/) v /= 1000; else if (d ~ /us$/) v /= 1e6; print v }')

# ---- images ----
mkdir -p www
if [ ! -f "www/done-$size" ]; then
    rm -f www/*
    half_random_raw "$bytes" src.raw
    qemu-img convert -f raw -c -O qcow2 src.raw www/zlib.qcow2
    qemu-img convert -f raw -c -O qcow2 -o compression_type=zstd src.raw www/zstd.qcow2
    rm -f src.raw
    touch "www/done-$size"
fi

NGINX_DELAY=$delay_s nginx_start www "$work/nginx"

# ---- what each path runs (the copy, to out.raw) ----
have_filter() { [ -f "$(nbdkit --dump-config | sed -n 's/^filterdir=//p')/nbdkit-$1-filter.so" ]; }
# qemu's curl driver is a module of package qemu-block-extra.  (Not a
# pipe into grep: with pipefail, qemu-img's own failure would decide.)
have_qemu_http() {
    local out
    out=$(qemu-img info "$NGINX_URL/none" 2>&1) || true
    [[ $out != *"Unknown protocol"* ]]
}
available() {
    case $1 in
        ours) [ -f "$filter" ] ;;
        qcow2dec) have_filter qcow2dec ;;
        qemu-http*) have_qemu_http ;;
        *) true ;;
    esac
}
# run PATH IMAGE VARIANT (plain|delay): every command under timeout LIMIT
# (qemu's curl driver can wait for ever on a keep-alive connection).
run() {
    local p=$1 img=$2 v=$3 url=$NGINX_URL/$2.qcow2 dly=() t=(timeout "$limit")
    [ "$v" = delay ] && dly=(--filter=delay delay-read="$delay")
    [ "$v" = delay ] && case $p in scratch|qemu-http*) url=$NGINX_URL/slow/$img.qcow2 ;; esac
    case $p in
    local)
        "${t[@]}" nbdkit -U - "$plugin" file="www/$img.qcow2" --run 'nbdcopy "$uri" out.raw' ;;
    ours)
        "${t[@]}" nbdkit -U - -r curl "$url" --filter="$filter" "${dly[@]}" \
            --run 'nbdcopy "$uri" out.raw' ;;
    qcow2dec)
        "${t[@]}" nbdkit -U - -r curl "$url" --filter=qcow2dec "${dly[@]}" \
            --run 'nbdcopy "$uri" out.raw' ;;
    cdi)
        "${t[@]}" nbdkit -U - -r curl "$url" "${dly[@]}" \
            --run 'qemu-img convert -f qcow2 -O raw "$uri" out.raw' ;;
    scratch)
        "${t[@]}" curl -sf -o scratch.qcow2 "$url" &&
            "${t[@]}" qemu-img convert -f qcow2 -O raw scratch.qcow2 out.raw ;;
    qemu-http)
        watch_stall qemu-img convert -f qcow2 -O raw "$url" out.raw ;;
    qemu-http-m1)
        watch_stall qemu-img convert -m 1 -f qcow2 -O raw "$url" out.raw ;;
    esac
}

# watch_stall CMD... : run CMD; kill it (by its pid) and return 124 once
# nginx has logged no request for $stall seconds, or after $limit.
watch_stall() {
    local pid lines last n=0 quiet=0 rc=0
    "$@" & pid=$!
    last=$(wc -l < "$NGINX_LOG")
    while kill -0 "$pid" 2> /dev/null; do
        sleep 1; n=$((n + 1))
        lines=$(wc -l < "$NGINX_LOG")
        if [ "$lines" != "$last" ]; then last=$lines quiet=0; else quiet=$((quiet + 1)); fi
        if [ "$quiet" -ge "$stall" ] || [ "$n" -ge "$limit" ]; then
            kill "$pid" 2> /dev/null; wait "$pid" 2> /dev/null || true
            return 124
        fi
    done
    wait "$pid" || rc=$?
    return "$rc"
}

# nginx logs a request once it has sent the answer: wait until the log
# stops growing.
log_lines() {
    local n m
    n=$(wc -l < "$NGINX_LOG")
    while sleep 0.2; m=$(wc -l < "$NGINX_LOG"); [ "$m" != "$n" ]; do n=$m; done
    echo "$n"
}
# measure PATH IMAGE VARIANT: "SECONDS REQUESTS BYTES" (SECONDS is
# "stall" past LIMIT, "fail" on an error or a short copy)
measure() {
    local from t0 t1 rc=0 s to
    from=$(log_lines)
    rm -f out.raw
    t0=$(date +%s.%N)
    run "$@" > run.log 2>&1 || rc=$?
    t1=$(date +%s.%N)
    s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
    if [ "$rc" -eq 124 ]; then s=stall
    elif [ "$rc" -ne 0 ]; then
        s=fail; echo "# $*: failed (exit $rc): $(tail -n 3 run.log | tr '\n' ' ')" >&2
    elif [ "$(stat -c %s out.raw)" -ne "$bytes" ]; then
        s=fail; echo "# $*: out.raw has $(stat -c %s out.raw) bytes, not $bytes" >&2
    fi
    to=$(log_lines)
    tail -n +$((from + 1)) "$NGINX_LOG" | head -n $((to - from)) |
        awk -v s="$s" '{ n++; b += $5 } END { printf "%s %d %.0f\n", s, n, b }'
    rm -f out.raw scratch.qcow2
}
# Check once per image that every path copies the same bytes.
verify() {
    local p=$1 img=$2 v=$3 rc=0
    rm -f out.raw
    qemu-img convert -f qcow2 -O raw "www/$img.qcow2" ref.raw
    run "$p" "$img" "$v" > run.log 2>&1 || rc=$?
    if [ "$rc" -eq 124 ]; then
        echo "# $p $img $v: stalled (no end within the time limit)"
    elif [ "$rc" -eq 0 ] && cmp -s ref.raw out.raw; then
        echo "# $p $img $v: bytes identical to qemu-img convert"
    else
        echo "# $p $img $v: WRONG BYTES or failure (exit $rc): $(tail -n 2 run.log | tr '\n' ' ')"
    fi
    rm -f out.raw ref.raw
}
median() { sort -g | awk 'NF { v[++n] = $1 } END { if (n) print v[int((n + 1) / 2)] }'; }

# ---- run ----
echo "# $(nbdkit --version), $(qemu-img --version | head -n 1), $(nginx -v 2>&1)"
echo "# plugin: $plugin"
echo "# filter: $([ -f "$filter" ] && echo "$filter" || echo "none (ours: pending)")"
echo "# $(nproc) CPUs; uptime at start: $(uptime)"
echo "# guest $size; rounds $rounds; delay $delay; files:" \
     $(for i in $images; do echo "$i.qcow2=$(stat -c %s "www/$i.qcow2")"; done)
declare -A res
for img in $images; do
    cat "www/$img.qcow2" > /dev/null
    for p in $paths; do
        available "$p" || continue
        [ "${VERIFY:-1}" = 0 ] || verify "$p" "$img" plain
    done
    for ((r = 0; r < rounds; r++)); do
        for v in plain delay; do
            for p in $paths; do
                available "$p" || continue
                [ "$p" = local ] && [ "$v" = delay ] && continue
                m=$(measure "$p" "$img" "$v")
                res[$img/$p/$v]+="$m"$'\n'
                echo "# round $((r + 1)): $img $p $v: $m"
            done
        done
    done
done
echo "# uptime at end: $(uptime)"

printf '%-6s %-10s %9s %9s %10s %9s %9s %10s\n' image path plain-s requests MiB-fetched delay-s requests MiB-fetched
for img in $images; do
    fsize=$(stat -c %s "www/$img.qcow2")
    for p in $paths; do
        line="$(printf '%-6s %-10s' "$img" "$p")"
        for v in plain delay; do
            if ! available "$p"; then
                [ "$p" = ours ] && w=pending || w=n/a
                line+=$(printf ' %9s %9s %10s' "$w" - -)
                continue
            fi
            if [ "$p" = local ] && [ "$v" = delay ]; then
                line+=$(printf ' %9s %9s %10s' - - -); continue
            fi
            x=${res[$img/$p/$v]}
            # The median time; a stall or failure counts as longer than
            # any time, and is shown when it is the median ("3.1*": some
            # round stalled or failed, see the lines above).
            t=$(awk '{ print ($1 ~ /^[0-9.]+$/) ? $1 : 1e9 }' <<< "$x" | median)
            if awk -v t="$t" 'BEGIN { exit !(t >= 1e9) }'; then t=$(awk '$1 !~ /^[0-9.]+$/ { print $1; exit }' <<< "$x")
            elif grep -qv '^[0-9.]* ' <<< "${x%$'\n'}"; then t=$t*; fi
            n=$(awk '{ print $2 }' <<< "$x" | median)
            b=$(awk '{ print $3 }' <<< "$x" | median)
            line+=$(printf ' %9s %9s %10s' "$t" "$n" "$(awk -v b="$b" 'BEGIN { printf "%.1f", b / 1048576 }')")
        done
        echo "$line"
    done
    echo "# $img.qcow2: $(awk -v b="$fsize" 'BEGIN { printf "%.1f", b / 1048576 }') MiB; targets for ours with delay: requests <= $((fsize / 1048576 + 100)), bytes <= $(awk -v b="$fsize" 'BEGIN { printf "%.1f", 1.05 * b / 1048576 }') MiB"
done
echo "# every round (seconds requests bytes), in order:"
for img in $images; do
    for p in $paths; do
        for v in plain delay; do
            [ -n "${res[$img/$p/$v]:-}" ] || continue
            echo "#   $img $p $v: $(tr '\n' ';' <<< "${res[$img/$p/$v]%$'\n'}")"
        done
    done
done
