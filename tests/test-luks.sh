#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# LUKS-encrypted qcow2 (encrypt.format=luks) served with passphrase=: guest
# bytes identical to qemu-img convert and base:allocation identical to
# qemu-nbd, both given the secret (--object secret + json: with
# "encrypt": {"key-secret": ...}), for:
#  - each cipher family, mode and IV generator qemu-img creates here at least
#    once (aes-128/192/256, twofish-256, serpent-128, cast5-128; xts, cbc,
#    ecb, ctr; plain, plain64, essiv with sha256 and md5 -- aes-128 with
#    essiv:sha256 uses aes-256 for the IVs, as dm-crypt), and every
#    PBKDF2/AF hash (md5, sha1, sha224, sha256, sha384, sha512, ripemd160);
#    aes-192 in XTS mode only: qemu-img 7.2 aborts creating it in the other
#    modes (4000 stripes of a 24-byte key are not a multiple of 512 bytes);
#  - v2 images, 512-byte and 2M clusters, extended L2 (16k clusters, 512-byte
#    subclusters), metadata preallocation (qemu then reports all as data: it
#    never asks the host file about encrypted data), an external data file
#    (IVs from the data file's offsets), compressed clusters (which qemu stores
#    and reads unencrypted);
#  - unaligned reads (bytes across sector and cluster boundaries);
#  - a chain: encrypted base, plain middle, encrypted top, two passphrases
#    (passphrase.1= and passphrase.3=), also through the depth filter (which
#    maps encrypted layers without the keys) against qemu-nbd -A;
#  - one passphrase= for two encrypted layers;
#  - passphrase=+FILE, passphrase=-FD and passphrase=- (a terminal);
#  - refusals, one line each: wrong passphrase (naming the file), no
#    passphrase, a key for a layer without encryption, passphrase= on a chain
#    without encryption, a key for a layer the chain does not have, legacy
#    AES (encrypt.format=aes);
#  - file/1.json counts the LUKS area as metadata (leaks, corruptions and
#    allocated clusters as qemu-img check given the key, also for an area
#    whose length runs far past the end of the file);
#  - 23 damaged LUKS headers or extensions (magic, version, names, key
#    size, iterations, key slot state/offset/stripes/overlaps as qemu checks
#    them, key material past the LUKS area, digest, extension offset and
#    length): one line each, and qemu refuses each of them too; an extension
#    length far past the end of the file is accepted, as qemu does.
depth_testsdir=$(cd "$(dirname "$0")" && pwd)
source "$depth_testsdir/functions.sh"
source "$depth_testsdir/depth-functions.sh"

