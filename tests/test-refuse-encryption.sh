#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
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
mkimg_luks 123456 luks.qcow2 1M    # (served with passphrase=: test-luks.sh)
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
