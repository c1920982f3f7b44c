#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# The l2-cache-size parameter (default 32M, minimum 1M):
#  - 512-byte clusters (512-byte L2 tables, each mapping 32k), 72M disk with
#    2304 writes each in its own L2 table: 1.125M of L2 tables, more than a
#    1M cache holds, so a sequential read evicts tables all the time;
#  - 2M clusters (one L2 table = 2M, larger than the 1M cache), 2T sparse;
#  - a 3-layer chain of 4k-cluster images sharing one 1M cache;
#  - the bound holds: 128 L2 tables of 64k (8 MiB) read, twice, through a 1M
#    cache raise the server's peak RSS by less than 4 MiB, while through a 1G
#    cache (which keeps them all) by more than 6 MiB -- which shows that the
#    measurement sees the tables;
#  - values out of range (below 1M, above 64G) or not sizes are refused at
#    startup, naming the parameter (exact lines).
source "$(dirname "$0")/functions.sh"

img=many-l2.qcow2
mkimg -o cluster_size=512 "$img" 72M
cmds=()
for ((i = 0; i < 2304; i++)); do
    cmds+=("write -P $((i % 255 + 1)) $((i * 32768 + (i * 512) % 32768)) 512")
done
qio "$img" "${cmds[@]}"
check_image "$img" l2-cache-size=1M

img=big-l2.qcow2
mkimg -o cluster_size=2M "$img" 2T
qio "$img" 'write -P 0x61 0 4k' "write -P 0x62 $((1 << 40)) 4k" "write -P 0x63 $(((2 << 40) - 4096)) 4k"
check_image_sparse "$img" l2-cache-size=1M

mkimg -o cluster_size=4k c1.qcow2 64M
cmds=(); for ((i = 0; i < 64; i++)); do cmds+=("write -P 0x71 $((i * 1048576)) 12k"); done
qio c1.qcow2 "${cmds[@]}"
mkimg -o cluster_size=4k -b c1.qcow2 -F qcow2 c2.qcow2
cmds=(); for ((i = 0; i < 32; i++)); do cmds+=("write -P 0x72 $((i * 2097152 + 8192)) 4k"); done
qio c2.qcow2 "${cmds[@]}"
mkimg -o cluster_size=4k -b c2.qcow2 -F qcow2 c3.qcow2
cmds=(); for ((i = 0; i < 32; i++)); do cmds+=("write -z $((i * 2097152 + 65536)) 4k"); done
qio c3.qcow2 "${cmds[@]}"
check_image c3.qcow2 l2-cache-size=1M

# ---- the bound: peak RSS growth of the server while reading 8 MiB of tables
mkimg tables.qcow2 64G
cmds=(); for ((i = 0; i < 128; i++)); do cmds+=("write -z $((i << 29)) 64k"); done
qio tables.qcow2 "${cmds[@]}"
# peak_growth CACHE_SIZE : kB by which the server's VmHWM grows while the
# whole map is read twice (nbdkit --run: the server is the nbdkit child of
# the process that runs the command).
peak_growth() {
    plugin_run tables.qcow2 l2-cache-size="$1" -- bash -c '
        set -e
        srv=$(pgrep -P "$PPID" -x nbdkit)
        [ -n "$srv" ]
        nbdinfo --size "$uri" > /dev/null
        before=$(awk "/^VmHWM/ { print \$2 }" "/proc/$srv/status")
        nbdinfo --map "$uri" > /dev/null
        nbdinfo --map "$uri" > /dev/null
        after=$(awk "/^VmHWM/ { print \$2 }" "/proc/$srv/status")
        echo $((after - before))' > "peak-$1.out" ||
        fail "measuring the peak RSS with l2-cache-size=$1 failed"
    cat "peak-$1.out"
}
small=$(peak_growth 1M)
large=$(peak_growth 1G)
log "peak RSS growth reading 128 L2 tables of 64k (8 MiB): ${small} kB with l2-cache-size=1M, ${large} kB with 1G"
[ "$large" -gt 6144 ] ||
    fail "with l2-cache-size=1G the peak RSS grew by only ${large} kB: the measurement does not see the cached tables"
[ "$small" -lt 4096 ] ||
    fail "with l2-cache-size=1M the peak RSS grew by ${small} kB (8 MiB of L2 tables read): the cache is not bounded"
log "OK the L2 cache is bounded by l2-cache-size"

# ---- refusals
expect_startup_message 'l2-cache-size: 4k is outside the allowed range 1M..64G' \
    file=c3.qcow2 l2-cache-size=4k
expect_startup_message 'l2-cache-size: 1048575 is outside the allowed range 1M..64G' \
    file=c3.qcow2 l2-cache-size=1048575
expect_startup_message 'l2-cache-size: 68719476737 is outside the allowed range 1M..64G' \
    file=c3.qcow2 l2-cache-size=68719476737
expect_startup_message 'l2-cache-size: could not parse size string (lots)' \
    file=c3.qcow2 l2-cache-size=lots
