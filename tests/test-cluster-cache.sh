#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# The decompressed-cluster cache returns the right bytes under concurrent
# readers: compressed images with 4k, 64k and 2M clusters, zlib and zstd,
# served once with the default cache and once with a tiny one (64 KiB:
# 16 slots of 4 KiB, or one slot, so clusters are evicted and inflated
# again all the time).  Six clients read at once (three sweep the disk
# front to back in 4 KiB steps, colliding on the same clusters, three
# read 1..9000 bytes at random offsets; 4 requests in flight each), and
# compare every read with qemu-img convert -O raw.  -D qcow2map.cache=1
# statistics show the cache was used (hits) and, with the tiny cache,
# that it evicted (more misses than slots).
source "$(dirname "$0")/functions.sh"

py=$(nbd_python)
export CC_PY=$py CC_READERS="$top_srcdir/tests/nbd-readers.py"

# 6 MiB: text (compresses well), random (stored uncompressed by qemu),
# a pattern, and zeros.
truncate -s 6M src.raw
seq 1 400000 > text.txt
dd if=text.txt of=src.raw bs=1M count=2 conv=notrunc status=none
dd if=/dev/urandom of=src.raw bs=1M count=1 seek=2 conv=notrunc status=none
qemu-io -f raw -c 'write -P 0x5a 3M 1M' -c 'write -P 0x11 4100k 3k' src.raw > /dev/null

# stat LINE FIELD: a number from the last cache statistics line.
cache_line() { grep 'compressed cluster cache:' "$NBDKIT_LAST_VLOG" | tail -n 1; }

for cs in 4k 64k 2M; do
    for ct in zlib zstd; do
        img=cc-$cs-$ct.qcow2
        qemu-img convert -c -f raw -O qcow2 -o cluster_size=$cs,compression_type=$ct src.raw "$img"
        qemu-img convert -f qcow2 -O raw "$img" "$img.expected"
        export CC_EXP="$TESTDIR/$img.expected"
        for size in default 64K; do
            params=(-v -D qcow2map.cache=1)
            [ "$size" = default ] || params+=(compressed-cache-size=$size)
            plugin_run "$img" "${params[@]}" -- sh -c '
                pids=
                for i in 1 2 3; do
                    "$CC_PY" "$CC_READERS" "$uri" "$CC_EXP" $i 300 4096 sweep & pids="$pids $!"
                    "$CC_PY" "$CC_READERS" "$uri" "$CC_EXP" $i 300 9000 random & pids="$pids $!"
                done
                rc=0
                for p in $pids; do wait $p || rc=1; done
                exit $rc' 2> /dev/null ||
                fail "$img (cache $size): a concurrent reader got wrong bytes or failed"
            line=$(cache_line)
            [ -n "$line" ] || fail "$img: no cache statistics (-D qcow2map.cache=1)"
            hits=$(sed -E 's/.*cache: ([0-9]+) hits.*/\1/' <<< "$line")
            misses=$(sed -E 's/.* ([0-9]+) misses.*/\1/' <<< "$line")
            slots=$(sed -E 's/.* ([0-9]+) slots.*/\1/' <<< "$line")
            [ "$hits" -gt 0 ] || fail "$img (cache $size): no cache hits: $line"
            if [ "$size" != default ]; then
                [ "$misses" -gt "$slots" ] ||
                    fail "$img (cache $size): $misses misses for $slots slots: nothing was evicted: $line"
            fi
            log "OK $img, cache $size: 6 concurrent readers, bytes identical to qemu-img convert; ${line#*debug: }"
        done
        rm -f "$img.expected"
    done
done
