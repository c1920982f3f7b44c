#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Benchmark: what the thread model costs.  nbdkit < 1.33.10 aborts when a
# client hangs up with replies pending under the parallel model, so the
# plugin uses serialize_requests there (one request in flight per
# connection; connections still run in parallel and multi-conn is
# advertised).  This measures both models on the same images:
#   - full copy, nbdcopy defaults (4 connections, 64 requests each) and
#     nbdcopy --connections=1, to null: (seconds, median of 3 runs);
#   - 4 KiB random reads with fio's nbd engine, one connection, queue
#     depth 32, 10 s (IOPS).
# Not part of `make check`.
#
#   bench/client-faults-cost.sh [SIZE]     (default 512M of guest data)
set -euo pipefail
size=${1:-512M}
source "$(dirname "$0")/common.sh"
bench_workdir

bytes=$(numfmt --from=iec "$size")
half_random_raw "$bytes" src.raw
qemu-img convert -O qcow2 src.raw plain.qcow2
qemu-img convert -c -O qcow2 src.raw zlib.qcow2
rm src.raw

median3() { printf '%s\n' "$@" | sort -g | sed -n 2p; }
copy_seconds() {             # URI [nbdcopy args]: median of 3 timed copies
  local uri=$1 t=() i t0; shift
  for i in 1 2 3; do
    t0=$(date +%s.%N)
    nbdcopy "$@" "$uri" null:
    t+=("$(echo "$(date +%s.%N) - $t0" | bc)")
  done
  median3 "${t[@]}"
}

printf '%-6s %-19s %12s %12s %12s\n' image thread-model copy-4conn-s copy-1conn-s fio-4k-IOPS
for img in plain zlib; do
  for model in parallel serialize_requests; do
    rm -f pid sock
    nbdkit -U "$PWD/sock" -P "$PWD/pid" "$plugin" "file=$img.qcow2" thread-model=$model
    uri="nbd+unix:///?socket=$PWD/sock"
    c4=$(copy_seconds "$uri")
    c1=$(copy_seconds "$uri" --connections=1)
    iops=$(fio --name=randread --ioengine=nbd --uri="$uri" --rw=randread \
               --bs=4k --iodepth=32 --runtime=10 --time_based \
               --output-format=json --output=fio.json >/dev/null &&
           jq '.jobs[0].read.iops | floor' fio.json)
    kill "$(cat pid)"; while kill -0 "$(cat pid)" 2>/dev/null; do sleep 0.05; done
    printf '%-6s %-19s %12.2f %12.2f %12s\n' "$img" "$model" "$c4" "$c1" "$iops"
  done
done
