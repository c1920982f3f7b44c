#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
"""Differential tester: qcow2map against the installed qemu.

  difftest.py run --seed S --cases N [--first I] [--jobs J] [--out DIR]
      mutate N cases (S:I .. S:I+N-1) of the seed images and judge each;
      prints one line per case that is not equal/both-refuse, then the
      counts per class; exit 1 if any case is stricter, more-lenient,
      differs, crash or hang.
  difftest.py judge CASEDIR
      judge the images of one case directory (as kept by "run"; its
      repro.sh calls this); prints the verdict.
  difftest.py case S I [--out DIR]
      make and judge case I of seed S alone, keeping its directory.

Environment: DIFFTEST_PLUGIN, DIFFTEST_FILTER (the .so files under test),
DIFFTEST_NBDKIT, DIFFTEST_QEMU_NBD, DIFFTEST_QEMU_IMG (commands; the
class test replaces them by broken wrappers), DIFFTEST_SEEDS (the seed
image directory, made by make-seeds.sh), DIFFTEST_TIMEOUT (seconds per
external command, default 20).

Classes (README.md): equal, both-refuse, stricter, more-lenient,
differs, crash, hang; qemu-failed (qemu itself hung or crashed) is
reported and not counted.
"""

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mutate  # noqa: E402

import nbd  # noqa: E402  (python3-libnbd)

HERE = os.path.dirname(os.path.abspath(__file__))
CLASSES = ["equal", "both-refuse", "stricter", "more-lenient", "differs",
           "crash", "hang", "qemu-failed"]
BAD = {"stricter", "more-lenient", "differs", "crash", "hang"}
PASSPHRASE = "difftest"
TIMEOUT = float(os.environ.get("DIFFTEST_TIMEOUT", "20"))
READ_CHUNK = 1 << 20          # bytes compared per read
MAX_FULL_READ = 64 << 20      # larger disks: only where either side maps data
MAX_EXTENTS = 100000
# Quick judging (CI, long runs): acceptance, size, bytes, base:allocation
# and depth from one qemu-nbd and one nbdkit; no map.json, file/N.json,
# snapshot or bitmap exports.
QUICK = os.environ.get("DIFFTEST_QUICK") == "1"


def env_cmd(var, default):
    return os.environ.get(var, default).split()


class Hang(Exception):
    pass


class Verdict(Exception):
    """Ends the judging of a case with CLASS and a reason."""
    def __init__(self, cls, why):
        super().__init__(why)
        self.cls, self.why = cls, why


# ------------------------------------------------------------ processes
def run(cmd, cwd, timeout=None, side="qemu"):
    """Run CMD in CWD; (rc, stdout, stderr).  A timeout or a death by
    signal raises Verdict (hang/crash for our side, qemu-failed for
    qemu's)."""
    try:
        p = subprocess.run(cmd, cwd=cwd, capture_output=True,
                           timeout=timeout or TIMEOUT)
    except subprocess.TimeoutExpired:
        raise Verdict("hang" if side == "ours" else "qemu-failed",
                      "%s: timeout after %ss" % (" ".join(cmd[:2]), timeout or TIMEOUT))
    err = p.stderr.decode("utf-8", "replace")
    if p.returncode < 0 or p.returncode >= 128 or "AddressSanitizer" in err \
            or "runtime error:" in err:
        raise Verdict("crash" if side == "ours" else "qemu-failed",
                      "%s: exit %d: %s" % (" ".join(cmd[:2]), p.returncode, err[-400:]))
    return p.returncode, p.stdout, err


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            st = f.read().rsplit(")", 1)[1].split()[0]
        return st not in ("Z", "X")
    except (OSError, IndexError):
        return False


