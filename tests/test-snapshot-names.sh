#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Snapshot names as qemu sees them (found by difftest):
#  - a name with a NUL byte is its bytes before the NUL (qemu reads it
#    into a C string and compares that): listed as snapshot/PREFIX;
#  - a name that is not UTF-8 cannot be an NBD export name: the snapshot
#    is listed by id (snapshot-id/ID), and every listed name and
#    description is valid UTF-8;
#  - a name_size or id_str_size field larger than an NBD export name
#    can be does not hide the snapshot: its name is still the bytes
#    before the first NUL (difftest 1734520432:133 and :545).
source "$(dirname "$0")/functions.sh"
PY=$(nbd_python)

mkimg -o cluster_size=4k base.qcow2 1M
qio base.qcow2 'write -P 1 0 8k'
qemu-img snapshot -c s1 base.qcow2
qio base.qcow2 'write -P 2 4k 8k'
qemu-img snapshot -c s2 base.qcow2
qio base.qcow2 'write -P 3 0 4k'

# exports IMG : the export names, one a line; fails unless every name
# and description is UTF-8 (libnbd's Python binding decodes them).
exports() {
    plugin_run "$1" -- "$PY" -c '
import nbd, os
h = nbd.NBD(); h.set_opt_mode(True); h.connect_uri(os.environ["uri"])
h.opt_list(lambda n, d: print(n) or 0); h.opt_abort()' > "$1.exports" 2> "$1.err" ||
        { show_file "$1.err"; fail "$1: listing failed"; }
    grep -q Error "$1.err" && { show_file "$1.err"; fail "$1: a name or description is not UTF-8"; }
    cat "$1.exports"
}

cp base.qcow2 nul.qcow2
python3 "$top_srcdir/tests/craft.py" snapshot-name-nul nul.qcow2
[ "$(qemu-img snapshot -l nul.qcow2 | awk '$1 == 2 { print $2 }')" = x ] ||
    hard_error "qemu does not call snapshot 2 'x'"
exports nul.qcow2 | grep -qx 'snapshot/x' || fail "nul.qcow2: snapshot/x not listed: $(cat nul.qcow2.exports)"
check_snapshot nul.qcow2 snapshot/x snapshot.name=x

cp base.qcow2 utf8.qcow2
python3 "$top_srcdir/tests/craft.py" snapshot-name-not-utf8 utf8.qcow2
exports utf8.qcow2 | grep -qx 'snapshot-id/2' ||
    fail "utf8.qcow2: snapshot-id/2 not listed: $(cat utf8.qcow2.exports)"
exports utf8.qcow2 | grep -qx 'snapshot/s1' || fail "utf8.qcow2: snapshot/s1 not listed"
check_snapshot utf8.qcow2 snapshot-id/2 snapshot.id=2
cp base.qcow2 namesize.qcow2
python3 "$top_srcdir/tests/craft.py" snapshot-name-size-huge namesize.qcow2
[ "$(qemu-img snapshot -l namesize.qcow2 | awk '$1 == 2 { print $2 }')" = s2 ] ||
    hard_error "qemu does not call snapshot 2 's2'"
exports namesize.qcow2 | grep -qx 'snapshot/s2' ||
    fail "namesize.qcow2: snapshot/s2 not listed: $(cat namesize.qcow2.exports)"
check_snapshot namesize.qcow2 snapshot/s2 snapshot.name=s2

cp base.qcow2 idsize.qcow2
python3 "$top_srcdir/tests/craft.py" snapshot-id-size-huge idsize.qcow2
[ "$(qemu-img snapshot -l idsize.qcow2 | awk 'NR > 2 && $1 != 1 { print $1 }')" = 2s2 ] ||
    hard_error "qemu does not give snapshot 2 the id '2s2'"
exports idsize.qcow2 | grep -qx 'snapshot-id/2s2' ||
    fail "idsize.qcow2: snapshot-id/2s2 not listed: $(cat idsize.qcow2.exports)"
check_snapshot idsize.qcow2 snapshot-id/2s2 snapshot.id=2s2

log "OK names with a NUL and names that are not UTF-8 or have huge size fields are listed as qemu names them"
