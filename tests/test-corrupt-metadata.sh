#!/usr/bin/env bash
# Untrusted input: random bytes written over the metadata area of a
# small image (header, refcount table and block, L1, L2 tables, snapshot
# table, bitmap directory) must give either a clean startup refusal or a
# server that answers every view (with EIO for what cannot be read) —
# never a crash or a hang.  The random sequence is fixed (RANDOM seed),
# so a failure is reproducible; QCOW2MAP_FUZZ_ITERATIONS changes the
# count.
source "$(dirname "$0")/functions.sh"

FILTER=$top_builddir/filter-depth/.libs/nbdkit-depth-filter.so
iterations=${QCOW2MAP_FUZZ_ITERATIONS:-150}

mkimg -o cluster_size=4k base.qcow2 1M
qio base.qcow2 'write -P 1 0 300k'
qemu-img snapshot -c s1 base.qcow2
qemu-img bitmap --add base.qcow2 b0
qio base.qcow2 'write -P 2 100k 100k' 'write -z 500k 40k' 'write -c -P 3 640k 4k'

RANDOM=4242
refused=0 served=0
for ((i = 1; i <= iterations; i++)); do
    cp base.qcow2 fuzz.qcow2
    for j in 1 2; do
        off=$((RANDOM % 49152)) len=$((1 + RANDOM % 8))
        for ((k = 0; k < len; k++)); do
            printf "\\x$(printf %02x $((RANDOM % 256)))"
        done | dd of=fuzz.qcow2 bs=1 seek=$off conv=notrunc status=none
    done
    rc=0
    timeout 60 nbdkit -U - --filter="$FILTER" "$PLUGIN" file=fuzz.qcow2 --run '
        q=${uri#*\?}
        for e in "" layer/1 depth.json depth/1 file/1 file/1.json; do
            nbdcopy "nbd+unix:///$e?$q" /dev/null || true
            nbdinfo --map "nbd+unix:///$e?$q" > /dev/null || true
        done' > run.out 2> run.err || rc=$?
    if [ "$rc" -ge 124 ] || grep -Eqi 'assert|signal|core dump|segmentation' run.err; then
        cp fuzz.qcow2 "crash-$i.qcow2"
        show_file run.err
        fail "iteration $i: nbdkit crashed or hung (exit $rc); image kept as crash-$i.qcow2"
    fi
    if [ "$rc" -ne 0 ]; then
        # A refusal is one line naming the file.
        grep -q "^nbdkit: error: .*fuzz.qcow2" run.err ||
            { show_file run.err; fail "iteration $i: exit $rc without a startup error naming the file"; }
        refused=$((refused + 1))
    else
        served=$((served + 1))
    fi
done
log "OK $iterations corrupted images: $refused refused at startup with a message naming the file, $served served (read errors as EIO), no crash"