# lnode FILE SECRET_ID [BACKING_JSON] : an encrypted qcow2's json node.
lnode() { qcow2_node "$1" "${3:-}" "$2"; }
# lqio FILE PASSPHRASE CMD... : qemu-io on an encrypted image alone.
lqio() {
    local img=$1 pw=$2 c args=(); shift 2
    for c in "$@"; do args+=(-c "$c"); done
    qemu-io --object "secret,id=k,data=$pw" "${args[@]}" "json:$(lnode "$img" k)" \
        > qemu-io.log 2>&1 || { show_file qemu-io.log; hard_error "qemu-io failed on $img"; }
    ! grep -q failed qemu-io.log || { show_file qemu-io.log; hard_error "qemu-io failed on $img"; }
}
# check_luks IMG PASSPHRASE : check_image with qemu given the secret, plus
# unaligned reads through the plugin against the same bytes.
check_luks() {
    local img=$1 pw=$2
    QEMU_REF="json:$(lnode "$img" k)" QEMU_OBJECTS="secret,id=k,data=$pw" \
        check_image "$img" passphrase="$pw"
    QEMU_REF="json:$(lnode "$img" k)" QEMU_OBJECTS="secret,id=k,data=$pw" \
        qemu_ref_convert "$img" ref.raw
    # Debian's python3-libnbd is for the system python, whatever is first in PATH.
    plugin_run "$img" passphrase="$pw" -- /usr/bin/python3 -c '
import os, sys, nbd
h = nbd.NBD()
h.connect_uri(os.environ["uri"])
for off, n in ((1, 511), (307001, 4999), (65535, 2), (65000, 70000), (1048575, 513)):
    sys.stdout.buffer.write(h.pread(n, off))
' > unaligned.bin || fail "unaligned reads of $img failed"
    local off n
    for off_n in 1:511 307001:4999 65535:2 65000:70000 1048575:513; do
        off=${off_n%:*}; n=${off_n#*:}
        dd if=ref.raw bs=1 skip="$off" count="$n" status=none
    done > unaligned.exp
    compare_bytes unaligned.exp unaligned.bin "unaligned reads of $img"
    log "   unaligned reads of $img identical ($(stat -c %s unaligned.bin) bytes)"
}
# fill IMG PASSPHRASE : data at unaligned places, a zero cluster, the end.
fill() {
    lqio "$1" "$2" 'write -P 0x11 0 192k' 'write -P 0x22 307201 4999' \
        'write -z 1M 64k' 'write -P 0x33 1984k 64k' 'write -P 0x44 1048000 600'
}

# ---- the matrix: alg mode ivgen ivgen-hash hash, image layout ----
# qemu-img spends over a second of CPU benchmarking PBKDF2 for every LUKS
# image whatever iter-time says, so each image covers several things: every
# mode, IV generator, cipher family and hash at least once, and the layouts.
while read -r alg mode iv ivh hash layout; do
    o="encrypt.cipher-alg=$alg,encrypt.cipher-mode=$mode,encrypt.ivgen-alg=$iv,encrypt.hash-alg=$hash"
    [ "$ivh" = - ] || o="$o,encrypt.ivgen-hash-alg=$ivh"
    case "$layout" in
        default)    ;;
        v2)         o="$o,compat=0.10" ;;
        c512)       o="$o,cluster_size=512" ;;
        c2m)        o="$o,cluster_size=2M" ;;
        prealloc)   o="$o,preallocation=metadata" ;;
        datafile)   o="$o,data_file=m-$alg-$mode.raw" ;;
        el2-comp)   o="$o,cluster_size=16k,extended_l2=on" ;;
        comp)       ;;
        *)          hard_error "unknown layout $layout" ;;
    esac
    img="m-$alg-$mode-$iv-$ivh-$hash-$layout.qcow2"
    mkimg_luks "pw-$alg" -o "$o" "$img" 4M
    fill "$img" "pw-$alg"
    case "$layout" in
        *comp) lqio "$img" "pw-$alg" 'write -c -P 0x55 512k 64k' 'write -c -P 0x56 2M 64k' ;;
    esac
    check_luks "$img" "pw-$alg"
done <<'MATRIX'
aes-256     xts plain64 -      sha256    default
aes-128     cbc essiv   sha256 sha1      c512
aes-256     cbc plain   -      sha512    c2m
aes-128     ecb plain64 -      md5       prealloc
aes-256     ctr plain64 -      ripemd160 el2-comp
twofish-256 xts essiv   sha256 sha224    v2
serpent-128 cbc plain   -      sha384    comp
cast5-128   cbc essiv   md5    sha256    datafile
aes-192     xts plain64 -      sha1      default
MATRIX
default_img=m-aes-256-xts-plain64---sha256-default.qcow2
default_pw=pw-aes-256

# ---- a chain: encrypted base <- plain middle <- encrypted top ----
cp "$default_img" cb.qcow2
mkimg -b cb.qcow2 -F qcow2 -u cm.qcow2 4M
# (the middle alone: its base needs a key qemu-io is not given here)
qemu-io -c 'write -P 0x62 512k 128k' \
    "json:{\"driver\":\"qcow2\",\"file\":{\"driver\":\"file\",\"filename\":\"cm.qcow2\"},\"backing\":null}" \
    > qemu-io.log 2>&1 || { show_file qemu-io.log; hard_error "qemu-io on cm.qcow2 failed"; }
mkimg_luks top-secret -b cm.qcow2 -F qcow2 -u ct.qcow2 4M
chain_json="$(lnode ct.qcow2 kt "{\"driver\":\"qcow2\",\"file\":{\"driver\":\"file\",\"filename\":\"cm.qcow2\"},\"backing\":$(lnode cb.qcow2 kb)}")"
qemu-io --object secret,id=kt,data=top-secret --object "secret,id=kb,data=$default_pw" \
    -c 'write -P 0x63 1M 64k' -c 'write -z 1536k 64k' -c 'write -P 0x64 100000 1000' \
    "json:$chain_json" > qemu-io.log 2>&1 ||
    { show_file qemu-io.log; hard_error "qemu-io on the chain failed"; }