def kill_pid(pid):
    """Stop the process PID (one we started), escalating to SIGKILL."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    for _ in range(100):
        if not alive(pid):
            return
        time.sleep(0.02)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def kill_by_arg(arg):
    """Stop the processes that have ARG (a socket path unique to this
    case) among their arguments: a qemu-nbd that daemonized before it
    wrote its pid file."""
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % d, "rb") as f:
                args = f.read().split(b"\0")
        except OSError:
            continue
        if arg.encode() in args:
            kill_pid(int(d))


# ------------------------------------------------------------ NBD client
class Client:
    """A libnbd handle on one export, every call bounded by a deadline
    (a server that stops answering is a hang, not a stuck tester)."""
    def __init__(self, sock, export, contexts, side):
        self.side, self.args = side, (sock, export, contexts)
        self.connect()

    def revive(self):
        """qemu-nbd drops the connection after some failed reads (e.g.
        of a corrupt compressed cluster): connect again."""
        if self.h.aio_is_dead() or self.h.aio_is_closed():
            try:
                self.connect()
            except nbd.Error as e:
                raise Verdict("crash" if self.side == "ours" else "qemu-failed",
                              "%s: connection lost, server gone (%s)" % (self.side, e))

    def connect(self):
        sock, export, contexts = self.args
        self.h = nbd.NBD()
        for c in contexts:
            self.h.add_meta_context(c)
        self.h.set_export_name(export)
        self.h.aio_connect_unix(sock)
        self._wait(lambda: not self.h.aio_is_connecting(), "connect")
        if not self.h.aio_is_ready():
            raise nbd.Error("connect failed: " + (nbd.NBD.get_error() or "?"), 0)

    def _wait(self, done, what):
        deadline = time.monotonic() + TIMEOUT
        while not done():
            if self.h.aio_is_dead() or self.h.aio_is_closed():
                raise Verdict("crash" if self.side == "ours" else "qemu-failed",
                              "%s: connection died during %s" % (self.side, what))
            if time.monotonic() > deadline:
                raise Verdict("hang" if self.side == "ours" else "qemu-failed",
                              "%s: no answer to %s in %ss" % (self.side, what, TIMEOUT))
            self.h.poll(100)

    def size(self):
        return self.h.get_size()

    def pread(self, off, n):
        buf = nbd.Buffer(n)
        c = self.h.aio_pread(buf, off)
        self._wait(lambda: self.h.aio_command_completed(c), "read at %d" % off)
        return buf.to_bytearray()

    def block_status(self, ctx, off, n):
        """[(offset, length, flags)] of context CTX from OFF (one request)."""
        out = []

        def cb(metacontext, offset, entries, err):
            if metacontext == ctx:
                o = offset
                for i in range(0, len(entries), 2):
                    out.append((o, entries[i], entries[i + 1]))
                    o += entries[i]
            return 0
        c = self.h.aio_block_status(n, off, cb)
        self._wait(lambda: self.h.aio_command_completed(c), "block status at %d" % off)
        return out

    def close(self):
        if not hasattr(self, "h"):
            return
        try:
            self.h.shutdown()
        except nbd.Error:
            pass
        del self.h


def full_map(cl, ctx, size):
    """The merged map of CTX: [(offset, length, value)], ending with
    (offset, 0, "fails") where a block status request fails."""
    out, off = [], 0
    while off < size:
        try:
            ext = cl.block_status(ctx, off, min(size - off, 1 << 30))
        except nbd.Error:
            cl.revive()
            out.append((off, 0, "fails"))
            break
        if not ext:
            raise Verdict("differs", "%s: empty block status reply at %d" % (cl.side, off))
        for o, n, v in ext:
            n = min(n, size - o)
            if out and out[-1][2] == v and out[-1][0] + out[-1][1] == o:
                out[-1] = (out[-1][0], out[-1][1] + n, v)
            else:
                out.append((o, n, v))
            off = o + n
        if len(out) > MAX_EXTENTS:
            break
    return out


def read_ranges(cl, ranges):
    """Read RANGES [(off, len)] in chunks: {chunk offset: sha256 or
    None}, and the failing sectors as merged (off, len) ranges (a
    failing chunk is re-read 64 KiB, then 512 bytes at a time)."""
    hashes, bad = {}, []

    def fail_range(o, n):
        if bad and bad[-1][0] + bad[-1][1] == o:
            bad[-1] = (bad[-1][0], bad[-1][1] + n)
        else:
            bad.append((o, n))

    def read(o, n, steps):
        try:
            return cl.pread(o, n)
        except nbd.Error:
            cl.revive()
            if not steps:
                fail_range(o, n)
                return None
            parts = []
            for p in range(o, o + n, steps[0]):
                parts.append(read(p, min(steps[0], o + n - p), steps[1:]))
            return None if any(x is None for x in parts) else b"".join(parts)
    for off, length in ranges:
        for o in range(off, off + length, READ_CHUNK):
            n = min(READ_CHUNK, off + length - o)
            d = read(o, n, [65536, 512])
            hashes[o] = hashlib.sha256(d).hexdigest() if d is not None else None
    return hashes, bad


# ------------------------------------------------------------ the sides
class Case:
    def __init__(self, casedir):
        self.dir = casedir
        with open(os.path.join(casedir, "case.json")) as f:
            self.meta = json.load(f)
        self.top = self.meta.get("top", "top.qcow2")
        self.luks = self.meta.get("luks", False)
        self.notes = []
        self.qemu_msg = self.ours_msg = ""
        self.pids = []
        self.clients = []
        self.sockets = []

    # qemu's way of naming the image (json: filename for LUKS).
    def qemu_image(self):
        if self.luks:
            return ["--object", "secret,id=s0,data=" + PASSPHRASE, "--image-opts",
                    "driver=qcow2,file.filename=%s,encrypt.key-secret=s0" % self.top]
        return ["-f", "qcow2", self.top]

    def qemu_img(self, *args, image=None):
        return env_cmd("DIFFTEST_QEMU_IMG", "qemu-img") + list(args) + \
            (image if image is not None else self.qemu_image())

    def start_qemu_nbd(self, sockdir, extra=()):
        sock = os.path.join(sockdir, "q%d.sock" % len(self.pids))
        pidf = sock + ".pid"
        cmd = env_cmd("DIFFTEST_QEMU_NBD", "qemu-nbd") + \
            ["-r", "-t", "-e", "0", "-A", "--fork", "--pid-file=" + pidf,
             "--socket=" + sock] + list(extra) + self.qemu_image()
        self.sockets.append(sock)
        try:
            rc, _, err = run(cmd, self.dir, side="qemu")
        except Verdict:
            # The daemonized server may still be opening the image (no
            # pid file yet): find it by its own socket argument.
            kill_by_arg("--socket=" + sock)
            raise
        pid = _read_pid(pidf)
        if pid:
            self.pids.append(pid)
        if rc != 0 and not (pid and alive(pid) and "warning:" in err):
            if pid:
                kill_pid(pid)
            return None, err.strip()
        return sock, err.strip()

    def start_ours(self, sockdir):
        sock = os.path.join(sockdir, "o.sock")
        pidf = sock + ".pid"
        plugin = os.environ["DIFFTEST_PLUGIN"]
        filt = os.environ["DIFFTEST_FILTER"]
        cmd = env_cmd("DIFFTEST_NBDKIT", "nbdkit") + \
            ["-f", "-U", sock, "-P", pidf, "--filter=" + filt, plugin,
             "file=" + self.top]
        if self.luks:
            cmd.append("passphrase=" + PASSPHRASE)
        env = dict(os.environ, ASAN_OPTIONS="abort_on_error=1:detect_leaks=0",
                   P11_KIT_DEBUG="none")
        self.errf = open(os.path.join(self.dir, "ours.stderr"), "w+b")
        p = subprocess.Popen(cmd, cwd=self.dir, stdout=subprocess.DEVNULL,
                             stderr=self.errf, env=env)
        self.ours_proc = p
        deadline = time.monotonic() + TIMEOUT
        while True:
            rc = p.poll()
            if rc is not None:
                msg = self.ours_stderr()
                if rc < 0 or rc >= 128 or "Sanitizer" in msg:
                    raise Verdict("crash", "ours: nbdkit exit %d at startup: %s" % (rc, msg[-400:]))
                return None, msg
            if os.path.exists(sock) and _read_pid(pidf):
                return sock, ""
            if time.monotonic() > deadline:
                raise Verdict("hang", "ours: nbdkit not ready after %ss" % TIMEOUT)
            time.sleep(0.01)

    def ours_stderr(self):
        self.errf.flush()
        self.errf.seek(0)
        return self.errf.read().decode("utf-8", "replace").strip()

    def stop(self):
        for cl in self.clients:
            cl.close()
        self.clients = []
        for pid in self.pids:
            kill_pid(pid)
        for sock in self.sockets:
            kill_by_arg("--socket=" + sock)
        p = getattr(self, "ours_proc", None)
        if p is not None and p.poll() is None:
            p.terminate()
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def ours_died(self):
        """After the comparisons: nbdkit must still run (a crash while
        serving is a crash even if the client saw only an error)."""
        p = self.ours_proc
        rc = p.poll()
        msg = self.ours_stderr()
        if rc is not None or "Sanitizer" in msg or "runtime error:" in msg:
            raise Verdict("crash", "ours: nbdkit exit %s while serving: %s" % (rc, msg[-400:]))


def _read_pid(pidf):
    try:
        with open(pidf) as f:
            return int(f.read().strip() or 0)
    except (OSError, ValueError):
        return 0


# ------------------------------------------------------------ judging
def judge(casedir):
    """Judge one case: returns (class, reason, notes)."""
    case = Case(casedir)
    sockdir = tempfile.mkdtemp(prefix="dt", dir="/tmp")
    try:
        try:
            _judge(case, sockdir)
            cls, why = "equal", ""
        except Verdict as v:
            cls, why = v.cls, v.why
        except Exception:
            cls, why = "differs", "tester error: " + traceback.format_exc()[-800:]
    finally:
        case.stop()
        shutil.rmtree(sockdir, ignore_errors=True)
    if hasattr(case, "errf"):
        case.ours_msg = case.ours_stderr()
        case.errf.close()
    with open(os.path.join(casedir, "verdict.json"), "w") as f:
        json.dump({"class": cls, "why": why, "notes": case.notes,
                   "qemu": case.qemu_msg, "ours": case.ours_msg}, f, indent=1)
    return cls, why, case.notes


def _judge(case, sockdir):
    qsock, qerr = case.start_qemu_nbd(sockdir)
    case.qemu_msg = qerr
    osock, oerr = case.start_ours(sockdir)
    case.ours_msg = oerr
    q = o = None
    if qsock:
        try:
            q = Client(qsock, "", ["base:allocation", "qemu:allocation-depth"], "qemu")
            case.clients.append(q)
        except nbd.Error as e:
            qsock, case.qemu_msg = None, "qemu-nbd: %s" % e
    if osock:
        try:
            o = Client(osock, "", ["base:allocation"], "ours")
            case.clients.append(o)
        except nbd.Error as e:
            try:
                rc = case.ours_proc.wait(1)
            except subprocess.TimeoutExpired:
                rc = None
            if rc is not None and (rc < 0 or rc >= 128):
                raise Verdict("crash", "ours: nbdkit exit %d: %s" % (rc, case.ours_stderr()[-400:]))
            osock, case.ours_msg = None, (case.ours_stderr() or str(e))
    if not qsock and not osock:
        raise Verdict("both-refuse", "")
    if not qsock:
        raise Verdict("more-lenient", "qemu refuses: " + case.qemu_msg.splitlines()[-1])
    if not osock:
        raise Verdict("stricter", "we refuse: " + (case.ours_msg.splitlines() or ["?"])[-1])
    try:
        _compare(case, q, o, osock, sockdir)
    except Verdict as v:
        # A request that failed, or a connection refused, because our
        # server died is a crash, whatever the comparison then saw.
        if v.cls in ("stricter", "more-lenient", "differs"):
            case.ours_died()
        raise


def _compare(case, q, o, osock, sockdir):
    size_q, size_o = q.size(), o.size()
    if size_q != size_o:
        raise Verdict("differs", "size: qemu %d, ours %d" % (size_q, size_o))
    compare_guest(case, q, o, size_q)
    compare_depth(case, q, o, osock, size_q)
    if QUICK:
        case.ours_died()
        return
    compare_map_json(case, osock)
    qemu_chain(case)
    compare_check(case, osock)
    compare_snapshots(case, osock, sockdir)
    compare_bitmaps(case, osock, sockdir)
    case.ours_died()


def compare_guest(case, q, o, size):
    mq = full_map(q, "base:allocation", size)
    mo = full_map(o, "base:allocation", size)
    compare_maps("base:allocation", mq, mo)
    if mq != mo:
        raise Verdict("differs", "base:allocation: first difference %s" % _first_diff(mq, mo))
    if size <= MAX_FULL_READ:
        ranges = [(0, size)]
    else:
        ranges = [(a, n) for a, n, v in mq if isinstance(v, int) and not v & 2][:1000]
        case.notes.append("disk of %d bytes: read only the %d non-zero extents" % (size, len(ranges)))
    hq, bq = read_ranges(q, ranges)
    ho, bo = read_ranges(o, ranges)
    compare_reads("guest bytes", hq, bq, ho, bo)
    # Our zero extents read as zeros (a contradiction is a defect even
    # where qemu agrees on the map).
    for a, n, v in mo:
        if isinstance(v, int) and v & 2 and n <= READ_CHUNK and a + n <= size:
            try:
                if o.pread(a, n).strip(b"\0"):
                    raise Verdict("differs", "ours: zero extent at %d reads non-zero" % a)
            except nbd.Error:
                o.revive()


def compare_maps(what, mq, mo):
    """Maps that fail: where each side's first failure is."""
    fq = mq[-1][0] if mq and mq[-1][2] == "fails" else None
    fo = mo[-1][0] if mo and mo[-1][2] == "fails" else None
    if fq is None and fo is None or mq == mo:
        return
    if fq is None or (fo is not None and fo < fq):
        raise Verdict("stricter", "%s fails at %d (qemu: %s)" % (what, fo, fq))
    if fo is None or fq < fo:
        raise Verdict("more-lenient", "%s: qemu fails at %d (ours: %s)" % (what, fq, fo))
    raise Verdict("differs", "%s: first difference %s" % (what, _first_diff(mq, mo)))


