#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Benchmark: nbdkit-qcow2map-plugin side by side with qemu-nbd, in the
# same run, over the same images, printing one table with ratios.
# Not part of `make check`; needs only Debian packages (nbdkit,
# libnbd-bin, qemu-utils, fio, jq).
#
#   bench/compare.sh                     1 GiB images, 3 s per fio job
#   SIZE=512M RUNTIME=2 bench/compare.sh smaller and quicker
#   PLUGIN=/other/build/nbdkit-qcow2map-plugin.so bench/compare.sh
#   KEEP=/var/tmp/qbench bench/compare.sh   keep (and reuse) the images
#   RSS2T=0 bench/compare.sh             skip the 2 TiB peak-RSS check
#   IMAGES="plain zlib" ONLY="seq4k-qd1 rand4k-qd16" ROUNDS=3 bench/compare.sh
#     some images and tests only; each measured ROUNDS times, the servers
#     taking turns, and the median printed (steadier on a loaded machine)
#   ARGS="compressed-cache-size=8M" bench/compare.sh   plugin parameters
#   BASELINE=/old/nbdkit-qcow2map-plugin.so bench/compare.sh
#     also measure another build of the plugin in the same run (e.g. the
#     one before a change): two more columns, its value and the ratio
#     qcow2map / baseline
#   MODELS="parallel serialize_requests" bench/compare.sh
#     also measure the same plugin with thread-model=MODEL (after ARGS):
#     two more columns per model, its value and the ratio qcow2map /
#     MODEL (the qcow2map column is what thread-model=auto chose)
#
# Images (SIZE of guest data, in 4 MiB pieces of 1 MiB random, which
# qemu stores uncompressed, then 3 MiB of system binaries, which compress
# about 3:1): plain (64 KiB
# clusters), its zlib and zstd twins, a zlib image with 2 MiB clusters,
# and a 5-layer chain (a plain base and 4 overlays each rewriting 1/16
# of the disk in 1 MiB pieces).
#
# Per image and server (both serve one image; nbdkit with its default
# thread pool, qemu-nbd with -e 16 and its default cache):
#   fio ioengine=nbd, RUNTIME seconds each: 4 KiB sequential and random
#   reads at iodepth 1 and 16, 1 MiB sequential reads at iodepth 4
#   (IOPS, higher is better);
#   nbdcopy of the whole disk to null:, qemu-img map and qemu-img convert
#   -O raw over NBD (seconds, lower is better);
#   peak RSS (VmHWM) of the server after all of that.
#   for the 4 KiB fio jobs, also the server's CPU time per read
#   (TEST-cpu-us: user + system time of all its threads, from /proc,
#   divided by the reads fio completed; lower is better);
# The ratio column is qcow2map / qemu-nbd.  For the plain image the copy
# is also timed with nbdkit's file plugin on the raw twin.
#
# The numbers depend on the machine and its load: compare ratios taken
# in one run, and before/after runs only when made under the same
# conditions.  Each image's files are read once (page cache warmed)
# before its measurements.
set -euo pipefail
size=${SIZE:-1G}
runtime=${RUNTIME:-3}
source "$(dirname "$0")/common.sh"
args=${ARGS:-}
images=${IMAGES:-plain zlib zstd zlib2m chain5}
only=${ONLY:-}
rounds=${ROUNDS:-1}
baseline=${BASELINE:-}
models=${MODELS:-}
rss2t=${RSS2T:-1}

if [ -n "${KEEP:-}" ]; then
    work=$KEEP; mkdir -p "$work"; cd "$work"
else
    bench_workdir
fi
bytes=$(numfmt --from=iec "$size")

# ---- images ----