export QEMU_REF="json:$chain_json" QEMU_OBJECTS="secret,id=kt,data=top-secret secret,id=kb,data=$default_pw"
check_image ct.qcow2 passphrase.1=top-secret passphrase.3="$default_pw"
CHAIN_PARAMS="passphrase.1=top-secret passphrase.3=$default_pw" check_chain ct.qcow2
unset QEMU_REF QEMU_OBJECTS
expect_startup_error ct.qcow2 'is encrypted: give passphrase=' 'cb\.qcow2' passphrase.1=top-secret
expect_startup_error ct.qcow2 'wrong passphrase' 'cb\.qcow2' passphrase=top-secret
expect_startup_error ct.qcow2 'passphrase\.2=: layer 2 .* is not encrypted' 'cm\.qcow2' passphrase.1=top-secret passphrase.3="$default_pw" passphrase.2=x
expect_startup_error ct.qcow2 'passphrase\.4=: .*has only 3 layer' 'ct\.qcow2' passphrase.1=top-secret passphrase.3="$default_pw" passphrase.4=x

# One passphrase= for two encrypted layers.
cp "$default_img" s2.qcow2
mkimg_luks "$default_pw" -b s2.qcow2 -F qcow2 -u s1.qcow2 4M
qemu-io --object "secret,id=k,data=$default_pw" -c 'write -P 0x71 3M 64k' \
    "json:$(lnode s1.qcow2 k "$(lnode s2.qcow2 k)")" > qemu-io.log 2>&1 ||
    { show_file qemu-io.log; hard_error "qemu-io on s1.qcow2 failed"; }
QEMU_REF="json:$(lnode s1.qcow2 k "$(lnode s2.qcow2 k)")" QEMU_OBJECTS="secret,id=k,data=$default_pw" \
    check_image s1.qcow2 passphrase="$default_pw"

# ---- passphrase sources ----
printf '%s' "$default_pw" > pw.txt
img=$default_img
QEMU_REF="json:$(lnode "$img" k)" QEMU_OBJECTS="secret,id=k,data=$default_pw" \
    check_image "$img" passphrase=+pw.txt
plugin_run "$img" passphrase=-3 -- sh -c 'nbdcopy "$uri" fd.raw' 3< pw.txt
QEMU_REF="json:$(lnode "$img" k)" QEMU_OBJECTS="secret,id=k,data=$default_pw" qemu_ref_convert "$img" ref-fd.raw
compare_bytes ref-fd.raw fd.raw "$img read with passphrase=-3"
log "OK passphrase=-3 (file descriptor)"
# passphrase=- reads a terminal: nbdkit under a pseudo-terminal, answering
# its prompt.
python3 - "$PLUGIN" "$img" "$default_pw" <<'PY' > tty.log 2>&1 || { show_file tty.log; fail "passphrase=- failed"; }
import os, pty, sys
plugin, img, pw = sys.argv[1], sys.argv[2], sys.argv[3]
pid, fd = pty.fork()
if pid == 0:
    os.execvp("nbdkit", ["nbdkit", "-U", "-", "-f", plugin, "file=" + img,
                         "passphrase=-", "--run", "nbdcopy \"$uri\" tty.raw"])
out = b""
while b"password" not in out.lower():
    chunk = os.read(fd, 1024)
    if not chunk:
        sys.exit("no prompt: " + out.decode(errors="replace"))
    out += chunk
os.write(fd, pw.encode() + b"\n")
while True:
    try:
        chunk = os.read(fd, 1024)
    except OSError:
        break
    if not chunk:
        break
    out += chunk
_, status = os.waitpid(pid, 0)
print(out.decode(errors="replace"))
sys.exit(os.waitstatus_to_exitcode(status))
PY
compare_bytes ref-fd.raw tty.raw "$img read with passphrase=- (terminal)"
log "OK passphrase=- (terminal)"

