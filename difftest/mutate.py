# SPDX-License-Identifier: BSD-3-Clause
"""Structure-aware mutations of qcow2 images, reproducible from a seed.

layout(path) walks an image made by qemu-img and lists every metadata
field the qcow2 spec (docs/interop/qcow2.txt) names as a Slot: header
fields and extensions, backing name and format, L1 and L2 entries (and
extended L2 bitmaps), refcount table and block entries, the snapshot
table and each snapshot's L1 table, the bitmap directory and bitmap
tables, the LUKS header and its key slots, the external data file name.
mutate_case() picks one to several slots of any qcow2 file of a case
and changes each with an operator fitted to its kind (flags, offsets,
sizes, names...).  Field offsets (fixed header, extensions, snapshot
and bitmap directory entries, LUKS header) come from tests/craft.py,
their one home.
"""

import os
import random
import struct
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "tests"))
import craft  # noqa: E402  (tests/craft.py: header fields, extension types)

# L1/L2 entry bits (qcow2.txt "Cluster mapping").
OFLAG_COPIED = 1 << 63
OFLAG_COMPRESSED = 1 << 62
OFLAG_ZERO = 1
L1E_OFFSET_MASK = 0x00fffffffffffe00
L2E_OFFSET_MASK = 0x00fffffffffffe00
REFT_OFFSET_MASK = 0xfffffffffffffe00

# Entry formats of the snapshot table, bitmaps extension and
# directory, crypto extension and LUKS header: tests/craft.py.
from craft import (SNAP_FIELDS, SNAP_EXTRA, BITMAPS_EXT, BITMAP_ENTRY,  # noqa: E402
                   CRYPTO_EXT, LUKS_FIELDS, LUKS_KEYSLOT, LUKS_KEYSLOTS_AT,
                   LUKS_KEYSLOT_SIZE, LUKS_NUM_KEYSLOTS)

MAX_SLOTS_PER_TABLE = 48      # entries listed per table (non-zero first)


class Slot:
    """One field: KIND (what it is: decides the operators), NAME (for the
    report), OFFSET in the file, FMT (struct format; "Ns" = bytes)."""
    def __init__(self, kind, name, offset, fmt):
        self.kind, self.name, self.offset, self.fmt = kind, name, offset, fmt

    @property
    def size(self):
        return struct.calcsize(self.fmt)


def _entries(img, kind, name, base, n, step=8, fmt=">Q"):
    """Slots for up to MAX_SLOTS_PER_TABLE entries of a table of N
    entries: the non-zero ones first, then a few zero ones."""
    n = min(n, 1 << 16)
    data = img.pread(base, n * step)
    nz = [i for i in range(n) if data[i * step:i * step + 8].strip(b"\0")]
    z = [i for i in range(n) if i not in set(nz)][:4]
    pick = nz[:MAX_SLOTS_PER_TABLE] + z
    return [Slot(kind, "%s[%d]" % (name, i), base + i * step, fmt) for i in pick]


def layout(path):
    """Every metadata Slot of the qcow2 image PATH (a best effort walk:
    what cannot be read is left out)."""
    img = craft.Image(path)
    try:
        return _layout(img)
    finally:
        img.f.close()


