#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
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
refused=0 served=0 errors=0
for ((i = 1; i <= iterations; i++)); do
    cp base.qcow2 fuzz.qcow2
    for j in 1 2; do
        off=$((RANDOM % 49152)) len=$((1 + RANDOM % 8))
        for ((k = 0; k < len; k++)); do
            printf "\\x$(printf %02x $((RANDOM % 256)))"
        done | dd of=fuzz.qcow2 bs=1 seek=$off conv=notrunc status=none
    done
    rc=0
    # Every client call is checked: it succeeds, or fails with an error the
    # server sent (EIO for a read, or a refused open of a view), after
    # which the server must still answer.  A client that loses the
    # connection, or a server that stops answering, is a failure.
    QCOW2MAP_TEST_TIMEOUT=60 nbdkit_v run.err -U - --filter="$FILTER" "$PLUGIN" file=fuzz.qcow2 --run '
        q=${uri#*\?}
        for e in "" layer/1 depth.json depth/1 file/1 file/1.json; do
            for op in copy map; do
                if [ $op = copy ]; then
                    nbdcopy "nbd+unix:///$e?$q" /dev/null 2> client.err
                else
                    nbdinfo --map "nbd+unix:///$e?$q" > /dev/null 2> client.err
                fi && { echo "ok $op \"$e\""; continue; }
                if grep -Eq "Input/output error|server has no export named" client.err; then
                    echo "error $op \"$e\": $(head -n1 client.err)"
                else
                    echo "BAD $op \"$e\": $(head -n1 client.err)"
                fi
                nbdinfo --size "$uri" > /dev/null 2>&1 || { echo "DEAD after $op \"$e\""; exit 1; }
            done
        done' > run.out || rc=$?
    if [ "$rc" -ge 124 ] || grep -Eqi 'assert|signal|core dump|segmentation' run.err; then
        cp fuzz.qcow2 "crash-$i.qcow2"
        show_file run.err
        fail "iteration $i: nbdkit crashed or hung (exit $rc); image kept as crash-$i.qcow2"
    fi
    if [ "$rc" -ne 0 ]; then
        if [ -s run.out ]; then      # the --run command ran: the server died
            cp fuzz.qcow2 "dead-$i.qcow2"
            show_file run.out; show_file run.err
            fail "iteration $i: the server stopped answering (exit $rc); image kept as dead-$i.qcow2"
        fi
        # A refusal is one line naming the file.
        grep -q "^nbdkit: error: .*fuzz.qcow2" run.err ||
            { show_file run.err; fail "iteration $i: exit $rc without a startup error naming the file"; }
        refused=$((refused + 1))
    else
        if grep -q '^BAD' run.out; then
            cp fuzz.qcow2 "bad-$i.qcow2"
            show_file run.out
            fail "iteration $i: a client failed without an error from the server; image kept as bad-$i.qcow2"
        fi
        [ "$(grep -c '^ok\|^error' run.out)" -eq 12 ] ||
            { show_file run.out; fail "iteration $i: not all 12 client calls ran"; }
        served=$((served + 1))
        errors=$((errors + $(grep -c '^error' run.out || true)))
        grep '^error' run.out | sed "s/^/iteration $i: /" >> errors.log || true
    fi
done
[ ! -s errors.log ] || { log "client calls that failed with an error from the server:"; cut -c1-200 errors.log; }
log "OK $iterations corrupted images: $refused refused at startup with a message naming the file, $served served ($((served * 12)) client calls, $errors of them failed with an error from the server, which kept answering), no crash"
