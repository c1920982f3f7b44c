# Common code for the qcow2map test scripts.  -*- shell-script -*-
#
# Each test-*.sh does:   source "$(dirname "$0")/functions.sh"
#
# Environment (set by tests/Makefile.am, or guessed when a test is run by hand):
#   top_builddir, top_srcdir  absolute paths
#   PLUGIN                    the plugin under test (the .so).  For harness
#                             development only, a path ending in ".sh" is run
#                             as an nbdkit sh-plugin script (a stand-in).
#
# Every test runs in its own directory tests/tmp-<testname>/ (removed when the
# test passes, kept when it fails) so that "make -j check" can run tests in
# parallel.  Sockets live in a short private directory under /tmp (Unix socket
# paths are limited to 107 bytes).  Every qemu-nbd started by a test is stopped
# when the test exits, whatever the reason.
#
# Exit codes follow automake: 0 pass, 1 fail, 77 skip, 99 hard error.
# Skips are considered defects in this project: use "requires" only for
# genuinely optional tools.

set -euo pipefail
export LC_ALL=C

_testsdir=$(cd "$(dirname "$0")" && pwd)
: "${top_srcdir:=$(cd "$_testsdir/.." && pwd)}"
: "${top_builddir:=$top_srcdir}"
: "${PLUGIN:=$top_builddir/plugin-qcow2map/.libs/nbdkit-qcow2map-plugin.so}"
export top_srcdir top_builddir PLUGIN

TESTNAME=$(basename "$0" .sh)
TESTDIR="$top_builddir/tests/tmp-$TESTNAME"

# ---------------------------------------------------------------- messages
log()  { printf '%s: %s\n' "$TESTNAME" "$*"; }
fail() { printf '%s: FAIL: %s\n' "$TESTNAME" "$*" >&2; exit 1; }
hard_error() { printf '%s: ERROR: %s\n' "$TESTNAME" "$*" >&2; exit 99; }

# Print a file to stderr with a prefix, at most N lines (default 60).
show_file() {
    local f=$1 n=${2:-60}
    [ -s "$f" ] || return 0
    sed -n "1,${n}p" "$f" | sed 's/^/    | /' >&2
    local total; total=$(wc -l < "$f")
    if [ "$total" -gt "$n" ]; then echo "    | ... ($total lines in total, see $f)" >&2; fi
}

# --------------------------------------------------------------- tooling
requires() {
    local c
    for c in "$@"; do
        if ! command -v "$c" >/dev/null 2>&1; then
            echo "$TESTNAME: SKIP: required tool '$c' not found" >&2
            exit 77
        fi
    done
}

# Tools every test needs: a missing one is a broken machine, not a skip.
for _t in nbdkit nbdinfo nbdcopy qemu-img qemu-io qemu-nbd jq cmp diff dd od realpath timeout; do
    command -v "$_t" >/dev/null 2>&1 || hard_error "required tool '$_t' not found"
done
if [ ! -f "$PLUGIN" ]; then
    hard_error "plugin not found: $PLUGIN (build it first)"
fi

# Sanitized build (configure --enable-sanitizers, set by tests/Makefile.am):
# every nbdkit the tests start is tests/sanitizer-bin/nbdkit, which preloads
# the ASan runtime into nbdkit only (not into its --run commands).
if [ "${QCOW2MAP_SANITIZERS:-no}" = yes ]; then
    [ -f "${QCOW2MAP_ASAN_LIB:-}" ] || hard_error "QCOW2MAP_ASAN_LIB: no ASan runtime at '${QCOW2MAP_ASAN_LIB:-}'"
    case ":$PATH:" in
        *":$top_srcdir/tests/sanitizer-bin:"*) ;;
        *) QCOW2MAP_REAL_NBDKIT=$(command -v nbdkit)
           PATH=$top_srcdir/tests/sanitizer-bin:$PATH ;;
    esac
    export QCOW2MAP_REAL_NBDKIT QCOW2MAP_ASAN_LIB PATH
fi