make_images() {
    [ -f done-$size ] && return 0
    rm -f ./*.qcow2 src.raw done-*
    # 4 MiB pieces: 1 MiB random, then 3 MiB of binaries, so that any
    # stretch read (even by a short sequential run) mixes both.
    binaries_raw $((bytes / 4 * 3)) bin.raw
    python3 - "$bytes" <<'EOF'
import os, sys
size, piece = int(sys.argv[1]), 4 << 20
with open("bin.raw", "rb") as b, open("src.raw", "wb") as out:
    for _ in range(size // piece):
        out.write(os.urandom(piece // 4))
        out.write(b.read(piece // 4 * 3))
EOF
    rm -f bin.raw
    qemu-img convert -f raw -O qcow2 src.raw plain.qcow2
    qemu-img convert -f raw -c -O qcow2 src.raw zlib.qcow2
    qemu-img convert -f raw -c -O qcow2 -o compression_type=zstd src.raw zstd.qcow2
    qemu-img convert -f raw -c -O qcow2 -o cluster_size=2M src.raw zlib2m.qcow2
    cp plain.qcow2 chain1.qcow2
    local i j cmds
    for i in 2 3 4 5; do
        qemu-img create -q -f qcow2 -b chain$((i - 1)).qcow2 -F qcow2 chain$i.qcow2 "$bytes"
        cmds=()
        for ((j = 0; j < bytes / (16 << 20); j++)); do
            cmds+=(-c "write -P $((i * 17)) $((j * (16 << 20) + i * (1 << 20))) 1M")
        done
        qemu-io "${cmds[@]}" chain$i.qcow2 > /dev/null
    done
    touch done-$size
}

# ---- servers ----

sock=$work/sock pidf=$work/pid

# start_qcow2map FILE [PLUGIN [MORE-ARGS]]
start_qcow2map() {
    rm -f "$sock" "$pidf"
    # shellcheck disable=SC2086
    nbdkit -U "$sock" -P "$pidf" "${2:-$plugin}" file="$1" $args ${3:-}
    wait_socket
}
start_qemu_nbd() {
    rm -f "$sock" "$pidf"
    qemu-nbd -r -t -f qcow2 -e 16 --fork --pid-file="$pidf" --socket="$sock" "$1"
    wait_socket
}
start_file() {
    rm -f "$sock" "$pidf"
    nbdkit -U "$sock" -P "$pidf" file "$1"
    wait_socket
}
wait_socket() {
    local i
    for ((i = 0; i < 100; i++)); do
        [ -S "$sock" ] && [ -s "$pidf" ] && return 0
        sleep 0.1
    done
    echo "server did not start" >&2; exit 1
}
stop_server() {
    local pid; pid=$(cat "$pidf")
    kill "$pid"
    while kill -0 "$pid" 2> /dev/null; do sleep 0.05; done
}
hwm() { awk '/^VmHWM:/ { print $2 }' "/proc/$(cat "$pidf")/status"; }
uri() { echo "nbd+unix:///?socket=$sock"; }

# ---- measurements ----

# CPU time (user + system, all threads) the server has used, in ticks.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$(cat "$pidf")/stat"; }
# fio NAME RW BS DEPTH: prints "IOPS CPU-US-PER-READ", the second being
# the server's CPU time per read: a load-independent view (on a loaded
# machine IOPS mostly measure the scheduler).
fio_job() {
    local c0 c1 out
    c0=$(cpu_ticks)
    out=$(fio --output-format=json --name="$1" --ioengine=nbd --uri="$(uri)" \
              --rw="$2" --bs="$3" --iodepth="$4" --runtime="$runtime" \
              --time_based --randrepeat=1 2> /dev/null |
          sed -n '/^{/,$p' | jq -r '.jobs[0].read | "\(.iops | floor) \(.total_ios)"')
    c1=$(cpu_ticks)
    awk -v o="$out" -v d=$((c1 - c0)) -v hz="$(getconf CLK_TCK)" 'BEGIN {
        split(o, f, " "); printf "%s %.1f\n", f[1], f[2] ? d * 1e6 / hz / f[2] : 0 }'
}
# fio4k TEST NAME RW DEPTH: two lines, IOPS and server CPU per read
fio4k() {
    local r; r=$(fio_job "$2" "$3" 4k "$4")
    echo "$1 ${r% *}"
    echo "$1-cpu-us ${r#* }"
}
seconds() {
    local t0 t1
    t0=$(date +%s.%N)
    "$@" > /dev/null
    t1=$(date +%s.%N)
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }'
}
copy() { nbdcopy "$(uri)" null:; }
map() { qemu-img map --output=json -f raw "$(uri)"; }
convert() { qemu-img convert -f raw -O raw "$(uri)" "$work/out.raw"; rm -f "$work/out.raw"; }

tests=(seq4k-qd1 seq4k-qd1-cpu-us seq4k-qd16 seq4k-qd16-cpu-us
       rand4k-qd1 rand4k-qd1-cpu-us rand4k-qd16 rand4k-qd16-cpu-us seq1M-qd4
       nbdcopy-s qemu-img-map-s qemu-img-convert-s peak-RSS-KiB)

# measure: one line per test, "TEST VALUE"
want() { [ -z "$only" ] || [[ " $only " == *" $1 "* ]]; }
measure() {
    want seq4k-qd1 && fio4k seq4k-qd1 s1 read 1
    want seq4k-qd16 && fio4k seq4k-qd16 s16 read 16
    want rand4k-qd1 && fio4k rand4k-qd1 r1 randread 1
    want rand4k-qd16 && fio4k rand4k-qd16 r16 randread 16
    want seq1M-qd4 && echo "seq1M-qd4 $(fio_job b4 read 1M 4 | cut -d' ' -f1)"
    want nbdcopy-s && echo "nbdcopy-s $(seconds copy)"
    want qemu-img-map-s && echo "qemu-img-map-s $(seconds map)"
    want qemu-img-convert-s && echo "qemu-img-convert-s $(seconds convert)"
    echo "peak-RSS-KiB $(hwm)"
}
# median OUTPUTS TEST: the median over the rounds of TEST's values
median() {
    awk -v t="$2" '$1 == t { print $2 }' <<< "$1" | sort -g |
        awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)] }'
}

# The extra columns: "LABEL PLUGIN [PARAMETER]" per line.
extra=()
[ -z "$baseline" ] || extra+=("baseline $baseline")
for m in $models; do extra+=("${m%%_*} $plugin thread-model=$m"); done

make_images
echo "# qcow2map: $plugin ${args:+($args)}"
[ -z "$baseline" ] || echo "# baseline: $baseline"
echo "# $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg), size $size, fio runtime ${runtime}s, $(nbdkit --version), $(qemu-nbd --version | head -1)"
ratio() { awk -v x="$1" -v y="$2" 'BEGIN { if (y > 0) printf "%.2f", x / y; else print "-" }'; }
printf '%-8s %-19s %12s %12s %7s' image test qcow2map qemu-nbd ratio
for e in "${extra[@]}"; do printf ' %12s %7s' "${e%% *}" ratio; done
echo
for img in $images; do
    file=$img.qcow2
    a= b=
    c=()
    # Warm the page cache, so that the first server measured does not
    # pay for reading the file from disk.
    if [ "$img" = chain5 ]; then cat chain?.qcow2; else cat "$file"; fi > /dev/null
    for ((r = 0; r < rounds; r++)); do
        start_qcow2map "$file"; a+=$(measure)$'\n'; stop_server
        start_qemu_nbd "$file"; b+=$(measure)$'\n'; stop_server
        for ((k = 0; k < ${#extra[@]}; k++)); do
            read -r _ p x <<< "${extra[k]}"
            start_qcow2map "$file" "$p" "$x"; c[$k]+=$(measure)$'\n'; stop_server
        done
    done
    for t in "${tests[@]}"; do
        want "${t%-cpu-us}" || [ "$t" = peak-RSS-KiB ] || continue
        x=$(median "$a" "$t")
        y=$(median "$b" "$t")
        printf '%-8s %-19s %12s %12s %7s' "$img" "$t" "$x" "$y" "$(ratio "$x" "$y")"
        for ((k = 0; k < ${#extra[@]}; k++)); do
            z=$(median "${c[$k]}" "$t")
            printf ' %12s %7s' "$z" "$(ratio "$x" "$z")"
        done
        echo
    done
    if [ "$img" = plain ] && want nbdcopy-s; then
        cat src.raw > /dev/null        # warm, as the images are
        start_file src.raw; f=$(seconds copy); stop_server
        start_qcow2map "$file"; p=$(seconds copy); stop_server
        printf '%-8s %-19s %12s %12s %7s\n' plain "nbdcopy-s vs file" "$p" "$f(file)" \
               "$(ratio "$p" "$f")"
    fi
done

# Peak RSS with default settings serving a 2 TiB image: one compressed
# 64 KiB cluster every 32 MiB (65536 clusters, every L2 slice used: far
# more metadata and compressed data than the caches hold), read whole by
# nbdcopy, then 4 KiB random reads all over it.
if [ "$rss2t" = 1 ]; then
    if [ ! -f big2t.qcow2 ]; then
        rm -f big.raw; truncate -s 2T big.raw
        python3 - big.raw <<'EOF'
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY)
block = (b"qcow2map bench " * 300)[:4096]
for i in range(65536):
    os.pwrite(fd, block, i << 25)
os.close(fd)
EOF
        qemu-img convert -f raw -c -O qcow2 big.raw big2t.qcow2
        rm -f big.raw
    fi
    for p in "$plugin" $baseline; do
        start_qcow2map big2t.qcow2 "$p"
        t=$(seconds copy)
        fio_job r16 randread 4k 16 > /dev/null
        echo "# 2 TiB image (65536 compressed clusters, $(du -k big2t.qcow2 | cut -f1) KiB file), $p, default settings: nbdcopy ${t}s, then fio 4k random reads; peak RSS $(hwm) KiB"
        stop_server
    done
fi
