#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""Craft damaged qcow2 images for the acceptance tests.

Usage: craft.py CASE IMAGE
Applies the damage named CASE to IMAGE in place.  IMAGE is a qcow2 v3
image made by qemu-img (64 KiB clusters, the feature name table as its
only header extension, no backing file) unless the case says otherwise.
"craft.py --list" prints the case names.

Each case is one function below, named after the case (dashes become
underscores).  Field offsets are those of docs/interop/qcow2.txt.
"""

import struct
import sys

# Fixed header fields: name -> (offset, struct format).
FIELDS = {
    "magic": (0, ">I"), "version": (4, ">I"),
    "backing_file_offset": (8, ">Q"), "backing_file_size": (16, ">I"),
    "cluster_bits": (20, ">I"), "size": (24, ">Q"),
    "crypt_method": (32, ">I"), "l1_size": (36, ">I"),
    "l1_table_offset": (40, ">Q"), "refcount_table_offset": (48, ">Q"),
    "refcount_table_clusters": (56, ">I"), "nb_snapshots": (60, ">I"),
    "snapshots_offset": (64, ">Q"), "incompatible_features": (72, ">Q"),
    "compatible_features": (80, ">Q"), "autoclear_features": (88, ">Q"),
    "refcount_order": (96, ">I"), "header_length": (100, ">I"),
    "compression_type": (104, ">B"),
}

# Snapshot table entry ("Snapshots"): fixed part, then extra
# data (vm_state_size_large, disk_size, icount), id string, name.
SNAP_FIELDS = [("l1_table_offset", 0, ">Q"), ("l1_size", 8, ">I"),
               ("id_str_size", 12, ">H"), ("name_size", 14, ">H"),
               ("date_sec", 16, ">I"), ("date_nsec", 20, ">I"),
               ("vm_clock_nsec", 24, ">Q"), ("vm_state_size", 32, ">I"),
               ("extra_data_size", 36, ">I")]
SNAP_EXTRA = [("vm_state_size_large", 0, ">Q"), ("disk_size", 8, ">Q"),
              ("icount", 16, ">Q")]
# Bitmaps extension data and bitmap directory entry (qcow2.txt "Bitmaps").
BITMAPS_EXT = [("nb_bitmaps", 0, ">I"), ("reserved", 4, ">I"),
               ("bitmap_directory_size", 8, ">Q"),
               ("bitmap_directory_offset", 16, ">Q")]
BITMAP_ENTRY = [("bitmap_table_offset", 0, ">Q"),
                ("bitmap_table_size", 8, ">I"), ("flags", 12, ">I"),
                ("type", 16, ">B"), ("granularity_bits", 17, ">B"),
                ("name_size", 18, ">H"), ("extra_data_size", 20, ">I")]
CRYPTO_EXT = [("luks_offset", 0, ">Q"), ("luks_length", 8, ">Q")]
# LUKS v1 header (the LUKS on-disk format spec, as qemu's crypto/block-luks.c).
LUKS_FIELDS = [("magic", 0, "6s"), ("version", 6, ">H"),
               ("cipher_name", 8, "32s"), ("cipher_mode", 40, "32s"),
               ("hash_spec", 72, "32s"), ("payload_offset", 104, ">I"),
               ("key_bytes", 108, ">I"), ("mk_digest", 112, "20s"),
               ("mk_digest_salt", 132, "32s"),
               ("mk_digest_iterations", 164, ">I"), ("uuid", 168, "40s")]
LUKS_KEYSLOT = [("active", 0, ">I"), ("iterations", 4, ">I"),
                ("salt", 8, "32s"), ("key_offset", 40, ">I"),
                ("stripes", 44, ">I")]
LUKS_KEYSLOTS_AT, LUKS_KEYSLOT_SIZE, LUKS_NUM_KEYSLOTS = 208, 48, 8

EXT_BACKING_FORMAT = 0xe2792aca
EXT_FEATURE_TABLE = 0x6803f857
EXT_BITMAPS = 0x23852875
EXT_CRYPTO = 0x0537be77
EXT_DATA_FILE = 0x44415441
EXT_UNKNOWN = 0x12345678

AUTOCLEAR_BITMAPS = 1
AUTOCLEAR_DATA_FILE_RAW = 2
INCOMPAT_DATA_FILE = 4


class Image:
    def __init__(self, path):
        self.path = path
        self.f = open(path, "r+b")

    def get(self, field):
        off, fmt = FIELDS[field]
        return struct.unpack(fmt, self.pread(off, struct.calcsize(fmt)))[0]

    def set(self, field, value):
        off, fmt = FIELDS[field]
        self.pwrite(off, struct.pack(fmt, value))

    def pread(self, off, n):
        self.f.seek(off)
        return self.f.read(n).ljust(n, b"\0")

    def pwrite(self, off, data):
        self.f.seek(off)
        self.f.write(data)

    def size(self):
        self.f.seek(0, 2)
        return self.f.tell()

    def truncate(self, n):
        self.f.truncate(n)

    @property
    def cluster_size(self):
        return 1 << self.get("cluster_bits")

    def end_cluster(self, extra=0):
        """Cluster-aligned offset EXTRA clusters past the end of the file."""
        cs = self.cluster_size
        return (self.size() + cs - 1) // cs * cs + extra * cs

    # Header extensions: a list of (type, data).
    def extensions(self):
        off, exts = self.get("header_length"), []
        end = self.get("backing_file_offset") or self.cluster_size
        while off + 8 <= end:
            t, n = struct.unpack(">II", self.pread(off, 8))
            if t == 0:
                break
            exts.append((t, self.pread(off + 8, n)))
            off += 8 + (n + 7) // 8 * 8
        return exts

    def write_extensions(self, exts, end_mark=True):
        """Rewrite the extension area: EXTS (type, data) or raw bytes."""
        blob = b""
        for e in exts:
            if isinstance(e, bytes):
                blob += e
                continue
            t, data = e
            blob += struct.pack(">II", t, len(data)) + data
            blob += b"\0" * (-len(data) % 8)
        if end_mark:
            blob += b"\0" * 8
        self.pwrite(self.get("header_length"), blob)

    def add_extension(self, t, data):
        self.write_extensions(self.extensions() + [(t, data)])

    def snapshot_entry(self, l1_offset=0, l1_size=0, id_str=b"1",
                       name=b"snap", extra=b"", extra_size=None,
                       id_size=None, name_size=None):
        return struct.pack(
            ">QIHHIIQII", l1_offset, l1_size,
            len(id_str) if id_size is None else id_size,
            len(name) if name_size is None else name_size,
            0, 0, 0, 0,
            len(extra) if extra_size is None else extra_size) \
            + extra + id_str + name


def bitmaps_ext(nb=1, reserved=0, dir_size=64, dir_offset=0x10000):
    return struct.pack(">IIQQ", nb, reserved, dir_size, dir_offset)


# ---------------------------------------------------------------- the cases
# Fixed header.

def magic_bad(img): img.set("magic", 0x514649fa)
def version_1(img): img.set("version", 1)
def version_4(img): img.set("version", 4)
def cluster_bits_8(img): img.set("cluster_bits", 8)
def cluster_bits_22(img): img.set("cluster_bits", 22)
def header_length_103(img): img.set("header_length", 103)
def header_length_105(img): img.set("header_length", 105)
def header_length_108(img): img.set("header_length", 108)
def header_length_cluster_plus_8(img):
    img.set("header_length", img.cluster_size + 8)
def incompat_unknown_bit(img):
    img.set("incompatible_features", img.get("incompatible_features") | 1 << 10)
def incompat_bit_63(img):
    img.set("incompatible_features", img.get("incompatible_features") | 1 << 63)
def extended_l2_4k(img):
    # on a 4 KiB-cluster image: subclusters of 128 bytes
    img.set("incompatible_features", img.get("incompatible_features") | 1 << 4)
def refcount_order_7(img): img.set("refcount_order", 7)
def crypt_method_3(img): img.set("crypt_method", 3)
def compression_type_2(img):
    img.set("incompatible_features", img.get("incompatible_features") | 8)
    img.set("compression_type", 2)
def compression_zlib_with_bit(img):
    img.set("incompatible_features", img.get("incompatible_features") | 8)
def compression_zstd_without_bit(img): img.set("compression_type", 1)
def compression_type_ignored_v3_104(img):
    # header_length 104: byte 104 is not a header field (and is then
    # read as the start of the first extension: move the extensions)
    exts = img.extensions()
    img.set("compression_type", 7)
    img.set("header_length", 104)
    img.pwrite(104, b"\0" * 8)
    img.write_extensions(exts)

# Refcount table.

def reftable_clusters_0(img): img.set("refcount_table_clusters", 0)
def reftable_too_large(img):
    img.set("refcount_table_clusters", 8 * 1024 * 1024 // img.cluster_size + 1)
def reftable_max_size_past_eof(img):
    img.set("refcount_table_clusters", 8 * 1024 * 1024 // img.cluster_size)
def reftable_unaligned(img):
    img.set("refcount_table_offset", img.get("refcount_table_offset") + 512)
def reftable_offset_huge(img):
    img.set("refcount_table_offset", 1 << 63)
QEMU_MAX_OFFSET = (1 << 63) - (1 << 30)   # qemu's block layer reads no further
def reftable_past_qemu_max(img):
    img.set("refcount_table_offset", QEMU_MAX_OFFSET)
def reftable_past_eof(img):
    # a copy of the table past the end of the file, read as zeros there
    img.set("refcount_table_offset", img.end_cluster(16))

def reftable_sparse(img):
    # A copy of the table at the end of the file with a run of zero
    # entries (which are not kept in memory) between non-zero ones:
    # entry 1500 repeats entry 0 (a refcount block for host offsets far
    # past the end of the file; qemu opens the image all the same).
    old = img.get("refcount_table_offset")
    first = img.pread(old, 8)
    new = img.end_cluster()
    img.pwrite(new, img.pread(old, img.cluster_size))
    img.pwrite(new + 1500 * 8, first)
    img.pwrite(new + img.cluster_size - 8, b"\0" * 8)    # (the file's end)
    img.set("refcount_table_offset", new)

# Active L1 table (header fields).

def l1_unaligned(img): img.set("l1_table_offset", img.get("l1_table_offset") + 8)
def l1_unaligned_size_0(img):
    img.set("size", 0)
    img.set("l1_size", 0)
    img.set("l1_table_offset", img.get("l1_table_offset") + 8)
def l1_offset_huge(img): img.set("l1_table_offset", 1 << 63)
def l1_too_small(img): img.set("l1_size", img.get("l1_size") - 1)
def l1_too_large(img): img.set("l1_size", 32 * 1024 * 1024 // 8 + 1)
def l1_past_qemu_max(img): img.set("l1_table_offset", QEMU_MAX_OFFSET)
def l1_past_qemu_max_size_0(img):
    # an empty table is not read
    img.set("size", 0)
    img.set("l1_size", 0)
    img.set("l1_table_offset", (1 << 63) - (1 << 16))
def l1_past_eof(img): img.set("l1_table_offset", img.end_cluster(16))
def l1_partly_past_eof(img):
    # a copy of the table in the file's last cluster, declared two
    # clusters long: its second cluster lies past the end of the file
    cs, off = img.cluster_size, img.end_cluster()
    img.pwrite(off, img.pread(img.get("l1_table_offset"), cs))
    img.set("l1_size", cs // 8 * 2)
    img.set("l1_table_offset", off)
def size_huge(img): img.set("size", 1 << 62)
# Sizes not a multiple of 512: qemu serves whole sectors, the rest dropped.
def size_1(img): img.set("size", 1)
def size_511(img): img.set("size", 511)
def size_minus_1(img): img.set("size", img.get("size") - 1)
def size_plus_511(img): img.set("size", img.get("size") + 511)

# Backing file name.

def backing_offset_past_cluster(img):
    img.set("backing_file_offset", img.cluster_size + 512)
    img.set("backing_file_size", 4)
def backing_name_past_cluster(img):
    img.set("backing_file_offset", img.cluster_size - 8)
    img.set("backing_file_size", 9)
def backing_name_1024(img):
    img.set("backing_file_offset", 4096)
    img.set("backing_file_size", 1024)
def backing_name_empty(img):
    # offset set, size 0: no backing file
    img.set("backing_file_offset", 4096)
    img.set("backing_file_size", 0)

# Header extensions.

def ext_len_past_cluster(img):
    t, data = img.extensions()[0]
    off = img.get("header_length")
    img.pwrite(off + 4, struct.pack(">I", img.cluster_size))
def ext_len_past_backing_name(img):
    # the backing name starts inside the feature table's declared data
    off = img.get("header_length")
    img.set("backing_file_offset", off + 16)
    img.set("backing_file_size", 0)
def ext_head_straddles_backing_name(img):
    # the extension area ends 4 bytes into an extension head
    img.write_extensions([(EXT_UNKNOWN, b"x" * 8)])
    img.set("backing_file_offset", img.get("header_length") + 16 + 4)
def ext_end_exactly_at_backing_name(img):
    img.write_extensions([(EXT_UNKNOWN, b"x" * 8)], end_mark=False)
    img.set("backing_file_offset", img.get("header_length") + 16)
    img.set("backing_file_size", 0)
def ext_no_end_mark(img):
    # extensions run to the end of the cluster without an end mark:
    # the area is filled with unknown extensions
    cs, off = img.cluster_size, img.get("header_length")
    blob = b""
    while off + len(blob) + 16 <= cs:
        blob += struct.pack(">II", EXT_UNKNOWN, 8) + b"y" * 8
    blob += b"\1" * (cs - off - len(blob))       # a truncated last head
    img.pwrite(off, blob)
def ext_unknown(img): img.add_extension(EXT_UNKNOWN, b"whatever")
def ext_backing_format_16(img):
    img.add_extension(EXT_BACKING_FORMAT, b"q" * 16)
def ext_backing_format_15(img):
    img.add_extension(EXT_BACKING_FORMAT, b"q" * 15)
# The recorded backing format (IMAGE has a backing file and a backing
# format extension "qcow2", as qemu-img create -F qcow2 writes it).
def _set_backing_format(img, data):
    exts = img.extensions()
    old = [d for t, d in exts if t == EXT_BACKING_FORMAT]
    assert len(old) == 1 and img.get("backing_file_offset"), \
        "the template needs a backing file and a backing format"
    # not longer once padded: the backing file name follows the area
    assert (len(data) + 7) // 8 <= (len(old[0]) + 7) // 8
    img.write_extensions([(t, data if t == EXT_BACKING_FORMAT else d)
                          for t, d in exts])
def ext_backing_format_file(img): _set_backing_format(img, b"file")
def ext_backing_format_empty(img): _set_backing_format(img, b"")
def ext_backing_format_nul_first(img): _set_backing_format(img, b"\0qcow2")
def ext_backing_format_raw_nul(img): _set_backing_format(img, b"raw\0qcow")
def ext_backing_format_vmdk(img): _set_backing_format(img, b"vmdk")
def ext_crypto_without_luks(img):
    img.add_extension(EXT_CRYPTO, struct.pack(">QQ", 0x10000, 4096))
def ext_bitmaps_len_16(img):
    img.add_extension(EXT_BITMAPS, bitmaps_ext()[:16])
def ext_bitmaps_len_16_no_autoclear(img):
    img.add_extension(EXT_BITMAPS, bitmaps_ext()[:16])
def _bitmaps(img, **kw):
    img.set("autoclear_features", img.get("autoclear_features") | AUTOCLEAR_BITMAPS)
    img.add_extension(EXT_BITMAPS, bitmaps_ext(**kw))
def ext_bitmaps_reserved(img): _bitmaps(img, reserved=1)
def ext_bitmaps_zero(img): _bitmaps(img, nb=0)
def ext_bitmaps_too_many(img): _bitmaps(img, nb=65536)
def ext_bitmaps_dir_unaligned(img): _bitmaps(img, dir_offset=0x10008)
def ext_bitmaps_dir_too_large(img): _bitmaps(img, dir_size=64 * 1024 * 1024)
def ext_bitmaps_ignored_without_autoclear(img):
    img.add_extension(EXT_BITMAPS, bitmaps_ext(nb=0, reserved=7, dir_offset=3))
def ext_data_file_without_bit(img):
    img.add_extension(EXT_DATA_FILE, b"nonexistent.raw")
def data_file_bit_without_name(img):
    img.set("incompatible_features",
            img.get("incompatible_features") | INCOMPAT_DATA_FILE)
def data_file_raw_without_data_file(img):
    img.set("autoclear_features",
            img.get("autoclear_features") | AUTOCLEAR_DATA_FILE_RAW)

# Bitmap directory (on an image with two bitmaps, b0 and b1, made by
# qemu-img bitmap --add; qemu loads them when it opens the image).

def _bitmaps_ext(img):
    """(offset of the extension's data, nb, dir_size, dir_offset)"""
    off, end = img.get("header_length"), img.cluster_size
    while off + 8 <= end:
        t, n = struct.unpack(">II", img.pread(off, 8))
        if t == EXT_BITMAPS:
            nb, _, size, doff = struct.unpack(">IIQQ", img.pread(off + 8, 24))
            return off + 8, nb, size, doff
        if t == 0:
            break
        off += 8 + (n + 7) // 8 * 8
    raise SystemExit("no bitmaps extension")
def _set_bitmaps_ext(img, nb=None, size=None, doff=None):
    off, nb0, size0, doff0 = _bitmaps_ext(img)
    img.pwrite(off, struct.pack(">IIQQ", nb0 if nb is None else nb, 0,
                                size0 if size is None else size,
                                doff0 if doff is None else doff))
def _dir_entry(img, i):
    """Offset of bitmap directory entry I."""
    _, nb, size, doff = _bitmaps_ext(img)
    off = doff
    for _ in range(i):
        name, extra = struct.unpack(">HI", img.pread(off + 18, 6))
        off += (24 + name + extra + 7) // 8 * 8
    return off
def _poke_entry(img, i, rel, fmt, value):
    img.pwrite(_dir_entry(img, i) + rel, struct.pack(fmt, value))
def _table_of(img, i):
    return struct.unpack(">QI", img.pread(_dir_entry(img, i), 12))

def bitmap_dir_size_0(img): _set_bitmaps_ext(img, size=0)
def bitmap_dir_past_eof(img): _set_bitmaps_ext(img, doff=img.end_cluster(8))
def bitmap_dir_size_short(img):
    _set_bitmaps_ext(img, size=_bitmaps_ext(img)[2] - 8)
def bitmap_nb_more_than_entries(img): _set_bitmaps_ext(img, nb=3)
def bitmap_nb_less_than_entries(img): _set_bitmaps_ext(img, nb=1)
def bitmap_extra_data(img):
    # entry 1 (the last) claims 8 bytes of extra data; the directory
    # grows to keep it consistent
    _poke_entry(img, 1, 20, ">I", 8)
    _set_bitmaps_ext(img, size=_bitmaps_ext(img)[2] + 8)
def bitmap_granularity_8(img): _poke_entry(img, 0, 17, ">B", 8)
def bitmap_granularity_32(img): _poke_entry(img, 0, 17, ">B", 32)
def bitmap_type_2(img): _poke_entry(img, 0, 16, ">B", 2)
def bitmap_reserved_flag(img): _poke_entry(img, 0, 12, ">I", 2 | 4)
def bitmap_table_unaligned(img):
    _poke_entry(img, 0, 0, ">Q", _table_of(img, 0)[0] + 512)
def bitmap_table_past_qemu_max(img):
    _poke_entry(img, 0, 0, ">Q", _table_of(img, 0)[0] | 1 << 63)
def bitmap_dir_past_qemu_max(img): _set_bitmaps_ext(img, doff=QEMU_MAX_OFFSET)
def bitmap_table_size_0(img): _poke_entry(img, 0, 8, ">I", 0)
def bitmap_table_size_wrong(img):
    _poke_entry(img, 0, 8, ">I", _table_of(img, 0)[1] + 1)
def bitmap_table_entry_reserved(img):
    img.pwrite(_table_of(img, 0)[0], struct.pack(">Q", 2))
def bitmap_table_entry_unaligned(img):
    img.pwrite(_table_of(img, 0)[0], struct.pack(">Q", 0x10200))
def bitmap_table_entry_all_ones(img):
    # offset 0 with the all-ones flag: a valid entry
    img.pwrite(_table_of(img, 0)[0], struct.pack(">Q", 1))
def bitmap_in_use_bad_table(img):
    # a bitmap in use is not loaded: its table is not read
    _poke_entry(img, 0, 12, ">I", 1 | 2)
    img.pwrite(_table_of(img, 0)[0], struct.pack(">Q", 2))
def bitmap_duplicate_name(img):
    _poke_entry(img, 1, 24, ">2s", b"b0")
def bitmap_duplicate_name_in_use(img):
    _poke_entry(img, 1, 24, ">2s", b"b0")
    _poke_entry(img, 1, 12, ">I", 1 | 2)

# Snapshot table.

def snapshots_unaligned_nb_0(img):
    img.set("nb_snapshots", 0)
    img.set("snapshots_offset", 4100)
def snapshots_huge_nb_0(img):
    img.set("nb_snapshots", 0)
    img.set("snapshots_offset", 1 << 63)
def snapshots_past_eof_nb_0(img):
    img.set("nb_snapshots", 0)
    img.set("snapshots_offset", img.end_cluster(1000))
def snapshots_past_qemu_max_nb_0(img):
    img.set("nb_snapshots", 0)
    img.set("snapshots_offset", (1 << 63) - (1 << 16))
def snapshots_past_qemu_max(img):
    img.set("nb_snapshots", 1)
    img.set("snapshots_offset", QEMU_MAX_OFFSET)
def snapshots_unaligned(img):
    img.set("nb_snapshots", 1)
    img.set("snapshots_offset", 4100)
def snapshots_too_many(img):
    img.set("nb_snapshots", 65537)
    img.set("snapshots_offset", img.end_cluster())
def snapshots_max_count_past_eof(img):
    # 65536 entries past EOF: each reads as a 40-byte zero entry
    img.set("nb_snapshots", 65536)
    img.set("snapshots_offset", img.end_cluster(4))
def snapshots_past_eof(img):
    img.set("nb_snapshots", 3)
    img.set("snapshots_offset", img.end_cluster(16))
def _one_snapshot(img, **kw):
    off = img.end_cluster()
    img.pwrite(off, img.snapshot_entry(**kw))
    img.set("nb_snapshots", 1)
    img.set("snapshots_offset", off)
def snapshot_extra_1024(img): _one_snapshot(img, extra=b"\0" * 1024)
def snapshot_extra_1025(img): _one_snapshot(img, extra=b"\0" * 1025)
def snapshot_extra_0(img):
    # an entry without extra data: "incomplete" to qemu-img check in v3
    _one_snapshot(img)
def snapshot_l1_unaligned(img):
    _one_snapshot(img, l1_offset=img.get("l1_table_offset") + 8, l1_size=1,
                  extra=b"\0" * 16)
def snapshot_extra_huge_past_eof(img):
    _one_snapshot(img, extra=b"", extra_size=0xffffffff)
def snapshot_entry_runs_past_eof(img):
    # a name longer than what remains of the file
    _one_snapshot(img, name=b"abc", name_size=60000)
def snapshot_bad_l1(img):
    # a snapshot's own L1 table is not checked when the image is opened
    _one_snapshot(img, l1_offset=12345, l1_size=1 << 30)
def _big_table(img, total):
    """Entries of 40 + 1024 + 65535 + 65535 bytes, enough of them to make
    the table TOTAL bytes long (the file becomes sparse and large)."""
    off = start = img.end_cluster()
    n = 0
    entry = img.snapshot_entry(extra=b"\0" * 1024, id_str=b"i" * 65535,
                               name=b"n" * 65535)
    while off - start < total:
        off = (off + 7) // 8 * 8
        # only the head and the sizes matter: write the head, leave a hole
        img.pwrite(off, entry[:40 + 1024])
        off += len(entry)
        n += 1
    img.pwrite(off - 1, b"n")
    img.set("nb_snapshots", n)
    img.set("snapshots_offset", start)
def snapshots_size_over_limit(img):
    _big_table(img, 64 * 1024 * 1024 + 1)
def snapshots_size_under_limit(img):
    _big_table(img, 64 * 1024 * 1024 - 140000)

# Snapshot names (on an image with snapshots s1 and s2, ids 1 and 2).

def _snapshot_field(img, off, name):
    """Field NAME of the snapshot entry at OFF."""
    o, fmt = {n: (o, fm) for n, o, fm in SNAP_FIELDS}[name]
    return struct.unpack(fmt, img.pread(off + o, struct.calcsize(fmt)))[0]
def _snapshot_entry_offset(img, i):
    """File offset of snapshot entry I (entries are 8-aligned)."""
    off = (img.get("snapshots_offset") + 7) // 8 * 8
    for k in range(i):
        off += 40 + sum(_snapshot_field(img, off, n) for n in
                        ("extra_data_size", "id_str_size", "name_size"))
        off = (off + 7) // 8 * 8
    return off
def _snapshot_name_offset(img, i):
    """File offset and size of the name of snapshot entry I."""
    off = _snapshot_entry_offset(img, i)
    return (off + 40 + _snapshot_field(img, off, "extra_data_size") +
            _snapshot_field(img, off, "id_str_size"),
            _snapshot_field(img, off, "name_size"))
def _snapshot_field_set(img, i, name, value):
    """Set field NAME of snapshot entry I."""
    o, fmt = {n: (o, fm) for n, o, fm in SNAP_FIELDS}[name]
    img.pwrite(_snapshot_entry_offset(img, i) + o, struct.pack(fmt, value))
def snapshot_name_not_utf8(img):
    off, n = _snapshot_name_offset(img, 1)
    img.pwrite(off, b"\xf4\xfa"[:n])
def snapshot_name_nul(img):
    # "s2" becomes "x\0": qemu's name is "x"
    off, n = _snapshot_name_offset(img, 1)
    img.pwrite(off, b"x\0"[:n])

def snapshot_name_size_huge(img):
    # The last entry's name_size says 5000: qemu reads 5000 bytes, "s2"
    # and what follows the table (zeros), and its name is "s2".
    _snapshot_field_set(img, 1, "name_size", 5000)
def snapshot_id_size_huge(img):
    # The last entry's id_str_size says 5000 and its name_size 0:
    # qemu's id is "2s2" (the id, the name, then zeros), its name empty.
    _snapshot_field_set(img, 1, "id_str_size", 5000)
    _snapshot_field_set(img, 1, "name_size", 0)

# Short files (v3 magic, header cut anywhere before its end).

def short_72(img): img.truncate(72)
def short_100(img): img.truncate(100)
def short_104(img): img.truncate(104)
def short_50(img): img.truncate(50)
def short_3(img): img.truncate(3)
def short_0(img): img.truncate(0)
def short_v2_72(img):
    img.set("version", 2)
    img.truncate(72)
def short_header_cluster(img): img.truncate(img.cluster_size)


CASES = {name.replace("_", "-"): fn for name, fn in list(globals().items())
         if callable(fn) and not name.startswith("_")
         and fn.__module__ == __name__ and name not in
         ("Image", "bitmaps_ext", "main")}


def main():
    if len(sys.argv) == 2 and sys.argv[1] == "--list":
        print("\n".join(sorted(CASES)))
        return 0
    if len(sys.argv) != 3 or sys.argv[1] not in CASES:
        print(__doc__, file=sys.stderr)
        return 2
    img = Image(sys.argv[2])
    CASES[sys.argv[1]](img)
    img.f.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