# nbdkit command prefix for the plugin under test.
_nbdkit_plugin=("$PLUGIN")
case "$PLUGIN" in *.sh) _nbdkit_plugin=(sh "$PLUGIN") ;; esac

# Timeout (seconds) applied to every server run, so that a hang fails the test.
: "${QCOW2MAP_TEST_TIMEOUT:=120}"

# ------------------------------------------------------ test directories
_SOCKDIR=
_cleanup() {
    local rc=$?
    set +e
    local pf
    if [ -n "$_SOCKDIR" ] && [ -d "$_SOCKDIR" ]; then
        for pf in "$_SOCKDIR"/*.pid; do
            [ -e "$pf" ] && _kill_pidfile "$pf"
        done
        rm -rf "$_SOCKDIR"
    fi
    cd /
    if [ "$rc" -eq 0 ]; then
        rm -rf "$TESTDIR"
    else
        echo "$TESTNAME: exit status $rc; test directory kept: $TESTDIR" >&2
    fi
    exit "$rc"
}
trap _cleanup EXIT
trap 'exit 1' INT TERM HUP
# Say which command failed when "set -e" ends a test.
set -o errtrace
trap 'echo "$TESTNAME: command failed (status $?) at ${BASH_SOURCE[0]##*/}:$LINENO: $BASH_COMMAND" >&2' ERR

rm -rf "$TESTDIR"
mkdir -p "$TESTDIR"
cd "$TESTDIR"
_SOCKDIR=$(mktemp -d /tmp/q2m-XXXXXX)
_seq=0
next_id() { _seq=$((_seq + 1)); ID=$_seq; }

# --------------------------------------------------------- byte helpers
# poke_be FILE OFFSET WIDTH VALUE : write VALUE as a WIDTH-byte big-endian
# integer at OFFSET (in place, file size unchanged).  VALUE may be decimal or 0x...
poke_be() {
    local file=$1 off=$2 width=$3 val=$4 i bytes=""
    for ((i = width - 1; i >= 0; i--)); do
        bytes+=$(printf '\\x%02x' $(( (val >> (8 * i)) & 0xff )))
    done
    printf "$bytes" | dd of="$file" bs=1 seek="$off" conv=notrunc status=none
}

# peek_be FILE OFFSET WIDTH : print the big-endian integer at OFFSET.
peek_be() {
    local file=$1 off=$2 width=$3 v=0 b
    for b in $(od -An -tu1 -j "$off" -N "$width" -v "$file"); do
        v=$(( (v << 8) | b ))
    done
    echo "$v"
}

# find_bytes FILE HEX [LIMIT] : print the byte offsets of the byte string HEX
# (e.g. e2792aca) within the first LIMIT bytes (default 64k) of FILE.
find_bytes() {
    local file=$1 hex=$2 limit=${3:-65536}
    od -An -v -tx1 -N "$limit" "$file" | tr -s ' \n' '\n\n' | grep -v '^$' |
        awk -v pat="$hex" '
            { b[NR-1] = $1 }
            END {
                n = length(pat) / 2
                for (i = 0; i + n <= NR; i++) {
                    ok = 1
                    for (j = 0; j < n; j++)
                        if (b[i+j] != substr(pat, 2*j+1, 2)) { ok = 0; break }
                    if (ok) print i
                }
            }'
}

# qcow2 header accessors (offsets from docs/interop/qcow2.txt).
qcow2_cluster_bits() { peek_be "$1" 20 4; }
qcow2_incompat()     { peek_be "$1" 72 8; }
# qcow2_set_incompat_bit FILE BIT : set one bit of incompatible_features (v3 only).
qcow2_set_incompat_bit() {
    local f=$1 bit=$2 v
    v=$(qcow2_incompat "$f")
    poke_be "$f" 72 8 $(( v | (1 << bit) ))
}

