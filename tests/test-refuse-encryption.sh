#!/usr/bin/env bash
# Encrypted images are refused at startup with a message naming the file and
# containing "encrypt":
#  - LUKS (encrypt.format=luks: crypt_method 2 + full disk encryption
#    header extension), v3;
#  - AES (encrypt.format=aes: crypt_method 1; qemu 7.2 still creates them);
#  - a plain image whose crypt_method (u32 BE at offset 32) is set to 1 by
#    hand, and one set to 2 (LUKS without the encryption header extension);
#  - a plain v2 image with crypt_method 1.
source "$(dirname "$0")/functions.sh"

secret=(--object secret,id=sec0,data=123456)

# qemu-img 7.2 always times PBKDF2 to choose the LUKS iteration counts
# (crypto/block-luks.c calls qcrypto_pbkdf2_count_iters for the master key
# and for the key slot; encrypt.iter-time is the only knob and no option
# gives the counts).  Debian's 7.2.22 carries qemu commit c72cab5a (the
# timing runs in a thread, measured with getrusage) without its fix 145f12ea:
# the first, short round can measure 0 ms of CPU, and creation then fails
# with "Unable to get accurate CPU usage" - on a loaded machine now and then.
# That round is independent from one attempt to the next, so retry on that
# message only (any other failure is a hard error); 20 attempts make a
# spurious failure practically impossible.
create_luks() {
    local img=$1 try
    for ((try = 1; try <= 20; try++)); do
        if qemu-img create -q -f qcow2 "${secret[@]}" \
               -o encrypt.format=luks,encrypt.key-secret=sec0,encrypt.iter-time=10 \
               "$img" 1M 2> luks-create.err; then
            return 0
        fi
        grep -q 'Unable to get accurate CPU usage' luks-create.err ||
            { show_file luks-create.err; hard_error "qemu-img could not create $img"; }
        log "qemu-img's PBKDF2 timing measured 0 ms (attempt $try), creating $img again"
    done
    show_file luks-create.err
    hard_error "qemu-img could not create $img in 20 attempts"
}
create_luks luks.qcow2
[ "$(qemu-img info --output=json luks.qcow2 | jq -r '."format-specific".data.encrypt.format')" = luks ] ||
    hard_error "qemu does not see luks.qcow2 as LUKS-encrypted"
qemu-img create -q -f qcow2 "${secret[@]}" -o encrypt.format=aes,encrypt.key-secret=sec0 aes.qcow2 1M
[ "$(peek_be luks.qcow2 32 4)" -eq 2 ] && [ "$(peek_be aes.qcow2 32 4)" -eq 1 ] ||
    hard_error "unexpected crypt_method in the encrypted images"
expect_startup_error luks.qcow2 'encrypt'
expect_startup_error aes.qcow2 'encrypt'

for m in 1 2; do
    mkimg crypt$m.qcow2 1M
    qio crypt$m.qcow2 'write -P 0x11 0 64k'
    poke_be crypt$m.qcow2 32 4 $m
    expect_startup_error crypt$m.qcow2 'encrypt'
done

mkimg -o compat=0.10 crypt-v2.qcow2 1M
poke_be crypt-v2.qcow2 32 4 1
expect_startup_error crypt-v2.qcow2 'encrypt'

# An encrypted backing file is refused too (the overlay itself is plain).
mkimg -b aes.qcow2 -F qcow2 -u over-aes.qcow2 1M
expect_startup_error over-aes.qcow2 'encrypt' '(over-aes|aes)\.qcow2'
