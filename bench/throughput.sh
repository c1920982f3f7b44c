#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Benchmark: copy the guest disk of generated images with nbdcopy through
# nbdkit-qcow2map-plugin and through qemu-nbd, and report time and the
# server's peak memory (VmHWM); the copy goes to null: so the server
# is what is measured.  Not part of `make check`.
#
#   bench/throughput.sh [SIZE]      (default 1G of guest data)
#   PLUGIN=/other/build/nbdkit-qcow2map-plugin.so bench/throughput.sh
#     (e.g. a build configured --without-libdeflate, to compare with zlib)
#
# Images: a plain qcow2 (64k clusters), a zlib-compressed and a
# zstd-compressed qcow2, and a 2-layer chain, made from a half-random,
# half-binaries raw file so the compression has work to do.
set -euo pipefail
size=${1:-1G}
source "$(dirname "$0")/common.sh"
bench_workdir

bytes=$(numfmt --from=iec "$size")
half_random_raw "$bytes" src.raw
qemu-img convert -O qcow2 src.raw plain.qcow2
qemu-img convert -c -O qcow2 src.raw zlib.qcow2
qemu-img convert -c -O qcow2 -o compression_type=zstd src.raw zstd.qcow2
qemu-img create -q -f qcow2 -b plain.qcow2 -F qcow2 chain.qcow2 "$size"
qemu-io -c "write -P 0x55 0 $((bytes / 4))" chain.qcow2 >/dev/null
rm src.raw

now () { date +%s.%N; }

printf '%-14s %-10s %10s %12s\n' image server seconds peak-RSS-KiB
for img in plain zlib zstd chain; do
  t0=$(now)
  rss=$(nbdkit -U - "$plugin" "file=$img.qcow2" \
          --run 'nbdcopy "$uri" null: && grep VmHWM /proc/$PPID/status' |
        awk '{print $2}')
  t1=$(now)
  printf '%-14s %-10s %10.2f %12s\n' "$img" qcow2map "$(echo "$t1 - $t0" | bc)" "$rss"

  rm -f pid sock
  qemu-nbd -r -t -f qcow2 --fork --pid-file="$PWD/pid" --socket="$PWD/sock" -e 4 "$img.qcow2"
  t0=$(now)
  nbdcopy "nbd+unix:///?socket=$PWD/sock" null:
  rss=$(awk '/VmHWM/ {print $2}' "/proc/$(cat pid)/status")
  t1=$(now)
  kill "$(cat pid)"
  printf '%-14s %-10s %10.2f %12s\n' "$img" qemu-nbd "$(echo "$t1 - $t0" | bc)" "$rss"
done