# host_offset_of IMG GUEST_OFFSET : host offset of the data cluster holding
# GUEST_OFFSET in IMG's own layer (empty if not allocated there), using
# qemu-img map (run in IMG's directory).
host_offset_of() {
    local img=$1 goff=$2
    (cd "$(dirname "$img")" && qemu-img map -f qcow2 --output=json "$(basename "$img")") |
        jq -r --argjson g "$goff" '
            .[] | select(.start <= $g and $g < .start + .length and .depth == 0 and has("offset"))
                | .offset + ($g - .start)' | head -n1
}

# l2_entry_pos IMG GUEST_OFFSET : file offset of the L2 entry mapping
# GUEST_OFFSET in IMG's own L1/L2 tables (standard or extended L2).
l2_entry_pos() {
    local img=$1 goff=$2 cb esize=8 l2bits l1off l1e l2off
    cb=$(qcow2_cluster_bits "$img")
    if [ "$(peek_be "$img" 4 4)" -ge 3 ] && [ $(( $(qcow2_incompat "$img") & 16 )) -ne 0 ]; then esize=16; fi
    l2bits=$(( cb - (esize == 16 ? 4 : 3) ))
    l1off=$(peek_be "$img" 40 8)
    l1e=$(peek_be "$img" $(( l1off + 8 * (goff >> (cb + l2bits)) )) 8)
    l2off=$(( l1e & 0x00fffffffffffe00 ))
    [ "$l2off" -ne 0 ] || hard_error "l2_entry_pos: no L2 table for guest offset $goff in $img"
    echo $(( l2off + esize * ((goff >> cb) & ((1 << l2bits) - 1)) ))
}

# l1_entry_pos IMG GUEST_OFFSET : file offset of the L1 entry for GUEST_OFFSET.
l1_entry_pos() {
    local img=$1 goff=$2 cb esize=8
    cb=$(qcow2_cluster_bits "$img")
    if [ "$(peek_be "$img" 4 4)" -ge 3 ] && [ $(( $(qcow2_incompat "$img") & 16 )) -ne 0 ]; then esize=16; fi
    echo $(( $(peek_be "$img" 40 8) + 8 * (goff >> (2 * cb - (esize == 16 ? 4 : 3))) ))
}

# compressed_cluster IMG GUEST_OFFSET : "HOST_OFFSET NBYTES" of the compressed
# cluster mapping GUEST_OFFSET (fails if it is not compressed).
compressed_cluster() {
    local img=$1 goff=$2 cb pos e x
    cb=$(qcow2_cluster_bits "$img")
    pos=$(l2_entry_pos "$img" "$goff")
    e=$(peek_be "$img" "$pos" 8)
    [ $(( (e >> 62) & 1 )) -eq 1 ] || hard_error "guest offset $goff of $img is not compressed"
    x=$(( 62 - (cb - 8) ))
    echo "$(( e & ((1 << x) - 1) )) $(( (((e >> x) & ((1 << (cb - 8)) - 1)) + 1) * 512 ))"
}

# ------------------------------------------------------------- qemu-nbd
# qemu_nbd_start IMG [extra qemu-nbd args]
# Starts a read-only, persistent qemu-nbd on IMG (format qcow2 unless the
# extra args contain -f/--format), run from IMG's directory so relative backing
# and data-file names resolve as they would for the image's owner.
# Sets QEMU_NBD_URI and QEMU_NBD_PIDFILE.  Stopped by qemu_nbd_stop or at exit.
qemu_nbd_start() {
    local img=$1; shift
    local fmt=(-f qcow2) a
    for a in "$@"; do case "$a" in -f|--format|--format=*|--image-opts) fmt=() ;; esac; done
    next_id
    local sock="$_SOCKDIR/q$ID.sock" pidf="$_SOCKDIR/q$ID.pid"
    (cd "$(dirname "$img")" &&
        qemu-nbd -r -t -e 0 "${fmt[@]}" --fork --pid-file="$pidf" --socket="$sock" \
                 "$@" "$(basename "$img")") ||
        fail "qemu-nbd failed to start on $img"
    QEMU_NBD_URI="nbd+unix:///?socket=$sock"
    QEMU_NBD_PIDFILE=$pidf
}

