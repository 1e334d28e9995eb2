"""A small raw NFSv4 COMPOUND client for protocol tests: XDR packing of the operations the
tests send and parsing of their results. RPC framing as in nfs_support (record marks, AUTH_SYS)."""

import os
import socket
import struct

from nfs_support import read_record, record, rpc_call

# Operation numbers.
ACCESS, CLOSE, COMMIT, CREATE, GETATTR, GETFH, LINK, LOCK, LOCKT, LOCKU, LOOKUP, LOOKUPP = 3, 4, 5, 6, 9, 10, 11, 12, 13, 14, 15, 16
OPEN, OPEN_CONFIRM, PUTFH, PUTROOTFH, READ, READDIR, REMOVE, RENAME, RENEW = 18, 20, 22, 24, 25, 26, 28, 29, 30
RESTOREFH, SAVEFH, SETATTR, SETCLIENTID, SETCLIENTID_CONFIRM, WRITE = 31, 32, 34, 35, 36, 38
EXCHANGE_ID, CREATE_SESSION, DESTROY_SESSION, FREE_STATEID, SEQUENCE, TEST_STATEID = 42, 43, 44, 45, 53, 55
DESTROY_CLIENTID, RECLAIM_COMPLETE = 57, 58

# Status codes.
OK, NOENT, ACCESS_ERR, EXIST, ISDIR, INVAL, ROFS = 0, 2, 13, 17, 21, 22, 30
DENIED, SHARE_DENIED, LOCKED, MINOR_VERS_MISMATCH, STALE_CLIENTID = 10010, 10015, 10012, 10021, 10022
BAD_STATEID, BAD_SEQID, OLD_STATEID, OP_ILLEGAL, NOFILEHANDLE, LOCKS_HELD, OPENMODE = 10025, 10026, 10024, 10044, 10020, 10037, 10038
BADSESSION, SEQ_MISORDERED, OP_NOT_IN_SESSION, RETRY_UNCACHED_REP, BADSLOT = 10052, 10063, 10071, 10068, 10053
EXPIRED, GRACE, NO_GRACE = 10011, 10013, 10033
SAME, NOT_SAME, NOTEMPTY, SYMLINK = 10009, 10027, 66, 10029
NOXATTR = 10095

# Attribute numbers.
A_TYPE, A_CHANGE, A_SIZE, A_FSID, A_LEASE, A_FILEHANDLE, A_FILEID, A_MODE, A_NUMLINKS, A_OWNER, A_GROUP = 1, 3, 4, 8, 10, 19, 20, 33, 35, 36, 37
A_SUPPORTED, A_MOUNTED_ON_FILEID, A_TIME_MODIFY = 0, 55, 53

AUTH_SYS_ROOT = (1, struct.pack(">I", 1) + struct.pack(">I", 4) + b"test" + struct.pack(">III", 0, 0, 0))