# ---- refusals ----
expect_startup_error "$img" 'wrong passphrase' '' passphrase=nope
expect_startup_error "$img" 'is encrypted: give passphrase=' ''
mkimg plain.qcow2 1M
expect_startup_error plain.qcow2 'passphrase=: no layer of .* is encrypted' '' passphrase=x
# Legacy AES stays refused.
qemu-img create -q -f qcow2 --object secret,id=k,data=x -o encrypt.format=aes,encrypt.key-secret=k aes.qcow2 1M
expect_startup_error aes.qcow2 'legacy AES .*not supported' '' passphrase=x

# ---- the container view counts the LUKS area as metadata in use ----
ext=$(find_bytes "$default_img" 0537be77 | head -n 1)
luks_off=$(peek_be "$default_img" $((ext + 8)) 8)
luks_len=$(peek_be "$default_img" $((ext + 16)) 8)
# check_container_counts IMG [ANY-LENGTH] : file/1.json's check counts
# equal qemu-img check's (given the key), and its metadata lists the LUKS
# area (with ANY-LENGTH, at its offset, whatever length).
check_container_counts() {
    local img=$1 off len
    off=$(peek_be "$img" $((ext + 8)) 8); len=$(peek_be "$img" $((ext + 16)) 8)
    [ -z "${2:-}" ] || len=null
    plugin_run "$img" passphrase="$default_pw" -- \
        sh -c 'nbdcopy "nbd+unix:///file/1.json?socket=$unixsocket" file1.json'
    qemu-img check --object "secret,id=k,data=$default_pw" --output=json "json:$(lnode "$img" k)" \
        > qcheck.json 2> qcheck.err || true    # exit status 2/3: corruptions/leaks
    jq -e . qcheck.json > /dev/null || { show_file qcheck.err; fail "qemu-img check of $img printed no JSON"; }
    jq -e --argjson o "$off" --argjson l "$len" --slurpfile q qcheck.json '
        .check.leaks == ($q[0].leaks // 0) and .check.corruptions == ($q[0].corruptions // 0)
        and .check."allocated-clusters" == $q[0]."allocated-clusters"
        and ([.metadata[] | select(.type == "encryption-header" and .offset == $o and ($l == null or .length == $l))] | length) == 1' \
        file1.json > /dev/null || { jq -c .check file1.json >&2; show_file qcheck.json; fail "file/1.json of $img disagrees with qemu-img check"; }
    log "OK file/1.json of $img: encryption-header at $off+$len; $(jq -c '.check | {leaks, corruptions, "allocated-clusters"}' file1.json) as qemu-img check"
}
check_container_counts "$default_img"
# A LUKS header extension length of 2^63 or more: qemu opens the image
# (the LUKS reads stay inside the area, an unsigned bound), and its check
# counts no cluster for the area (qcow2_inc_refcounts_imrt takes a signed
# size, and counts nothing for a size <= 0): the area's clusters are
# leaks, and no corruption (difftest case 490785026:37).
cp "$default_img" d-length.qcow2
poke_be d-length.qcow2 $((ext + 16)) 8 0xffffffffffffffff
check_luks d-length.qcow2 "$default_pw"
check_container_counts d-length.qcow2 any-length

# ---- a damaged LUKS header: one line, never a crash; qemu refuses too ----
# qemu_refuses IMG : qemu, given the key, cannot read IMG either.
qemu_refuses() {
    if qemu-io --object "secret,id=k,data=$default_pw" -c 'read 0 512' \
           "json:$(lnode "$1" k)" > qemu-refuse.log 2>&1; then
        show_file qemu-refuse.log; fail "$1: qemu reads it, the plugin refuses it"
    fi
    log "   qemu refuses $1 too: $(grep -m1 . qemu-refuse.log)"
}
# damage NAME OFFSET_IN_LUKS WIDTH VALUE REGEX
damage() {
    cp "$default_img" "$1"
    poke_be "$1" $((luks_off + $2)) "$3" "$4"
    expect_startup_error "$1" "$5" '' passphrase="$default_pw"
    qemu_refuses "$1"
}
damage d-magic.qcow2     0        4 0           'no LUKS magic'
damage d-version.qcow2   6        2 2           'LUKS version 2 is not supported'
damage d-cipher.qcow2    8        3 0x616263    'cipher abc with a 256-bit key is not supported'
damage d-mode.qcow2      40       3 0x78797a    "cipher mode 'xyz' is not supported"
damage d-ivgen.qcow2     44       3 0x616263    "IV generator 'abcin64' is not supported"
damage d-hash.qcow2      72       3 0x616263    "hash 'abc256' is not supported"
damage d-keybytes.qcow2  108      4 1000        'key size 1000 bytes is not supported'
damage d-mkiter.qcow2    164      4 0           'master key digest iterations is 0'
damage d-active.qcow2    208      4 0x12345678  'key slot 0: bad state'
damage d-iter.qcow2      212      4 0           'key slot 0: 0 iterations'
damage d-keyoff.qcow2    248      4 0x100000    'key slot 0: key material at sector 1048576 overlaps the header or the payload'
damage d-keyhdr.qcow2    248      4 2           'key slot 0: key material at sector 2 overlaps the header'
damage d-overlap.qcow2   296      4 8           'key slots 0 and 1 overlap'
damage d-payload.qcow2   104      4 2           'payload offset overlaps the header'
damage d-stripes7.qcow2  588      4 3999        'key slot 7: 3999 stripes'
# Key material inside the payload offset but past the LUKS area.
cp "$default_img" d-area.qcow2
poke_be d-area.qcow2 $((luks_off + 104)) 4 0x20000
poke_be d-area.qcow2 $((luks_off + 248)) 4 0x10000
expect_startup_error d-area.qcow2 'key slot 0: key material .* is outside the LUKS header area' '' passphrase="$default_pw"
qemu_refuses d-area.qcow2
# What qemu opens, the plugin opens: a disabled slot whose key material
# starts at sector 2^32-1 (qemu sums start and length as unsigned ints:
# the end wraps round to before the payload), and an enabled slot 1
# outside the LUKS area when slot 0 opens first (qemu stops at the first
# slot that the passphrase opens and never reads the others).
cp "$default_img" d-wrap.qcow2
poke_be d-wrap.qcow2 $((luks_off + 296)) 4 0xffffffff
check_luks d-wrap.qcow2 "$default_pw"
cp "$default_img" d-late.qcow2
poke_be d-late.qcow2 $((luks_off + 104)) 4 0x20000      # payload offset
poke_be d-late.qcow2 $((luks_off + 256)) 4 0x00ac71f3   # slot 1 enabled
poke_be d-late.qcow2 $((luks_off + 260)) 4 1000         # its iterations
poke_be d-late.qcow2 $((luks_off + 296)) 4 0x10000      # its key material
check_luks d-late.qcow2 "$default_pw"
cp "$default_img" d-nul.qcow2
for i in 0 8 16 24; do poke_be d-nul.qcow2 $((luks_off + 8 + i)) 8 0x4141414141414141; done
expect_startup_error d-nul.qcow2 'cipher name is not NUL-terminated' '' passphrase="$default_pw"
qemu_refuses d-nul.qcow2
damage d-stripes.qcow2   252      4 1           'key slot 0: 1 stripes'
damage d-digest.qcow2    112      4 0           'wrong passphrase'
# The extension: an unaligned offset is refused, an offset past the end
# of the file reads zeros (no LUKS magic), a length far past the end is
# accepted (only what is read counts), as in qemu.
cp "$default_img" d-extoff.qcow2
poke_be d-extoff.qcow2 $((ext + 8)) 8 $((luks_off + 512))
expect_startup_error d-extoff.qcow2 'LUKS header offset .* is not a multiple of the cluster size' '' passphrase="$default_pw"
qemu_refuses d-extoff.qcow2
cp "$default_img" d-extpast.qcow2
poke_be d-extpast.qcow2 $((ext + 8)) 8 $((100 * 65536))
expect_startup_error d-extpast.qcow2 'no LUKS magic' '' passphrase="$default_pw"
qemu_refuses d-extpast.qcow2
cp "$default_img" d-extlen.qcow2
poke_be d-extlen.qcow2 $((ext + 16)) 8 0x7fffffff0000
check_luks d-extlen.qcow2 "$default_pw"
check_container_counts d-extlen.qcow2
cp "$default_img" d-extshort.qcow2
poke_be d-extshort.qcow2 $((ext + 16)) 8 100
expect_startup_error d-extshort.qcow2 'LUKS area at .* cannot hold a LUKS header' '' passphrase="$default_pw"
qemu_refuses d-extshort.qcow2
