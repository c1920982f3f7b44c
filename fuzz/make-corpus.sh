#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Make the fuzzer's seed corpus in DIR with qemu-img and qemu-io: small
# images (a few hundred KiB at most) covering the format's variants.
# Backing and data file names are the ones the harness provides
# ("backing.raw" next to the input).
set -euo pipefail
dir=${1:?usage: make-corpus.sh DIR}
mkdir -p "$dir"
cd "$dir"
rm -f ./*.qcow2 backing.raw

img () {                        # img NAME SIZE [qemu-img create options]
  local name=$1 size=$2; shift 2
  qemu-img create -q -f qcow2 "$@" "$name.qcow2" "$size"
}
io () {                         # io NAME qemu-io commands...
  local name=$1; shift
  local args=() c
  for c in "$@"; do args+=(-c "$c"); done
  qemu-io -f qcow2 "${args[@]}" "$name.qcow2" >/dev/null
}
some_data () {                  # data, a zero cluster, data again
  io "$1" "write -P 0x11 0 4k" "write -P 0x22 64k 8k" "write -z 128k 64k" \
     "write -P 0x33 300k 1k"
}

# Cluster sizes, v2 and v3.
for cs in 512 4k 64k; do
  img v3-$cs 1M -o cluster_size=$cs
  some_data v3-$cs
done
img v2-4k 1M -o compat=0.10,cluster_size=4k
some_data v2-4k
img empty 1M

# Refcount widths.
for bits in 1 8 64; do
  img refbits-$bits 1M -o refcount_bits=$bits,cluster_size=4k
  some_data refbits-$bits
done

# Extended L2 entries (subclusters).
img extl2 1M -o extended_l2=on,cluster_size=16k
io extl2 "write -P 0x44 0 1k" "write -P 0x55 20k 2k" "write -z 40k 1k"

# Compressed clusters, zlib and zstd.
head -c 256K /dev/zero | tr '\0' 'q' > raw.tmp
printf 'short line\n' | dd of=raw.tmp bs=1 seek=70000 conv=notrunc status=none
qemu-img convert -q -c -f raw -O qcow2 -o cluster_size=4k raw.tmp compressed-zlib.qcow2
qemu-img convert -q -c -f raw -O qcow2 -o cluster_size=4k,compression_type=zstd \
  raw.tmp compressed-zstd.qcow2
rm -f raw.tmp

# Internal snapshots.
img snapshots 1M -o cluster_size=4k
io snapshots "write -P 0x66 0 8k"
qemu-img snapshot -c s1 snapshots.qcow2
io snapshots "write -P 0x77 4k 8k"
qemu-img snapshot -c s2 snapshots.qcow2

# Persistent dirty bitmaps.
img bitmaps 1M -o cluster_size=4k
qemu-img bitmap --add bitmaps.qcow2 b0
qemu-img bitmap --add --granularity 512 bitmaps.qcow2 b1
io bitmaps "write -P 0x88 0 4k" "write -P 0x99 512k 4k"

# Preallocated metadata.
img prealloc 128K -o cluster_size=4k,preallocation=metadata

# A backing file (raw, the harness's "backing.raw") and a loop.
head -c 192K /dev/zero | tr '\0' 'b' > backing.raw
img backing 256K -o cluster_size=4k -u -b backing.raw -F raw
io backing "write -P 0xaa 8k 4k"
img loop 256K -o cluster_size=4k -u -b input.qcow2 -F qcow2

# An external data file.
rm -f backing.raw
img datafile 256K -o cluster_size=4k,data_file=backing.raw,data_file_raw=on
io datafile "write -P 0xbb 0 4k"
rm -f backing.raw

ls -l "$dir" | awk 'NR > 1 { n++; s += $5 } END { printf "%d seeds, %d bytes\n", n, s }'