class Packer:
    def __init__(self):
        self.parts = []

    def u32(self, v):
        self.parts.append(struct.pack(">I", v & 0xFFFFFFFF))
        return self

    def u64(self, v):
        self.parts.append(struct.pack(">Q", v & 0xFFFFFFFFFFFFFFFF))
        return self

    def fixed(self, data):
        self.parts.append(data + b"\0" * ((4 - len(data) % 4) % 4))
        return self

    def opaque(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.u32(len(data))
        return self.fixed(data)

    def bitmap(self, bits):
        words = [0] * (max(bits) // 32 + 1 if bits else 0)
        for b in bits:
            words[b // 32] |= 1 << (b % 32)
        self.u32(len(words))
        for w in words:
            self.u32(w)
        return self

    def bytes(self):
        return b"".join(self.parts)


class Unpacker:
    def __init__(self, data, offset=0):
        self.data = data
        self.offset = offset

    def u32(self):
        (v,) = struct.unpack_from(">I", self.data, self.offset)
        self.offset += 4
        return v

    def u64(self):
        (v,) = struct.unpack_from(">Q", self.data, self.offset)
        self.offset += 8
        return v

    def fixed(self, n):
        v = self.data[self.offset:self.offset + n]
        self.offset += (n + 3) & ~3
        return v

    def opaque(self):
        return self.fixed(self.u32())

    def bitmap(self):
        words = [self.u32() for _ in range(self.u32())]
        return {i * 32 + b for i, w in enumerate(words) for b in range(32) if w & (1 << b)}

    def stateid(self):
        return self.fixed(16)


# Builders: each returns (opnum, argument bytes).
def putrootfh(): return (PUTROOTFH, b"")
def getfh(): return (GETFH, b"")
def savefh(): return (SAVEFH, b"")
def restorefh(): return (RESTOREFH, b"")
def putfh(fh): return (PUTFH, Packer().opaque(fh).bytes())
def lookup(name): return (LOOKUP, Packer().opaque(name).bytes())
def getattr_(bits): return (GETATTR, Packer().bitmap(bits).bytes())
def remove(name): return (REMOVE, Packer().opaque(name).bytes())
def renew(clientid): return (RENEW, Packer().u64(clientid).bytes())
def commit(): return (COMMIT, Packer().u64(0).u32(0).bytes())
def free_stateid(sid): return (FREE_STATEID, Packer().fixed(sid).bytes())
def check_stateids(sids):
    p = Packer().u32(len(sids))
    for s in sids:
        p.fixed(s)
    return (TEST_STATEID, p.bytes())
def read(sid, offset, count): return (READ, Packer().fixed(sid).u64(offset).u32(count).bytes())
def write(sid, offset, data, stable=2): return (WRITE, Packer().fixed(sid).u64(offset).u32(stable).opaque(data).bytes())
def close(seqid, sid): return (CLOSE, Packer().u32(seqid).fixed(sid).bytes())
def create_dir(name, mode=0o755):
    return (CREATE, Packer().u32(2).opaque(name).bitmap([A_MODE]).opaque(struct.pack(">I", mode)).bytes())
def create_symlink(name, target):
    return (CREATE, Packer().u32(5).opaque(target).opaque(name).bitmap([]).opaque(b"").bytes())
def readlink(): return (27, b"")
def link(name): return (LINK, Packer().opaque(name).bytes())
def rename(old, new): return (RENAME, Packer().opaque(old).opaque(new).bytes())
def lookupp(): return (LOOKUPP, b"")
def access(bits=0x3F): return (ACCESS, Packer().u32(bits).bytes())
def setattr(sid, mode=None, size=None):
    bits, values = [], Packer()
    if size is not None:
        bits.append(A_SIZE); values.u64(size)
    if mode is not None:
        bits.append(A_MODE); values.u32(mode)
    return (SETATTR, Packer().fixed(sid).bitmap(bits).opaque(values.bytes()).bytes())
def verify(bits, values, negate=False): return (17 if negate else 37, Packer().bitmap(bits).opaque(values).bytes())
def getxattr(name): return (72, Packer().opaque(name).bytes())
def setxattr(name, value, option=0): return (73, Packer().u32(option).opaque(name).opaque(value).bytes())
def listxattrs(cookie=0, maxcount=4096): return (74, Packer().u64(cookie).u32(maxcount).bytes())
def removexattr(name): return (75, Packer().opaque(name).bytes())
def seek(sid, offset, what): return (69, Packer().fixed(sid).u64(offset).u32(what).bytes())
def open_downgrade(sid, seqid, access, deny): return (21, Packer().fixed(sid).u32(seqid).u32(access).u32(deny).bytes())
def open_confirm(sid, seqid): return (OPEN_CONFIRM, Packer().fixed(sid).u32(seqid).bytes())


def open_(name, owner, clientid=0, seqid=0, access=3, deny=0, create=True, how=0, verifier=b"\0" * 8, previous=False):
    p = Packer().u32(seqid).u32(access).u32(deny).u64(clientid).opaque(owner)
    if create:
        p.u32(1).u32(how)
        if how in (0, 1):
            p.bitmap([A_MODE]).opaque(struct.pack(">I", 0o644))
        else:
            p.fixed(verifier)
            if how == 3:
                p.bitmap([]).opaque(b"")
    else:
        p.u32(0)
    if previous:
        p.u32(1).u32(0)  # CLAIM_PREVIOUS, no delegation
    elif name is None:
        p.u32(4)  # CLAIM_FH
    else:
        p.u32(0).opaque(name)
    return (OPEN, p.bytes())


def lock(kind, offset, length, *, open_sid=None, open_seqid=0, lock_seqid=0, clientid=0, owner=b"lo", lock_sid=None):
    p = Packer().u32(kind).u32(0).u64(offset).u64(length)
    if open_sid is not None:
        p.u32(1).u32(open_seqid).fixed(open_sid).u32(lock_seqid).u64(clientid).opaque(owner)
    else:
        p.u32(0).fixed(lock_sid).u32(lock_seqid)
    return (LOCK, p.bytes())


def lockt(kind, offset, length, clientid, owner): return (LOCKT, Packer().u32(kind).u64(offset).u64(length).u64(clientid).opaque(owner).bytes())
def locku(kind, seqid, sid, offset, length): return (LOCKU, Packer().u32(kind).u32(seqid).fixed(sid).u64(offset).u64(length).bytes())


def sequence(sessionid, seqid, slot=0, cache=True):
    return (SEQUENCE, Packer().fixed(sessionid).u32(seqid).u32(slot).u32(slot).u32(1 if cache else 0).bytes())


def parse_result(op, u):
    """Parses one result body (after the status word, when OK) into a dict."""
    if op == GETFH:
        return {"fh": u.opaque()}
    if op == GETATTR:
        bits = u.bitmap()
        return {"bits": bits, "values": u.opaque()}
    if op in (OPEN,):
        sid = u.stateid()
        u.u32(); u.u64(); u.u64()
        rflags = u.u32()
        u.bitmap()
        deleg = u.u32()
        return {"stateid": sid, "rflags": rflags, "deleg": deleg}
    if op in (27, 72):
        return {"link" if op == 27 else "value": u.opaque()}
    if op == 74:
        cookie = u.u64()
        names = [u.opaque() for _ in range(u.u32())]
        return {"cookie": cookie, "names": names, "eof": bool(u.u32())}
    if op == 69:
        return {"eof": bool(u.u32()), "offset": u.u64()}
    if op in (73, 75):
        u.u32(); u.u64(); u.u64()
        return {}
    if op in (CLOSE, OPEN_CONFIRM, LOCK, LOCKU, 21):
        return {"stateid": u.stateid()}
    if op == READ:
        eof = u.u32()
        return {"eof": bool(eof), "data": u.opaque()}
    if op == WRITE:
        count, committed = u.u32(), u.u32()
        return {"count": count, "committed": committed, "verifier": u.fixed(8)}
    if op == COMMIT:
        return {"verifier": u.fixed(8)}
    if op == SETCLIENTID:
        return {"clientid": u.u64(), "verifier": u.fixed(8)}
    if op == EXCHANGE_ID:
        clientid, seq, flags = u.u64(), u.u32(), u.u32()
        u.u32(); u.u64(); u.opaque(); u.opaque()
        for _ in range(u.u32()):
            u.opaque(); u.opaque(); u.u64(); u.u32()
        return {"clientid": clientid, "sequence": seq, "flags": flags}
    if op == CREATE_SESSION:
        sid = u.fixed(16)
        seq, flags = u.u32(), u.u32()
        fore = [u.u32() for _ in range(6)]
        [u.u32() for _ in range(u.u32())]
        [u.u32() for _ in range(6)]
        [u.u32() for _ in range(u.u32())]
        return {"sessionid": sid, "sequence": seq, "fore": fore}
    if op == SEQUENCE:
        sid = u.fixed(16)
        return {"sessionid": sid, "seqid": u.u32(), "slot": u.u32(), "highest": u.u32(), "target": u.u32(), "flags": u.u32()}
    if op == TEST_STATEID:
        return {"statuses": [u.u32() for _ in range(u.u32())]}
    if op in (REMOVE, CREATE, LINK):
        u.u32(); u.u64(); u.u64()
        if op == CREATE:
            u.bitmap()
        return {}
    if op == RENAME:
        for _ in range(2):
            u.u32(); u.u64(); u.u64()
        return {}
    if op == SETATTR:
        return {"attrset": u.bitmap()}
    if op == ACCESS:
        return {"supported": u.u32(), "access": u.u32()}
    return {}


def parse_denied(u):
    offset, length, kind, clientid = u.u64(), u.u64(), u.u32(), u.u64()
    return {"offset": offset, "length": length, "type": kind, "clientid": clientid, "owner": u.opaque()}


class Reply:
    def __init__(self, raw):
        self.raw = raw
        u = Unpacker(raw)
        self.status = u.u32()
        self.tag = u.opaque()
        self.results = []
        for _ in range(u.u32()):
            op, status = u.u32(), u.u32()
            body = {}
            if status == OK:
                body = parse_result(op, u)
            elif status == DENIED and op in (LOCK, LOCKT):
                body = parse_denied(u)
            elif op == SETATTR:
                u.bitmap()
            self.results.append((op, status, body))

    def __getitem__(self, index):
        return self.results[index][2]

    def statuses(self):
        return [s for _, s, _ in self.results]


class NFS4:
    """One TCP connection speaking NFSv4 COMPOUNDs (AUTH_SYS root by default)."""

    def __init__(self, port, minor=1, auth=AUTH_SYS_ROOT):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.minor = minor
        self.auth = auth
        self.xid = 1000
        self.clientid = None
        self.sessionid = None
        self.seq = 0

    def close(self):
        self.sock.close()

    def raw_compound(self, ops, tag=b"", minor=None, xid=None):
        """Sends a COMPOUND; returns the RPC reply body (after the accepted-reply header)."""
        if xid is None:
            self.xid += 1
            xid = self.xid
        p = Packer().opaque(tag).u32(self.minor if minor is None else minor).u32(len(ops))
        for op, args in ops:
            p.u32(op)
            p.parts.append(args)
        flavor, cred = self.auth
        self.sock.sendall(record(rpc_call(xid, 100003, 4, 1, p.bytes(), cred_flavor=flavor, cred=cred)))
        reply = read_record(self.sock)
        assert reply is not None, "connection closed"
        xid_back, mtype, reply_stat, _, verf_len = struct.unpack_from(">IIIII", reply)
        assert (xid_back, mtype, reply_stat) == (xid, 1, 0)
        accept = struct.unpack_from(">I", reply, 20 + verf_len)[0]
        assert accept == 0, f"accept status {accept}"
        return reply[24 + verf_len:]

    def compound(self, ops, **kw):
        return Reply(self.raw_compound(ops, **kw))

    def seq_compound(self, ops, slot=0, cache=True, **kw):
        """A 4.1 compound preceded by SEQUENCE on slot 0 (the next sequence id)."""
        self.seq += 1
        return self.compound([sequence(self.sessionid, self.seq, slot, cache)] + ops, **kw)

    # Set-up helpers.
    def setclientid(self, name=None):
        name = name or os.urandom(8).hex().encode()
        p = Packer().fixed(os.urandom(8)).opaque(name).u32(0x40000000).opaque("tcp").opaque("127.0.0.1.0.0").u32(1)
        r = self.compound([(SETCLIENTID, p.bytes())], minor=0)
        assert r.status == OK, r.statuses()
        clientid, verifier = r[0]["clientid"], r[0]["verifier"]
        r = self.compound([(SETCLIENTID_CONFIRM, Packer().u64(clientid).fixed(verifier).bytes())], minor=0)
        assert r.status == OK, r.statuses()
        self.clientid = clientid
        return clientid

    def exchange_id(self, name=None, verifier=None):
        name = name or os.urandom(8).hex().encode()
        p = Packer().fixed(verifier or os.urandom(8)).opaque(name).u32(0).u32(0).u32(0)
        r = self.compound([(EXCHANGE_ID, p.bytes())])
        assert r.status == OK, r.statuses()
        return r[0]

    def create_session(self, clientid, sequence_id):
        attrs = Packer()
        for v in (0, 1 << 20, 1 << 20, 64 * 1024, 16, 8):
            attrs.u32(v)
        attrs.u32(0)
        back = Packer()
        for v in (0, 4096, 4096, 0, 2, 1):
            back.u32(v)
        back.u32(0)
        p = Packer().u64(clientid).u32(sequence_id).u32(0)
        p.parts += [attrs.bytes(), back.bytes()]
        p.u32(0x40000000).u32(1).u32(0)  # cb_program, one AUTH_NONE
        return self.compound([(CREATE_SESSION, p.bytes())])

    def session(self):
        """EXCHANGE_ID + CREATE_SESSION + RECLAIM_COMPLETE: ready for 4.1 compounds."""
        ex = self.exchange_id()
        r = self.create_session(ex["clientid"], ex["sequence"])
        assert r.status == OK, r.statuses()
        self.clientid = ex["clientid"]
        self.sessionid = r[0]["sessionid"]
        self.seq = 0
        r = self.seq_compound([(RECLAIM_COMPLETE, Packer().u32(0).bytes())])
        assert r.status == OK, r.statuses()
        return self.sessionid

    def export_fh(self, export="memfs"):
        ops = [putrootfh(), lookup(export), getfh()]
        r = self.seq_compound(ops) if self.minor >= 1 else self.compound(ops)
        assert r.status == OK, r.statuses()
        return r[-1]["fh"]