# _alive PID : the process exists and is not a zombie (a daemonized qemu-nbd
# is reparented to PID 1, which may be slow to reap it).
_alive() {
    local st
    kill -0 "$1" 2>/dev/null || return 1
    st=$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null) || return 1
    [ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}

_kill_pidfile() {
    local pf=$1 pid i
    pid=$(cat "$pf" 2>/dev/null) || { rm -f "$pf"; return 0; }
    if [ -n "$pid" ] && kill "$pid" 2>/dev/null; then
        for ((i = 0; i < 200; i++)); do
            _alive "$pid" || break
            sleep 0.02
        done
        _alive "$pid" && kill -9 "$pid" 2>/dev/null
    fi
    rm -f "$pf"
    return 0
}

# qemu_nbd_stop [PIDFILE]  (default: the last one started)
qemu_nbd_stop() { _kill_pidfile "${1:-$QEMU_NBD_PIDFILE}"; }

# ------------------------------------------------------ our plugin
# plugin_run IMG [PARAM=VALUE...] -- CMD [ARGS...]
# Runs nbdkit -U - with the plugin on IMG (from the current directory) and
# runs CMD ARGS under --run with uri and unixsocket EXPORTED in the
# environment (so use e.g.  sh -c 'nbdinfo "$uri"').  Returns CMD's exit
# status (or nbdkit's if it fails to start).  nbdkit's stderr is saved in
# $PLUGIN_LAST_STDERR and echoed to our stderr.
plugin_run() {
    local img=$1; shift
    local params=()
    while [ $# -gt 0 ] && [ "$1" != "--" ]; do params+=("$1"); shift; done
    [ "${1:-}" = "--" ] && shift
    [ $# -gt 0 ] || hard_error "plugin_run: no command"
    next_id
    local errf="$TESTDIR/plugin-$ID.stderr" script="$TESTDIR/plugin-$ID.run"
    PLUGIN_LAST_STDERR=$errf
    { echo 'set -e'; printf 'exec'; printf ' %q' "$@"; echo; } > "$script"
    local rc=0
    timeout "$QCOW2MAP_TEST_TIMEOUT" \
        nbdkit -U - -f "${_nbdkit_plugin[@]}" file="$img" "${params[@]}" \
               --run "export uri unixsocket; exec bash '$script'" 2> "$errf" || rc=$?
    if [ -s "$errf" ]; then
        echo "  nbdkit stderr (serving $img):" >&2
        show_file "$errf" 20
    fi
    [ "$rc" -ne 124 ] || fail "timeout (${QCOW2MAP_TEST_TIMEOUT}s) serving $img"
    return "$rc"
}

# ---------------------------------------------------------- map helpers
# map_normalize: nbdinfo --json --map on stdin -> "offset length type" lines,
# adjacent extents with equal type merged (qemu and nbdkit split extents
# differently; only merged maps are comparable).
map_normalize() {
    jq -r '
        reduce .[] as $e ([];
            if length > 0 and .[-1].type == $e.type
               and (.[-1].offset + .[-1].length) == $e.offset
            then .[-1].length += $e.length
            else . + [{offset: $e.offset, length: $e.length, type: $e.type}]
            end)
        | .[] | "\(.offset) \(.length) \(.type)"'
}

# map_summary FILE (normalized map): "N extents: D data, Z zero, H hole+zero, ..."
map_summary() {
    awk '{ n++; t[$3]++; b[$3] += $2 }
         END {
             printf "%d extents", n
             names[0] = "data"; names[1] = "hole"; names[2] = "zero"; names[3] = "hole+zero"
             for (k = 0; k < 4; k++) if (t[k]) printf ", %d %s (%.0f bytes)", t[k], names[k], b[k]
         }' "$1"
}

# _compare_maps OURS_NORM QEMU_NORM WHAT
_compare_maps() {
    local ours=$1 ref=$2 what=$3
    if ! diff -u --label "qemu-nbd ($what)" --label "qcow2map ($what)" "$ref" "$ours" > "$ours.diff"; then
        echo "$TESTNAME: map mismatch for $what (offset length type; type 0=data 1=hole 2=zero 3=hole+zero):" >&2
        show_file "$ours.diff" 80
        fail "map of $what differs from qemu-nbd's"
    fi
}

# compare_bytes EXPECTED ACTUAL WHAT : sizes and bytes equal, or fail
# showing the first differing offsets.
compare_bytes() {
    local exp=$1 act=$2 what=$3 esize asize
    esize=$(stat -c %s "$exp"); asize=$(stat -c %s "$act")
    [ "$asize" = "$esize" ] || fail "$what: $asize bytes, expected $esize"
    if ! cmp "$exp" "$act" > "$act.cmp" 2>&1; then
        echo "$TESTNAME: bytes differ for $what:" >&2
        show_file "$act.cmp"
        cmp -l "$exp" "$act" 2>/dev/null | head -n 10 |
            awk '{ printf "    offset %d: expected %s got %s (octal)\n", $1 - 1, $2, $3 }' >&2 || true
        echo "    differing bytes: $(cmp -l "$exp" "$act" 2>/dev/null | wc -l) of $esize" >&2
        fail "bytes of $what differ from the expected"
    fi
}

# _compare_bytes IMG EXPECTED ACTUAL HOW : guest bytes against qemu-img convert.
_compare_bytes() {
    compare_bytes "$2" "$3" "guest bytes of $1 (read with $4; expected: qemu-img convert)"
}

# -------------------------------------------------------- check_image
# check_image IMG [PARAM=VALUE...]
# Core assertion.  Through the plugin (run from the current directory):
# bytes (nbdcopy, with and without extents), map (nbdinfo --map) and size.
# Reference: qemu-img convert -O raw and qemu-nbd -r, run in IMG's directory.
#  (a) guest bytes identical (cmp), (b) merged maps identical, (c) sizes equal.
check_image() {
    local img=$1; shift
    local tag; next_id; tag="ci$ID"
    local dir base; dir=$(cd "$(dirname "$img")" && pwd); base=$(basename "$img")
    local exp="$TESTDIR/$tag.expected.raw" act="$TESTDIR/$tag.actual.raw"
    local act2="$TESTDIR/$tag.actual-noextents.raw"

    (cd "$dir" && qemu-img convert -f qcow2 -O raw "$base" "$exp") ||
        fail "qemu-img convert failed on $img"
    local esize; esize=$(stat -c %s "$exp")

    export CI_ACT=$act CI_ACT2=$act2 CI_MAP="$TESTDIR/$tag.ours.json" CI_SIZE="$TESTDIR/$tag.ours.size"
    rm -f "$act" "$act2"
    plugin_run "$img" "$@" -- sh -c '
        nbdcopy "$uri" "$CI_ACT" &&
        nbdcopy --no-extents "$uri" "$CI_ACT2" &&
        nbdinfo --json --map "$uri" > "$CI_MAP" &&
        nbdinfo --size "$uri" > "$CI_SIZE"' ||
        fail "serving $img through the plugin failed"

    qemu_nbd_start "$img"
    nbdinfo --json --map "$QEMU_NBD_URI" > "$TESTDIR/$tag.qemu.json" ||
        fail "nbdinfo --map against qemu-nbd failed"
    local qsize; qsize=$(nbdinfo --size "$QEMU_NBD_URI")
    qemu_nbd_stop

    # (c) size
    local osize; osize=$(cat "$CI_SIZE")
    [ "$osize" = "$qsize" ] && [ "$osize" = "$esize" ] ||
        fail "$img: export size: qcow2map=$osize qemu-nbd=$qsize qemu-img convert=$esize"

    # (a) bytes read without extents: pure pread check
    _compare_bytes "$img" "$exp" "$act2" "nbdcopy --no-extents"
    # (b) map
    map_normalize < "$CI_MAP" > "$TESTDIR/$tag.ours.map"
    map_normalize < "$TESTDIR/$tag.qemu.json" > "$TESTDIR/$tag.qemu.map"
    _compare_maps "$TESTDIR/$tag.ours.map" "$TESTDIR/$tag.qemu.map" "$img"
    # (a) again, copy using extents (zero/hole regions skipped by nbdcopy)
    _compare_bytes "$img" "$exp" "$act" "nbdcopy"

    log "OK $img${*:+ ($*)}: size $osize; bytes identical (cmp, with and without extents, sha256 $(sha256sum < "$exp" | cut -c1-12)); map identical: $(map_summary "$TESTDIR/$tag.ours.map")"
    rm -f "$exp" "$act" "$act2"
}

# ------------------------------------------------ check_image_sparse
# check_image_sparse IMG [PARAM=VALUE...]
# For images too large to copy (e.g. 2T/4T sparse disks): compares
#  (b) merged maps (plugin vs qemu-nbd), (c) export sizes, and
#  (a') guest bytes of every extent that is not hole+zero in qemu's map, plus
#       the first and last 64 KiB of every hole+zero extent, read through the
#       plugin and through qemu (qemu-img convert of a raw offset/size window
#       stacked on an NBD client of the plugin, and on the qcow2 image).
# The total number of bytes compared is printed.
check_image_sparse() {
    local img=$1; shift
    local tag; next_id; tag="cs$ID"
    local dir base; dir=$(cd "$(dirname "$img")" && pwd); base=$(basename "$img")

    qemu_nbd_start "$img"
    nbdinfo --json --map "$QEMU_NBD_URI" > "$TESTDIR/$tag.qemu.json" ||
        fail "nbdinfo --map against qemu-nbd failed"
    local qsize; qsize=$(nbdinfo --size "$QEMU_NBD_URI")
    qemu_nbd_stop
    map_normalize < "$TESTDIR/$tag.qemu.json" > "$TESTDIR/$tag.qemu.map"

    # Ranges to compare: "offset length" lines.
    awk -v max=65536 '
        $3 != 3 { printf "%.0f %.0f\n", $1, $2; next }
        { if ($2 <= 2*max) printf "%.0f %.0f\n", $1, $2
          else { printf "%.0f %.0f\n%.0f %.0f\n", $1, max, $1 + $2 - max, max } }' \
        "$TESTDIR/$tag.qemu.map" > "$TESTDIR/$tag.ranges"
    local total; total=$(awk '{ s += $2 } END { printf "%.0f", s }' "$TESTDIR/$tag.ranges")
    [ "$total" -le $((256 * 1024 * 1024)) ] || hard_error "too many bytes to compare ($total)"

    local off len
    local nranges; nranges=$(wc -l < "$TESTDIR/$tag.ranges")
    mkdir -p "$TESTDIR/$tag.ref" "$TESTDIR/$tag.ours"

    # Reference bytes, straight from the image via qemu.  A byte range of an
    # image is read with qemu's raw format driver and its offset/size options
    # stacked on the real image (qemu-img dd cannot be used: in qemu 7.2,
    # skip= combined with count= always fails with "cannot skip").
    while read -r off len; do
        (cd "$dir" && qemu-img convert -O raw --image-opts \
            "driver=raw,offset=$off,size=$len,file.driver=qcow2,file.file.filename=./$base" \
            "$TESTDIR/$tag.ref/$off") || fail "qemu-img convert of range $off+$len of $img failed"
    done < "$TESTDIR/$tag.ranges"

    # Same ranges, map and size through the plugin (one server session).
    export CS_TAG="$TESTDIR/$tag"
    plugin_run "$img" "$@" -- bash -c '
        set -e
        nbdinfo --json --map "$uri" > "$CS_TAG.ours.json"
        nbdinfo --size "$uri" > "$CS_TAG.ours.size"
        while read -r off len; do
            qemu-img convert -O raw --image-opts \
                "driver=raw,offset=$off,size=$len,file.driver=nbd,file.server.type=unix,file.server.path=$unixsocket" \
                "$CS_TAG.ours/$off"
        done < "$CS_TAG.ranges"' ||
        fail "serving $img through the plugin failed"

    local osize; osize=$(cat "$TESTDIR/$tag.ours.size")
    [ "$osize" = "$qsize" ] || fail "$img: export size: qcow2map=$osize qemu-nbd=$qsize"

    map_normalize < "$TESTDIR/$tag.ours.json" > "$TESTDIR/$tag.ours.map"
    _compare_maps "$TESTDIR/$tag.ours.map" "$TESTDIR/$tag.qemu.map" "$img"

    while read -r off len; do
        [ "$(stat -c %s "$TESTDIR/$tag.ref/$off")" -eq "$len" ] || hard_error "reference range $off+$len has the wrong size"
        if ! cmp "$TESTDIR/$tag.ref/$off" "$TESTDIR/$tag.ours/$off" > "$TESTDIR/$tag.cmp" 2>&1; then
            show_file "$TESTDIR/$tag.cmp"
            fail "$img: guest bytes differ in range offset $off length $len (cmp offsets are relative to $off)"
        fi
    done < "$TESTDIR/$tag.ranges"

    log "OK $img${*:+ ($*)} (sparse check): size $osize; map identical: $(map_summary "$TESTDIR/$tag.ours.map"); bytes identical in $nranges ranges totalling $total bytes"
    rm -rf "$TESTDIR/$tag.ref" "$TESTDIR/$tag.ours"
}

# ------------------------------------------------- startup refusals
# expect_startup_error IMG REGEX [NAME] [PARAM=VALUE...]
# The plugin must refuse IMG at startup: nbdkit exits non-zero (the --run
# command is never run), and its stderr matches REGEX (grep -Ei) and mentions
# a file name matching the extended regex NAME (default: the basename of IMG;
# pass "" to use the default).
expect_startup_error() {
    local img=$1 regex=$2 name=${3:-}
    shift 2; [ $# -gt 0 ] && shift
    [ -n "$name" ] || name=$(basename "$img" | sed 's/\./\\./g')
    next_id
    local errf="$TESTDIR/refuse-$ID.stderr" marker="$TESTDIR/refuse-$ID.ran" rc=0
    rm -f "$marker"
    timeout "$QCOW2MAP_TEST_TIMEOUT" \
        nbdkit -U - -f "${_nbdkit_plugin[@]}" file="$img" "$@" \
               --run "touch '$marker'" 2> "$errf" || rc=$?
    [ "$rc" -ne 124 ] || fail "timeout starting nbdkit on $img"
    if [ "$rc" -eq 0 ] || [ -e "$marker" ]; then
        show_file "$errf"
        fail "$img: expected a startup error matching /$regex/, but nbdkit started and served it (exit $rc)"
    fi
    # Match the cause with file names removed (they could match by accident).
    sed -E "s#$TESTDIR##g; s#[^ :'\"]*\.(qcow2|raw)##g" "$errf" > "$errf.causes"
    if ! grep -Eiq -- "$regex" "$errf.causes"; then
        show_file "$errf"
        fail "$img: startup error does not match /$regex/ (file names excluded)"
    fi
    if ! grep -Eq -- "$name" "$errf"; then
        show_file "$errf"
        fail "$img: startup error does not mention '$name'"
    fi
    log "OK refused $img (exit $rc): $(grep -Ei -m1 -- "$regex" "$errf.causes" >/dev/null && grep -m1 . "$errf")"
}

# expect_startup_ok IMG [PARAM=VALUE...] : the plugin starts and serves IMG.
expect_startup_ok() {
    local img=$1; shift
    plugin_run "$img" "$@" -- sh -c 'nbdinfo --size "$uri"' > /dev/null ||
        fail "$img: the plugin failed to serve it"
}

# -------------------------------------------------- reads via qemu-io
# expect_reads IMG [PARAM=VALUE...] -- SPEC...
# One nbdkit process, one NBD connection (qemu-io -r -f raw "$uri"), the
# reads done in order.  SPEC is one of
#   ok:OFFSET:LENGTH            the read must succeed
#   ok:OFFSET:LENGTH:PATTERN    ... and return bytes equal to PATTERN (0xNN)
#   fail:OFFSET:LENGTH          the read must fail (EIO)
# A failed read followed by successful ones shows the server kept serving.
expect_reads() {
    local img=$1; shift
    local params=() specs=() cmds=() s kind off len pat
    while [ $# -gt 0 ] && [ "$1" != "--" ]; do params+=("$1"); shift; done
    [ "${1:-}" = "--" ] && shift
    specs=("$@")
    for s in "${specs[@]}"; do
        IFS=: read -r kind off len pat <<< "$s"
        if [ -n "${pat:-}" ]; then cmds+=(-c "read -P $pat $off $len")
        else cmds+=(-c "read $off $len"); fi
    done
    next_id
    local out="$TESTDIR/reads-$ID.out"
    plugin_run "$img" "${params[@]}" -- sh -c 'qemu-io -r -f raw "$uri" "$@" 2>&1' qemu-io "${cmds[@]}" \
        > "$out" || true
    # Each read command ends with exactly one of these two lines.
    awk '/^Pattern verification failed/ { pf = 1; next }
         /^read failed/ { print "fail"; pf = 0; next }
         /^read [0-9]+\/[0-9]+ bytes at offset/ { print (pf ? "badpattern" : "ok"); pf = 0; next }' \
        "$out" > "$out.results"
    local n=${#specs[@]} got i=0
    [ "$(wc -l < "$out.results")" -eq "$n" ] || {
        show_file "$out"; fail "$img: could not match qemu-io output to the $n reads"; }
    while read -r got; do
        s=${specs[$i]}; i=$((i + 1))
        IFS=: read -r kind off len pat <<< "$s"
        if [ "$got" != "$kind" ]; then
            show_file "$out"
            fail "$img: read #$i (offset $off length $len${pat:+ pattern $pat}) expected '$kind', got '$got'"
        fi
        log "  read #$i offset $off length $len${pat:+ pattern $pat}: $got as expected"
    done < "$out.results"
    log "OK $img: $n reads in one connection behaved as expected"
}

# --------------------------------------------------- qemu as client
# qemu_img_compare_nbd IMG [PARAM=VALUE...] : qemu-img compare of the plugin's
# export (raw over NBD) against IMG opened by qemu must say identical.
qemu_img_compare_nbd() {
    local img=$1; shift
    local abs; abs=$(realpath "$img")
    next_id
    local out="$TESTDIR/compare-$ID.out"
    export QC_IMG=$abs
    plugin_run "$img" "$@" -- sh -c 'cd "$(dirname "$QC_IMG")" && qemu-img compare -f raw -F qcow2 "$uri" "$(basename "$QC_IMG")"' \
        > "$out" 2>&1 || { show_file "$out"; fail "qemu-img compare: $img differs from the plugin's export"; }
    grep -q '^Images are identical' "$out" || { show_file "$out"; fail "qemu-img compare did not say identical"; }
    log "OK qemu-img compare -f raw \$uri $img: $(cat "$out")"
}

# plugin_info_json IMG [PARAM=VALUE...] : nbdinfo --json output for the export.
plugin_info_json() {
    local img=$1; shift
    plugin_run "$img" "$@" -- sh -c 'nbdinfo --json --no-content "$uri"'
}

# ---------------------------------------------------- image creation
# mkimg [qemu-img create options...] NAME SIZE  (quiet wrapper)
mkimg() { qemu-img create -q -f qcow2 "$@"; }
# qio IMG CMD... : qemu-io on a qcow2 image, each argument one command.
qio() {
    local img=$1 c args=(); shift
    for c in "$@"; do args+=(-c "$c"); done
    qemu-io -f qcow2 "${args[@]}" "$img" > "$TESTDIR/qemu-io.log" 2>&1 ||
        { show_file "$TESTDIR/qemu-io.log"; hard_error "qemu-io failed on $img"; }
    if grep -q 'failed' "$TESTDIR/qemu-io.log"; then
        show_file "$TESTDIR/qemu-io.log"; hard_error "qemu-io reported a failure on $img"
    fi
}
