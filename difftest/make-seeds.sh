#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Make the differential tester's seed images in DIR with qemu-img and
# qemu-io: one subdirectory per seed, holding its files (top.qcow2 is the
# image that is served; backing files, data files beside it), and
# seeds.list (one seed name a line).  Small images: each is copied and
# mutated thousands of times.  LUKS seeds use the passphrase "difftest".
set -euo pipefail
dir=${1:?usage: make-seeds.sh DIR}
mkdir -p "$dir"
cd "$dir"
rm -rf ./*

img () {                        # img SEED FILE SIZE [qemu-img create options]
  local seed=$1 f=$2 size=$3; shift 3
  mkdir -p "$seed"
  qemu-img create -q -f qcow2 "$@" "$seed/$f" "$size"
}
io () {                         # io SEED/FILE qemu-io commands...
  local f=$1; shift
  local args=() c
  for c in "$@"; do args+=(-c "$c"); done
  qemu-io -f qcow2 "${args[@]}" "$f" >/dev/null
}
some_data () {                  # data, a zero cluster, data again (4 KiB apart at least)
  io "$1" "write -P 0x11 0 4k" "write -P 0x22 64k 8k" "write -z 128k 64k" \
     "write -P 0x33 300k 1k" "write -P 0x44 900k 3k"
}

# Cluster sizes, v2 and v3.
for cs in 512 4k 64k; do
  img v3-$cs top.qcow2 1M -o cluster_size=$cs
  some_data v3-$cs/top.qcow2
done
img v3-2m top.qcow2 4M -o cluster_size=2M
io v3-2m/top.qcow2 "write -P 0x55 0 4k" "write -z 2M 2M"
for cs in 512 64k; do
  img v2-$cs top.qcow2 1M -o compat=0.10,cluster_size=$cs
  some_data v2-$cs/top.qcow2
done

# Every refcount width.
for bits in 1 2 4 8 16 32 64; do
  img refbits-$bits top.qcow2 1M -o refcount_bits=$bits,cluster_size=4k
  some_data refbits-$bits/top.qcow2
done

# Extended L2 entries (subclusters).
img extl2-16k top.qcow2 1M -o extended_l2=on,cluster_size=16k
io extl2-16k/top.qcow2 "write -P 0x44 0 1k" "write -P 0x55 20k 2k" "write -z 40k 1k" \
   "write -z 64k 16k"
img extl2-64k top.qcow2 1M -o extended_l2=on,cluster_size=64k
io extl2-64k/top.qcow2 "write -P 0x44 0 2k" "write -P 0x55 70k 6k" "write -z 140k 4k"

# Compressed clusters, zlib and zstd.
head -c 256K /dev/zero | tr '\0' 'q' > raw.tmp
printf 'short line\n' | dd of=raw.tmp bs=1 seek=70000 conv=notrunc status=none
head -c 8K /dev/urandom | dd of=raw.tmp bs=1k seek=100 conv=notrunc status=none
for ct in zlib zstd; do
  mkdir -p compressed-$ct
  qemu-img convert -q -c -f raw -O qcow2 -o cluster_size=4k,compression_type=$ct \
    raw.tmp compressed-$ct/top.qcow2
done
mkdir -p compressed-64k
qemu-img convert -q -c -f raw -O qcow2 -o cluster_size=64k raw.tmp compressed-64k/top.qcow2
rm -f raw.tmp

# Internal snapshots (one of them at a different disk size).
img snapshots top.qcow2 1M -o cluster_size=4k
io snapshots/top.qcow2 "write -P 0x66 0 8k" "write -P 0x67 512k 4k"
qemu-img snapshot -c s1 snapshots/top.qcow2
io snapshots/top.qcow2 "write -P 0x77 4k 8k" "write -z 512k 4k"
qemu-img snapshot -c s2 snapshots/top.qcow2
qemu-img resize -q snapshots/top.qcow2 2M
io snapshots/top.qcow2 "write -P 0x78 1536k 4k"

# Persistent dirty bitmaps.
img bitmaps top.qcow2 1M -o cluster_size=4k
qemu-img bitmap --add bitmaps/top.qcow2 b0
qemu-img bitmap --add --granularity 512 bitmaps/top.qcow2 b1
io bitmaps/top.qcow2 "write -P 0x88 0 4k" "write -P 0x99 512k 4k"
qemu-img bitmap --add --granularity 64k bitmaps/top.qcow2 b2
qemu-img bitmap --disable bitmaps/top.qcow2 b2
io bitmaps/top.qcow2 "write -P 0x9a 700k 1k"

# Preallocation.
img prealloc-metadata top.qcow2 256K -o cluster_size=4k,preallocation=metadata
io prealloc-metadata/top.qcow2 "write -P 0x12 8k 4k"
img prealloc-falloc top.qcow2 256K -o cluster_size=4k,preallocation=falloc
io prealloc-falloc/top.qcow2 "write -P 0x13 8k 4k" "write -z 16k 4k"

# Backing chains: qcow2 <- qcow2, raw <- qcow2, three layers, v2.
img chain-qcow2 base.qcow2 1M -o cluster_size=4k
io chain-qcow2/base.qcow2 "write -P 0xa1 0 64k" "write -P 0xa2 512k 4k"
img chain-qcow2 top.qcow2 1M -o cluster_size=4k -b base.qcow2 -F qcow2
io chain-qcow2/top.qcow2 "write -P 0xa3 8k 4k" "write -z 32k 4k" "write -P 0xa4 600k 4k"
mkdir -p chain-raw
head -c 192K /dev/zero | tr '\0' 'b' > chain-raw/base.raw
img chain-raw top.qcow2 256K -o cluster_size=4k -b base.raw -F raw
io chain-raw/top.qcow2 "write -P 0xaa 8k 4k" "write -z 16k 4k"
img chain-3 base.qcow2 1M -o cluster_size=64k
io chain-3/base.qcow2 "write -P 0xb1 0 128k"
img chain-3 mid.qcow2 1M -o cluster_size=4k,extended_l2=off -b base.qcow2 -F qcow2
io chain-3/mid.qcow2 "write -P 0xb2 4k 4k" "write -z 64k 4k"
img chain-3 top.qcow2 2M -o cluster_size=16k -b mid.qcow2 -F qcow2
io chain-3/top.qcow2 "write -P 0xb3 16k 16k" "write -P 0xb4 1536k 16k"
img chain-v2 base.qcow2 1M -o compat=0.10,cluster_size=4k
io chain-v2/base.qcow2 "write -P 0xc1 0 16k"
img chain-v2 top.qcow2 1M -o compat=0.10,cluster_size=4k -b base.qcow2 -F qcow2
io chain-v2/top.qcow2 "write -P 0xc2 4k 4k"

# External data files (raw and not).
mkdir -p datafile-raw datafile
img datafile-raw top.qcow2 256K -o cluster_size=4k,data_file=data.raw,data_file_raw=on
io datafile-raw/top.qcow2 "write -P 0xbb 0 4k" "write -P 0xbc 64k 4k"
img datafile top.qcow2 256K -o cluster_size=4k,data_file=data.bin
io datafile/top.qcow2 "write -P 0xbd 0 4k" "write -z 8k 4k" "write -P 0xbe 128k 4k"

# LUKS (passphrase "difftest", 10 ms of PBKDF2; qemu 7.2 may fail its
# PBKDF2 benchmark on a fast tick: retried).
mkdir -p luks
for ((i = 0; i < 20; i++)); do
  qemu-img create -q -f qcow2 --object secret,id=s0,data=difftest \
    -o encrypt.format=luks,encrypt.key-secret=s0,encrypt.iter-time=10,cluster_size=4k \
    luks/top.qcow2 256K 2> luks.err && break
  grep -q 'Unable to get accurate CPU usage' luks.err || { cat luks.err >&2; exit 1; }
done
rm -f luks.err
qemu-io --object secret,id=s0,data=difftest \
  --image-opts "driver=qcow2,file.filename=luks/top.qcow2,encrypt.key-secret=s0" \
  -c "write -P 0xcc 0 4k" -c "write -z 8k 4k" >/dev/null

# Dirty images: lazy refcounts, a writer that aborts.
img dirty top.qcow2 1M -o cluster_size=4k,lazy_refcounts=on
io dirty/top.qcow2 "write -P 0xdd 0 4k" "write -P 0xde 128k 8k" "abort" 2>/dev/null || true

ls -d -- */ | tr -d / > seeds.list
echo "$(wc -l < seeds.list) seeds, $(du -sk --apparent-size . | cut -f1) KiB"