def compare_reads(what, hq, bq, ho, bo):
    if bq or bo:
        if bq == bo:
            pass
        elif _covers(bo, bq):
            raise Verdict("stricter", "%s: reads fail at %s (qemu: %s)" % (what, bo[:4], bq[:4]))
        elif _covers(bq, bo):
            raise Verdict("more-lenient", "%s: reads fail at %s (ours: %s)" % (what, bq[:4], bo[:4]))
        else:
            raise Verdict("differs", "%s: reads fail, qemu at %s, ours at %s" % (what, bq[:4], bo[:4]))
    for off in sorted(hq):
        if hq[off] is not None and ho.get(off) is not None and hq[off] != ho[off]:
            raise Verdict("differs", "%s differ in the 1 MiB at %d" % (what, off))


def _covers(a, b):
    """Every byte of ranges B lies in ranges A (and A is larger)."""
    def expand(r):
        return set((o + i) // 512 for o, n in r for i in range(0, n, 512))
    ea, eb = expand(a), expand(b)
    return eb <= ea and ea != eb


def _first_diff(a, b):
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return "qemu %s, ours %s" % (x, y)
    return "qemu %d extents, ours %d" % (len(a), len(b))


def read_export(sock, name, side="ours"):
    cl = Client(sock, name, [], side)
    try:
        n = cl.size()
        if n > 256 << 20:
            raise Verdict("differs", "%s: export %s of %d bytes" % (side, name, n))
        return bytes(cl.pread(0, n)) if n else b""
    finally:
        cl.close()


def compare_depth(case, q, o, osock, size):
    mq = full_map(q, "qemu:allocation-depth", size)
    try:
        d = json.loads(read_export(osock, "depth.json"))
    except nbd.Error as e:
        if mq and mq[-1][2] == "fails":
            case.notes.append("depth: both fail")
            return
        raise Verdict("stricter", "depth.json fails: %s" % e)
    mo = []
    for e in d:
        if mo and mo[-1][2] == e["type"] and mo[-1][0] + mo[-1][1] == e["offset"]:
            mo[-1] = (mo[-1][0], mo[-1][1] + e["length"], e["type"])
        else:
            mo.append((e["offset"], e["length"], e["type"]))
    compare_maps("depth", mq, mo)
    if mq != mo:
        raise Verdict("differs", "depth: first difference %s" % _first_diff(mq, mo))


def _norm_map_json(text):
    """qemu 8.2 added "compressed" and splits extents on it: drop it and
    merge what then becomes contiguous and equal (as the tests do)."""
    out = []
    for e in json.loads(text):
        e.pop("compressed", None)
        if out:
            p = out[-1]
            same = all(p.get(k) == e.get(k) for k in e if k not in ("start", "length", "offset"))
            contiguous = p["start"] + p["length"] == e["start"] and \
                (("offset" in p) == ("offset" in e)) and \
                ("offset" not in p or p["offset"] + p["length"] == e["offset"])
            if same and contiguous and set(p) == set(e):
                p["length"] += e["length"]
                continue
        out.append(e)
    return out


def compare_map_json(case, osock):
    rc, out, err = run(case.qemu_img("map", "--output=json"), case.dir)
    try:
        ours = read_export(osock, "map.json")
    except nbd.Error as e:
        if rc != 0:
            case.notes.append("map.json: both fail")
            return
        raise Verdict("stricter", "map.json fails: %s (qemu-img map succeeds)" % e)
    if rc != 0:
        raise Verdict("more-lenient", "qemu-img map fails: %s" % err.strip()[-200:])
    ours = ours.decode().rstrip(" \n") + "\n"
    if out.decode() == ours:
        return
    # map.json is qemu >= 8.2's format: byte for byte with such a qemu;
    # with an older one (no "compressed" field), equal once the field is
    # dropped and the entries it split are merged (as the tests do).
    if b'"compressed"' not in out and _norm_map_json(out) == _norm_map_json(ours):
        case.notes.append("map.json equal after dropping qemu 8.2's \"compressed\"")
        return
    raise Verdict("differs", "map.json differs from qemu-img map")


CHECK_KEYS = ["leaks", "corruptions", "allocated-clusters", "total-clusters",
              "image-end-offset", "compressed-clusters"]


def compare_check(case, osock):
    """file/N.json's counts against qemu-img check of each qcow2 layer of
    the chain qemu opens."""
    for n, layer in enumerate(case.chain, 1):
        if layer.get("format") != "qcow2":
            continue
        f = layer["filename"]
        image = case.qemu_image() if n == 1 else ["-f", "qcow2", f]
        rc, out, err = run(case.qemu_img("check", "--output=json", image=image), case.dir)
        try:
            j = json.loads(out) if out.strip() else None
        except ValueError:
            j = None
        try:
            ours = json.loads(read_export(osock, "file/%d.json" % n))
        except nbd.Error as e:
            if j is None or j.get("check-errors", 0):
                continue            # neither checks this layer in full
            raise Verdict("stricter", "file/%d.json fails: %s (qemu-img check: exit %d)" % (n, e, rc))
        if j is None:
            case.notes.append("file/%d.json: qemu-img check gave no JSON (exit %d): not compared" % (n, rc))
            continue
        if j.get("check-errors", 0):
            case.notes.append("file/%d.json: qemu-img check had %d check errors: counts not compared"
                              % (n, j["check-errors"]))
            continue
        for k in CHECK_KEYS:
            if j.get(k, 0) != ours.get("check", {}).get(k):
                raise Verdict("differs", "file/%d.json check.%s = %s, qemu-img check %s"
                              % (n, k, ours.get("check", {}).get(k), j.get(k, 0)))


def _exports(osock):
    """Our export names (a name that is not UTF-8 is left out: libnbd's
    Python binding cannot decode it, and no NBD client may see one)."""
    h = nbd.NBD()
    h.set_opt_mode(True)
    h.connect_unix(osock)
    names = []
    h.opt_list(lambda name, desc: names.append(name) or 0)
    h.opt_abort()
    return names


def qemu_chain(case):
    """qemu-img info --backing-chain: the layers as qemu opens them."""
    rc, out, err = run(case.qemu_img("info", "--backing-chain", "--output=json"), case.dir)
    if rc != 0:
        case.notes.append("qemu-img info fails (%s): check counts, snapshots and bitmaps "
                          "not compared" % err.strip()[-200:])
        case.chain, case.info = [], {}
    else:
        case.chain = json.loads(out.decode("utf-8", "replace"))
        case.info = case.chain[0]


def compare_snapshots(case, osock, sockdir):
    info = case.info
    snaps = info.get("snapshots", [])
    exports = _exports(osock)
    case.exports = exports
    want = set()
    for k, s in enumerate(snaps):
        # The plugin's listing (its man page): the name of the first
        # snapshot with that name, else the id of the first with that
        # id; names and ids that are not UTF-8 (qemu prints U+FFFD)
        # cannot be NBD export names.
        first_name = [x["name"] for x in snaps].index(s["name"]) == k
        first_id = [x["id"] for x in snaps].index(s["id"]) == k
        if s["name"] and "\ufffd" not in s["name"] and first_name:
            exp = "snapshot/" + s["name"]
            spec = "snapshot.name=" + s["name"].replace(",", ",,")
        elif s["id"] and "\ufffd" not in s["id"] and first_id:
            exp = "snapshot-id/" + s["id"]
            spec = "snapshot.id=" + s["id"].replace(",", ",,")
        else:
            case.notes.append("snapshot %d (id %r, name %r): no export name reaches it"
                              % (k, s["id"], s["name"]))
            continue
        raw = os.path.join(case.dir, "snap.raw")
        rc, _, err = run(case.qemu_img("convert", "-l", spec, "-O", "raw",
                                       image=case.qemu_image() + [raw]), case.dir)
        if exp not in exports:
            # not listed: a snapshot qemu cannot load (man page)
            if rc != 0:
                case.notes.append("%s: not listed, qemu cannot load it either" % exp)
                continue
            raise Verdict("stricter", "%s not listed (qemu-img convert -l %s reads it)"
                          % (exp, spec))
        want.add(exp)
        try:
            ours = read_export(osock, exp)
        except nbd.Error as e:
            if rc != 0:
                continue
            raise Verdict("stricter", "%s fails: %s" % (exp, e))
        if rc != 0:
            raise Verdict("more-lenient", "qemu-img convert -l %s fails: %s" % (spec, err.strip()[-200:]))
        with open(raw, "rb") as f:
            ref = f.read()
        os.unlink(raw)
        if ref != ours:
            raise Verdict("differs", "%s bytes differ from qemu-img convert -l" % exp)
    extra = {e for e in exports if e.startswith("snapshot")} - want
    if extra:
        raise Verdict("differs", "snapshot exports qemu does not have: %s" % sorted(extra))


def compare_bitmaps(case, osock, sockdir):
    info = getattr(case, "info", {})
    fs = info.get("format-specific", {}).get("data", {})
    bitmaps = fs.get("bitmaps", [])
    exports = getattr(case, "exports", None) or _exports(osock)
    for b in bitmaps:
        name = b["name"]
        exp = "bitmap/%s.json" % name
        usable = "in-use" not in b.get("flags", [])
        sock, err = case.start_qemu_nbd(sockdir, ["-B", name])
        if not sock:
            if exp in exports:
                raise Verdict("more-lenient", "qemu-nbd -B %s refuses (%s), we serve %s"
                              % (name, err.splitlines()[-1] if err else "?", exp))
            continue
        q = Client(sock, "", ["qemu:dirty-bitmap:" + name], "qemu")
        try:
            mq = full_map(q, "qemu:dirty-bitmap:" + name, q.size())
        finally:
            q.close()
        if exp not in exports:
            if mq and mq[-1][2] == "fails":
                case.notes.append("%s: not listed; qemu-nbd -B starts but fails its block status"
                                  % exp)
                continue
            raise Verdict("stricter", "%s not served (qemu-nbd -B serves it; %s)"
                          % (exp, "usable" if usable else "in use"))
        mo = []
        for e in json.loads(read_export(osock, exp)):
            if mo and mo[-1][2] == e["type"] and mo[-1][0] + mo[-1][1] == e["offset"]:
                mo[-1] = (mo[-1][0], mo[-1][1] + e["length"], e["type"])
            else:
                mo.append((e["offset"], e["length"], e["type"]))
        compare_maps(exp, mq, mo)
        if mq != mo:
            raise Verdict("differs", "%s: first difference %s" % (exp, _first_diff(mq, mo)))
    extra = {e for e in exports if e.startswith("bitmap/") and e.endswith(".json")} - \
        {"bitmap/%s.json" % b["name"] for b in bitmaps}
    if extra:
        raise Verdict("more-lenient", "bitmap exports qemu does not list: %s" % sorted(extra))


# ------------------------------------------------------------ cases
def seeds_dir():
    return os.environ["DIFFTEST_SEEDS"]


def seed_files(seed):
    d = os.path.join(seeds_dir(), seed)
    files = {}
    for f in sorted(os.listdir(d)):
        with open(os.path.join(d, f), "rb") as fh:
            files[f] = "qcow2" if fh.read(4) == b"QFI\xfb" else "raw"
    return files


def make_case(seed, index, out):
    """Copy a seed image set to OUT/case-SEED-INDEX and mutate it."""
    names = open(os.path.join(seeds_dir(), "seeds.list")).read().split()
    import random
    rng = random.Random("pick:%s:%d" % (seed, index))
    name = rng.choice(names)
    casedir = os.path.join(out, "case-%s-%d" % (seed, index))
    shutil.rmtree(casedir, ignore_errors=True)
    os.makedirs(casedir)
    files = seed_files(name)
    for f in files:
        subprocess.run(["cp", "--sparse=always", os.path.join(seeds_dir(), name, f),
                        casedir], check=True)
    layers = [f for f in ("top.qcow2", "mid.qcow2", "base.qcow2", "base.raw") if f in files]
    meta = {"seed": seed, "index": index, "seed_image": name, "top": "top.qcow2",
            "files": files, "layers": layers, "luks": name == "luks"}
    meta["mutations"] = mutate.mutate_case(seed, index, casedir, files)
    with open(os.path.join(casedir, "case.json"), "w") as f:
        json.dump(meta, f, indent=1)
    return casedir


def write_repro(casedir, cls, why):
    meta = json.load(open(os.path.join(casedir, "case.json")))
    script = """#!/bin/sh
# difftest case %(seed)s:%(index)d (seed image %(seed_image)s): %(cls)s
#   %(why)s
# Mutations:
%(muts)s
# Re-judge these images (qemu's and our messages in verdict.json):
#   DIFFTEST_PLUGIN=... DIFFTEST_FILTER=... sh repro.sh
# By hand, from this directory:
#   qemu-nbd -r -A -f qcow2 -t --socket=/tmp/q.sock top.qcow2 &
#   nbdkit -U - --filter=depth qcow2map file=top.qcow2 --run 'nbdinfo --map "$uri"'
cd "$(dirname "$0")" && exec /usr/bin/python3 %(tool)s judge "$PWD"
""" % dict(meta, cls=cls, why=why.replace("\n", " ")[:300],
           muts="\n".join("#   " + m for m in meta["mutations"]),
           tool=os.path.abspath(__file__))
    p = os.path.join(casedir, "repro.sh")
    with open(p, "w") as f:
        f.write(script)
    os.chmod(p, 0o755)


def run_one(args):
    seed, index, out = args
    casedir = os.path.join(out, "case-%s-%d" % (seed, index))
    try:
        casedir = make_case(seed, index, out)
        cls, why, notes = judge(casedir)
    except Exception:
        # Never hidden: a tester error counts as "differs" (and fails).
        cls, why = "differs", "tester error: " + traceback.format_exc()[-600:]
    if cls in ("equal", "both-refuse"):
        shutil.rmtree(casedir, ignore_errors=True)
    elif os.path.exists(os.path.join(casedir, "case.json")):
        write_repro(casedir, cls, why)
    meta = json.load(open(os.path.join(casedir, "case.json"))) \
        if os.path.isdir(casedir) else None
    return index, cls, why, meta


def cmd_run(argv):
    import argparse
    import multiprocessing
    ap = argparse.ArgumentParser(prog="difftest.py run")
    ap.add_argument("--seed", required=True)
    ap.add_argument("--cases", type=int, default=300)
    ap.add_argument("--first", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--out", default="difftest-out")
    a = ap.parse_args(argv)
    os.makedirs(a.out, exist_ok=True)
    counts = {c: 0 for c in CLASSES}
    t0 = time.time()
    work = [(a.seed, i, a.out) for i in range(a.first, a.first + a.cases)]
    log = open(os.path.join(a.out, "results-%s.txt" % a.seed), "a")
    with multiprocessing.Pool(a.jobs) as pool:
        for index, cls, why, meta in pool.imap_unordered(run_one, work):
            counts[cls] += 1
            log.write("%s %d %s %s\n" % (a.seed, index, cls, why.replace("\n", " ")[:300]))
            log.flush()
            if cls not in ("equal", "both-refuse"):
                print("case %s:%d %s (%s): %s" % (a.seed, index, cls,
                                                  meta["seed_image"] if meta else "?",
                                                  why.replace("\n", " ")[:300]), flush=True)
    dt = time.time() - t0
    print("seed %s: %d cases in %.0f s (%.1f cases/s): %s" % (
        a.seed, a.cases, dt, a.cases / dt,
        ", ".join("%s %d" % (c, counts[c]) for c in CLASSES)), flush=True)
    return 1 if any(counts[c] for c in BAD) else 0


def main():
    if len(sys.argv) >= 2 and sys.argv[1] == "run":
        return cmd_run(sys.argv[2:])
    if len(sys.argv) == 3 and sys.argv[1] == "judge":
        cls, why, notes = judge(os.path.abspath(sys.argv[2]))
        print("%s%s" % (cls, ": " + why if why else ""))
        for n in notes:
            print("  note: " + n)
        return 0 if cls in ("equal", "both-refuse", "qemu-failed") else 1
    if len(sys.argv) >= 4 and sys.argv[1] == "case":
        out = sys.argv[5] if len(sys.argv) >= 6 and sys.argv[4] == "--out" else "difftest-out"
        casedir = make_case(sys.argv[2], int(sys.argv[3]), out)
        cls, why, notes = judge(casedir)
        write_repro(casedir, cls, why)
        print("%s: %s%s" % (casedir, cls, ": " + why if why else ""))
        return 0 if cls in ("equal", "both-refuse", "qemu-failed") else 1
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