def _layout(img):
    slots = []
    fsize = img.size()
    version = img.get("version")
    for name, (off, fmt) in craft.FIELDS.items():
        if version == 2 and off >= 72:
            continue
        slots.append(Slot("header", name, off, fmt))
    cs = img.cluster_size
    if not 9 <= img.get("cluster_bits") <= 21:
        return slots
    extl2 = version >= 3 and img.get("incompatible_features") & 16
    hl = img.get("header_length") if version >= 3 else 72
    bfo, bfs = img.get("backing_file_offset"), img.get("backing_file_size")
    if bfo and 0 < bfs <= 1023 and bfo + bfs <= cs:
        slots.append(Slot("backing-name", "backing file name", bfo,
                          "%ds" % bfs))
    # Header extensions.
    off, end = hl, (bfo if 0 < bfo < cs else cs)
    crypto = None
    bitmaps = None
    while off + 8 <= end:
        t, n = struct.unpack(">II", img.pread(off, 8))
        slots.append(Slot("ext-type", "extension 0x%08x type" % t, off, ">I"))
        slots.append(Slot("ext-len", "extension 0x%08x length" % t, off + 4, ">I"))
        if t == 0:
            break
        d = off + 8
        if t == craft.EXT_BACKING_FORMAT and n:
            slots.append(Slot("backing-format", "backing format", d, "%ds" % n))
        elif t == craft.EXT_DATA_FILE and n:
            slots.append(Slot("data-file-name", "data file name", d, "%ds" % n))
        elif t == craft.EXT_FEATURE_TABLE and n >= 48:
            slots.append(Slot("feature-table", "feature name table entry 0",
                              d, "2s"))
        elif t == craft.EXT_BITMAPS and n >= 24:
            bitmaps = d
            slots += [Slot("bitmaps-ext", f, d + o, fm) for f, o, fm in BITMAPS_EXT]
        elif t == craft.EXT_CRYPTO and n >= 16:
            crypto = d
            slots += [Slot("crypto-ext", f, d + o, fm) for f, o, fm in CRYPTO_EXT]
        off += 8 + (n + 7) // 8 * 8
        if n > cs:
            break
    # Active L1 table and its L2 tables.
    l1o, l1n = img.get("l1_table_offset"), img.get("l1_size")
    if l1o % 512 == 0 and l1o < fsize and l1n < (1 << 22):
        slots += _l1_and_l2(img, "l1", "L1", l1o, l1n, cs, extl2, fsize)
    # Refcount table and blocks.
    rto, rtc = img.get("refcount_table_offset"), img.get("refcount_table_clusters")
    if rto % 512 == 0 and rto < fsize and rtc < 1024:
        slots += _entries(img, "reftable", "refcount table", rto, rtc * cs // 8)
        order = img.get("refcount_order") if version >= 3 else 4
        raw = img.pread(rto, min(rtc * cs, 1 << 20))
        for i in range(len(raw) // 8):
            rb = struct.unpack(">Q", raw[i * 8:i * 8 + 8])[0] & REFT_OFFSET_MASK
            if rb and rb % cs == 0 and rb + cs <= fsize and order <= 6:
                width = max(1, (1 << order) // 8)
                fmt = {1: ">B", 2: ">H", 4: ">I", 8: ">Q"}[width]
                n = cs // width
                slots += _entries(img, "refblock", "refcount block %d" % i,
                                  rb, n, step=width, fmt=fmt)
    # Snapshot table and the snapshots' L1 tables.
    nsn, sno = img.get("nb_snapshots"), img.get("snapshots_offset")
    off = sno
    for i in range(min(nsn, 64)):
        if off % 8 or off + 40 > fsize:
            break
        for f, o, fm in SNAP_FIELDS:
            slots.append(Slot("snapshot", "snapshot %d %s" % (i, f), off + o, fm))
        (sl1o, sl1n, ids, ns, _, _, _, _, extra) = struct.unpack(
            ">QIHHIIQII", img.pread(off, 40))
        for f, o, fm in SNAP_EXTRA:
            if o + 8 <= extra:
                slots.append(Slot("snapshot", "snapshot %d %s" % (i, f),
                                  off + 40 + o, fm))
        if ids:
            slots.append(Slot("snapshot-id", "snapshot %d id" % i,
                              off + 40 + extra, "%ds" % ids))
        if ns:
            slots.append(Slot("snapshot-name", "snapshot %d name" % i,
                              off + 40 + extra + ids, "%ds" % ns))
        if sl1o % 512 == 0 and 0 < sl1o < fsize and sl1n < (1 << 16):
            slots += _entries(img, "l1", "snapshot %d L1" % i, sl1o, sl1n)
        off += (40 + extra + ids + ns + 7) // 8 * 8
    # Bitmap directory and bitmap tables.
    if bitmaps is not None:
        nb, _, dsize, doff = struct.unpack(">IIQQ", img.pread(bitmaps, 24))
        off = doff
        for i in range(min(nb, 64)):
            if off % 8 or off + 24 > fsize or off - doff >= dsize:
                break
            for f, o, fm in BITMAP_ENTRY:
                slots.append(Slot("bitmap-dir", "bitmap %d %s" % (i, f), off + o, fm))
            bto, bts, _, _, _, nl, ex = struct.unpack(">QIIBBHI", img.pread(off, 24))
            if nl:
                slots.append(Slot("bitmap-name", "bitmap %d name" % i,
                                  off + 24 + ex, "%ds" % nl))
            if bto % 512 == 0 and 0 < bto < fsize and bts < (1 << 16):
                slots += _entries(img, "bitmap-table", "bitmap %d table" % i,
                                  bto, bts)
            off += (24 + nl + ex + 7) // 8 * 8
    # LUKS header.
    if crypto is not None:
        lo = struct.unpack(">Q", img.pread(crypto, 8))[0]
        if lo < fsize:
            slots += [Slot("luks", "LUKS " + f, lo + o, fm) for f, o, fm in LUKS_FIELDS]
            for k in range(LUKS_NUM_KEYSLOTS):
                b = lo + LUKS_KEYSLOTS_AT + k * LUKS_KEYSLOT_SIZE
                slots += [Slot("luks", "LUKS key slot %d %s" % (k, f), b + o, fm)
                          for f, o, fm in LUKS_KEYSLOT]
    return slots


def _l1_and_l2(img, kind, name, l1o, l1n, cs, extl2, fsize):
    slots = _entries(img, kind, name, l1o, l1n)
    raw = img.pread(l1o, min(l1n, 4096) * 8)
    step = 16 if extl2 else 8
    for i in range(len(raw) // 8):
        l2 = struct.unpack(">Q", raw[i * 8:i * 8 + 8])[0] & L1E_OFFSET_MASK
        if l2 and l2 % cs == 0 and l2 + cs <= fsize:
            slots += _entries(img, "l2", "L2 table %d" % i, l2, cs // step,
                              step=step)
            if extl2:
                slots += [Slot("l2-bitmap", s.name + " bitmap", s.offset + 8, ">Q")
                          for s in _entries(img, "l2", "L2 table %d" % i, l2,
                                            cs // step, step=step)]
    return slots


# ------------------------------------------------------------ operators
NAMES = [b"", b"base.qcow2", b"top.qcow2", b"mid.qcow2", b"base.raw",
         b"data.raw", b"data.bin", b"nonexistent", b"top.qcow2\0x",
         b"BASE.QCOW2", b"base.qcow", b"json:{}", b"file:base.qcow2",
         b"./base.qcow2"]
FORMATS = [b"raw", b"qcow2", b"file", b"", b"qcow", b"vmdk", b"luks",
           b"qcow2\0", b"QCOW2", b"null-co", b"raw\0junk", b"bochs"]
LUKS_STRINGS = [b"aes", b"twofish", b"serpent", b"cast5", b"xts-plain64",
                b"cbc-essiv:sha256", b"cbc-plain", b"ecb", b"sha256",
                b"sha1", b"sha512", b"md5", b"", b"LUKS\xba\xbe"]


def _numeric_op(rng, slot, old, ctx, same_kind):
    bits = slot.size * 8
    top = (1 << bits) - 1
    cs, fsize = ctx["cs"], ctx["fsize"]
    ops = [
        ("zero", lambda: 0),
        ("all-ones", lambda: top),
        ("flip bit", lambda: old ^ (1 << rng.randrange(bits))),
        ("random", lambda: rng.getrandbits(bits)),
        ("+1", lambda: (old + 1) & top),
        ("-1", lambda: (old - 1) & top),
        ("+512", lambda: (old + 512) & top),
        ("+cluster", lambda: (old + cs) & top),
        ("-cluster", lambda: (old - cs) & top),
        ("x2", lambda: (old * 2) & top),
        ("small", lambda: rng.choice([1, 2, 3, 7, 8, 9, 16, 63, 64, 65, 255, 256])),
    ]
    if bits >= 32:
        ops += [
            ("file end", lambda: fsize & top),
            ("past eof", lambda: (fsize + rng.randrange(1, 64) * cs) & top),
            ("other metadata", lambda: rng.choice(ctx["offsets"]) & top),
            ("huge", lambda: rng.choice([1 << (bits - 1), top - 511, 1 << 31, 1 << 32,
                                         (1 << 56) - cs]) & top),
        ]
    if same_kind:
        ops.append(("copy of " + "another entry",
                    lambda: struct.unpack(slot.fmt, ctx["read"](rng.choice(same_kind).offset,
                                                                 slot.size))[0]))
    if slot.kind in ("l1", "l2", "reftable", "bitmap-table") and bits == 64:
        flags = [OFLAG_COPIED, OFLAG_COMPRESSED, OFLAG_ZERO, 1 << 61, 1 << 56,
                 1 << 9, 2, 1 << 8, 1 << rng.randrange(1, 9)]
        ops += [
            ("toggle flag", lambda: old ^ rng.choice(flags)),
            ("toggle flag", lambda: old ^ rng.choice(flags)),
            ("offset +cluster", lambda: old + cs if old & L2E_OFFSET_MASK else old),
            ("offset to other metadata",
             lambda: (old & ~L2E_OFFSET_MASK) | (rng.choice(ctx["offsets"]) & L2E_OFFSET_MASK)),
            ("compressed descriptor",
             lambda: OFLAG_COMPRESSED | rng.getrandbits(62)),
        ]
    if slot.kind == "l2-bitmap":
        ops += [("swap halves", lambda: ((old >> 32) | (old << 32)) & top),
                ("alloc and zero", lambda: old | (old << 32) & top)]
    name, fn = rng.choice(ops)
    return name, fn()


def _bytes_op(rng, slot, old):
    n = slot.size
    if slot.kind in ("backing-name", "data-file-name"):
        pool = NAMES
    elif slot.kind == "backing-format":
        pool = FORMATS
    elif slot.kind == "luks":
        pool = LUKS_STRINGS
    else:
        pool = [b"", b"s1", b"s2", b"b0", b"b1", b"1", b"2", b"\xff\xfe"]
    ops = [("name from pool", lambda: rng.choice(pool)),
           ("flip byte", lambda: _flip(rng, old)),
           ("zero bytes", lambda: b"\0" * n),
           ("random bytes", lambda: bytes(rng.getrandbits(8) for _ in range(n)))]
    name, fn = rng.choice(ops)
    v = fn()
    return name, v[:n].ljust(n, b"\0")


def _flip(rng, b):
    if not b:
        return b
    i = rng.randrange(len(b))
    return b[:i] + bytes([b[i] ^ (1 << rng.randrange(8))]) + b[i + 1:]


def _resize_string_op(rng, img, slot):
    """Change a backing name or format to a string of another length (the
    size field follows): returns a description, or None."""
    if slot.kind == "backing-name":
        new = rng.choice(NAMES)
        img.pwrite(slot.offset, new)
        img.set("backing_file_size", len(new))
        return "backing file name := %r (size %d)" % (new, len(new))
    if slot.kind == "backing-format":
        new = rng.choice(FORMATS)
        img.pwrite(slot.offset - 4, struct.pack(">I", len(new)))
        img.pwrite(slot.offset, new.ljust((len(new) + 7) // 8 * 8 or 0, b"\0"))
        return "backing format := %r (length %d)" % (new, len(new))
    return None


def _file_op(rng, img, ctx):
    """Whole-file mutations: truncation at a metadata structure, growth."""
    cs = ctx["cs"]
    ops = ["truncate at metadata", "truncate cluster", "grow"]
    op = rng.choice(ops)
    if op == "truncate at metadata":
        at = rng.choice(ctx["offsets"] + [ctx["fsize"] - 1])
        at = max(0, min(at + rng.choice([0, 8, 512]), ctx["fsize"]))
    elif op == "truncate cluster":
        at = max(0, ctx["fsize"] - cs * rng.randrange(1, 4))
    else:
        at = ctx["fsize"] + cs * rng.randrange(1, 8)
    img.truncate(at)
    return "%s: size %d" % (op, at)


def mutate_file(rng, path, count):
    """Apply COUNT mutations to the qcow2 file PATH; returns their
    descriptions."""
    done = []
    for _ in range(count):
        slots = layout(path)
        img = craft.Image(path)
        try:
            fsize = img.size()
            cb = img.get("cluster_bits")
            cs = 1 << cb if 9 <= cb <= 21 else 65536
            offsets = sorted({s.offset for s in slots if s.kind not in ("header",)} |
                             {0, cs, fsize})
            ctx = {"cs": cs, "fsize": fsize, "offsets": offsets,
                   "read": img.pread}
            kinds = sorted({s.kind for s in slots})
            if rng.random() < 0.04:
                done.append(_file_op(rng, img, ctx))
                continue
            kind = rng.choice(kinds)
            cands = [s for s in slots if s.kind == kind]
            slot = rng.choice(cands)
            if slot.fmt.endswith("s"):
                desc = None
                if rng.random() < 0.5:
                    desc = _resize_string_op(rng, img, slot)
                if desc is None:
                    old = img.pread(slot.offset, slot.size)
                    opname, new = _bytes_op(rng, slot, old)
                    img.pwrite(slot.offset, new)
                    desc = "%s @%d: %s: %r -> %r" % (slot.name, slot.offset, opname,
                                                     old[:40], new[:40])
            else:
                old = struct.unpack(slot.fmt, img.pread(slot.offset, slot.size))[0]
                same = [s for s in cands if s is not slot and s.fmt == slot.fmt]
                opname, new = _numeric_op(rng, slot, old, ctx, same)
                new &= (1 << (slot.size * 8)) - 1
                img.pwrite(slot.offset, struct.pack(slot.fmt, new))
                desc = "%s @%d: %s: 0x%x -> 0x%x" % (slot.name, slot.offset, opname,
                                                    old, new)
            done.append(desc)
        finally:
            img.f.close()
    return done


def mutate_case(seed, index, casedir, files):
    """Mutate the case's files (FILES: {name: 'qcow2'|'raw'}) in
    CASEDIR, reproducibly from (SEED, INDEX).  Returns the list of
    mutations, each "file: description"."""
    rng = random.Random("%s:%d" % (seed, index))
    qcow2 = sorted(f for f, t in files.items() if t == "qcow2")
    raw = sorted(f for f, t in files.items() if t == "raw")
    n = rng.choice([1, 1, 1, 2, 2, 3, 4])
    out = []
    for _ in range(n):
        if raw and rng.random() < 0.05:
            f = rng.choice(raw)
            p = os.path.join(casedir, f)
            size = os.path.getsize(p)
            new = rng.choice([0, size // 2, size - 1, size + 4096, 512])
            os.truncate(p, new)
            out.append("%s: truncate raw file to %d" % (f, new))
            continue
        # Mostly the top image; any layer of a chain.
        f = "top.qcow2" if "top.qcow2" in qcow2 and rng.random() < 0.6 else rng.choice(qcow2)
        out += ["%s: %s" % (f, d) for d in
                mutate_file(rng, os.path.join(casedir, f), 1)]
    return out
