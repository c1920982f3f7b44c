#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Where a fio job's time goes: serves IMAGE with the plugin (or with
# qemu-nbd), runs one fio job (ioengine=nbd, 4 KiB reads) against it
# under `perf record`, and prints
#   - IOPS, and the CPU time per read of the server and of fio (the
#     client), from /proc and fio's own report: with both on one machine,
#     their sum per read bounds the IOPS that the cores can give;
#   - the server's samples by shared object (libdeflate, libzstd, the
#     kernel, nbdkit, the plugin...) and its 15 hottest symbols.
# Not part of `make check`; needs perf (Debian: linux-perf), fio, jq.
#
#   bench/profile.sh IMAGE [RW [IODEPTH]]        RW: read (default) or randread
#   SERVER=qemu-nbd bench/profile.sh IMAGE randread 16
#   ARGS=thread-model=parallel bench/profile.sh IMAGE randread 16
#   RUNTIME=10 PLUGIN=/other/build/nbdkit-qcow2map-plugin.so bench/profile.sh ...
set -euo pipefail
image=$(realpath "$1")
rw=${2:-read}
depth=${3:-1}
runtime=${RUNTIME:-5}
server=${SERVER:-qcow2map}
source "$(dirname "$0")/common.sh"
args=${ARGS:-}

bench_workdir qcow2map-profile
sock=$work/sock pidf=$work/pid

if [ "$server" = qemu-nbd ]; then
    qemu-nbd -r -t -f qcow2 -e 16 --fork --pid-file="$pidf" --socket="$sock" "$image"
else
    # shellcheck disable=SC2086
    nbdkit -U "$sock" -P "$pidf" "$plugin" file="$image" $args
fi
for ((i = 0; i < 100; i++)); do [ -S "$sock" ] && [ -s "$pidf" ] && break; sleep 0.1; done
pid=$(cat "$pidf")
cat "$image" > /dev/null             # page cache warm, as in compare.sh

ticks() { awk '{ print $14 + $15 }' "/proc/$pid/stat"; }
perf record -q -g -p "$pid" -o "$work/perf.data" -- sleep $((runtime + 1)) \
    > /dev/null 2>&1 &
perfpid=$!
sleep 0.5
c0=$(ticks)
fio --output-format=json --name=p --ioengine=nbd --uri="nbd+unix:///?socket=$sock" \
    --rw="$rw" --bs=4k --iodepth="$depth" --runtime="$runtime" --time_based \
    --randrepeat=1 2> /dev/null | sed -n '/^{/,$p' > "$work/fio.json"
c1=$(ticks)
wait "$perfpid" || true

read -r iops ios usr sys <<< "$(jq -r '.jobs[0] | "\(.read.iops | floor) \(.read.total_ios) \(.usr_cpu) \(.sys_cpu)"' "$work/fio.json")"
hz=$(getconf CLK_TCK)
echo "# $server${args:+ ($args)}, $(basename "$image"), fio $rw 4k iodepth $depth, ${runtime}s, $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
awk -v iops="$iops" -v ios="$ios" -v d=$((c1 - c0)) -v hz="$hz" -v u="$usr" -v s="$sys" -v t="$runtime" 'BEGIN {
    srv = d * 1e6 / hz / ios; cli = (u + s) / 100 * t * 1e6 / ios
    printf "IOPS %d; CPU per read: server %.1f us, fio %.1f us, sum %.1f us\n", iops, srv, cli, srv + cli
    printf "  (server busy %.0f%% of one CPU, fio %.0f%%)\n", d / hz / t * 100, u + s }'
echo "# server samples by shared object"
perf report -i "$work/perf.data" --no-children --sort dso -q 2> /dev/null |
    grep -v '^$' | grep -v -- '--' | awk '$1 ~ /%$/' | head -8
echo "# hottest symbols"
perf report -i "$work/perf.data" --no-children --sort dso,sym -q -g none 2> /dev/null |
    awk '$1 ~ /%$/' | head -15
