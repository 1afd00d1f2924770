"""audit_verifier.py: an osse export verifier written from docs/audit.md
alone (§1 tree, §2 origins and heads, §3 format, §4 steps), sharing no code
with osse. test_export_format.py checks that it and `osse verify` agree on
every file it tries. Python standard library plus the plain Ed25519
verifier of test_audit.py.

verify(blob, pk) returns None when the export verifies, else a short reason.
"""

import base64
import hashlib

from test_audit import ed25519_verify

SPACES = set(range(0x09, 0x0E)) | {0x20, 0x85, 0xA0, 0x1680, 0x2028, 0x2029, 0x202F, 0x205F,
                                   0x3000} | set(range(0x2000, 0x200B))


def origin_ok(b):
    if not 1 <= len(b) <= 255:
        return False
    try:
        s = b.decode("utf-8", "strict")  # Python refuses overlongs and surrogates
    except UnicodeDecodeError:
        return False
    for ch in s:
        c = ord(ch)
        if ch == "+" or c in SPACES or c < 0x20 or 0x7F <= c <= 0x9F:
            return False
    return True


def leaf_hash(b):
    return hashlib.sha256(b"\x00" + b).digest()


def node_hash(l, r):
    return hashlib.sha256(b"\x01" + l + r).digest()


class Tree:
    def __init__(self, size, frontier):
        self.size = size
        self.f = {}
        it = iter(frontier)
        for b in range(63, -1, -1):  # highest level first
            if size >> b & 1:
                self.f[b] = next(it)

    def push(self, h):
        l = 0
        while self.size >> l & 1:
            h = node_hash(self.f.pop(l), h)
            l += 1
        self.f[l] = h
        self.size += 1

    def root(self):
        hs = [self.f[b] for b in range(63, -1, -1) if self.size >> b & 1]
        if not hs:
            return hashlib.sha256(b"").digest()
        r = hs[-1]
        for x in reversed(hs[:-1]):
            r = node_hash(x, r)
        return r


class Bad(Exception):
    pass


class Msgpack:
    """§3.4: the families osse reads, every length checked first."""

    def __init__(self, b):
        self.b, self.i = b, 0

    def take(self, n):
        if n > len(self.b) - self.i:
            raise Bad("msgpack: truncated")
        x = self.b[self.i:self.i + n]
        self.i += n
        return x

    def be(self, n):
        return int.from_bytes(self.take(n), "big")

    def tag(self):
        return self.take(1)[0]

    def integer(self, t):
        if t <= 0x7F:
            return t
        if t >= 0xE0:
            return t - 0x100
        if 0xCC <= t <= 0xCF:
            return self.be(1 << (t - 0xCC))
        if 0xD0 <= t <= 0xD3:
            n = 1 << (t - 0xD0)
            return int.from_bytes(self.take(n), "big", signed=True)
        return None

    def string(self, t):
        if t & 0xE0 == 0xA0:
            n = t & 0x1F
        elif t == 0xD9:
            n = self.be(1)
        elif t == 0xDA:
            n = self.be(2)
        elif t == 0xDB:
            n = self.be(4)
        else:
            return None
        raw = self.take(n)
        try:
            return raw.decode("utf-8", "strict")
        except UnicodeDecodeError:
            raise Bad("msgpack: string not UTF-8")

    def container(self, t, is_map):
        fix, t16, t32 = (0x80, 0xDE, 0xDF) if is_map else (0x90, 0xDC, 0xDD)
        if t & 0xF0 == fix:
            return t & 0x0F
        if t == t16:
            return self.be(2)
        if t == t32:
            return self.be(4)
        return None

    def want_int(self, lo, hi):
        v = self.integer(self.tag())
        if v is None or not lo <= v <= hi:
            raise Bad("msgpack: integer expected in range")
        return v

    def want_str(self, cstr=False):
        s = self.string(self.tag())
        if s is None:
            raise Bad("msgpack: string expected")
        if cstr and "\0" in s:
            raise Bad("msgpack: NUL")
        return s

    def want_key(self, k):
        if self.want_str() != k:
            raise Bad("msgpack: key %s expected" % k)

    def want_map(self, n=None):
        c = self.container(self.tag(), True)
        if c is None or (n is not None and c != n):
            raise Bad("msgpack: map expected")
        return c

    def value(self, level):
        t = self.tag()
        v = self.integer(t)
        if v is not None:
            if not -2 ** 63 <= v < 2 ** 63:
                raise Bad("msgpack: integer out of range")
            return v
        if self.string(t) is not None:  # (consumed)
            return "s"
        for is_map in (False, True):
            c = self.container(t, is_map)
            if c is not None:
                if level > 64:
                    raise Bad("msgpack: too deep")
                self.members(c, level, is_map)
                return "c"
        if t in (0xC0, 0xC2, 0xC3):
            return t
        if t == 0xCB:
            x = self.be(8)
            if x >> 52 & 0x7FF == 0x7FF:
                raise Bad("msgpack: float not finite")
            return "f"
        raise Bad("msgpack: type 0x%02x" % t)

    def members(self, c, level, is_map):
        keys = set()
        for _ in range(c):
            if is_map:
                k = self.want_str()
                if k in keys:
                    raise Bad("msgpack: duplicate key")
                keys.add(k)
            self.value(level + 1)


# docs/audit.md §3.4: the event types of SPEC §5, each with the stream kind
# it belongs to (a type not listed, or in another kind's stream, is damage).
KIND_OF = {"WorkflowPublished": "workflow", "CalendarUpdated": "calendar",
           "AgencyUpdated": "agency", "AgencySecretRotated": "agency",
           "PrincipalCreated": "principal", "PrincipalRevoked": "principal",
           "SubscriptionUpdated": "subscription", "SubscriptionDeleted": "subscription",
           "NotificationDelivered": "delivery", "NotificationFailed": "delivery"}
for _t in ("RequestSubmitted StepOpened StepSkipped TaskAutoApproved TaskDecided InfoProvided "
           "SlaWarned SlaBreached SlaRescheduled TaskEscalated LinkageCompleted LinkageFailed "
           "PaymentDue PaymentReceived LicenceIssued LicenceExpired LicenceRevoked "
           "SlaOverdueNotice RequestCompleted RequestRejected RequestWithdrawn RequestExpired "
           "PersonalDataErased StepFailed RuleFailed").split():
    KIND_OF[_t] = "request"


def decode_event(b):
    m = Msgpack(b)
    m.want_map(7)
    m.want_key("seq")
    seq = m.want_int(0, 2 ** 64 - 1)
    m.want_key("stream")
    stream = m.want_str(True)
    m.want_key("version")
    m.want_int(0, 2 ** 32 - 1)
    m.want_key("type")
    typ = m.want_str(True)
    kind, _, sid = stream.partition("/")
    if typ not in KIND_OF:
        raise Bad("event: unknown event type %r" % typ)
    if kind != KIND_OF[typ] or not sid:
        raise Bad("event: %s in stream %r" % (typ, stream))
    m.want_key("at")
    m.want_int(-2 ** 63, 2 ** 63 - 1)
    m.want_key("actor")
    m.want_map(2)
    m.want_key("kind")
    m.want_str(True)
    m.want_key("id")
    m.want_str(True)
    m.want_key("data")
    c = m.want_map()
    m.members(c, 2, True)
    if m.i != len(b):
        raise Bad("msgpack: trailing bytes")
    return seq


def head_sig_ok(pk, origin, size, root, sig):
    body = origin + b"\n" + str(size).encode() + b"\n" + base64.b64encode(root) + b"\n"
    return ed25519_verify(pk, body, sig)


def verify(blob, pk):
    try:
        _verify(blob, pk)
        return None
    except Bad as e:
        return str(e)


def _verify(x, key_pk):
    o = 0

    def take(n):
        nonlocal o
        if n > len(x) - o:
            raise Bad("truncated at %d" % o)
        r = x[o:o + n]
        o += n
        return r

    def be(n):
        return int.from_bytes(take(n), "big")

    if take(8) != b"OSSE-LOG":
        raise Bad("magic")
    if be(4) != 2:
        raise Bad("version")
    olen = be(2)
    if not 1 <= olen <= 255:
        raise Bad("origin length")
    origin = take(olen)
    if not origin_ok(origin):
        raise Bad("origin")
    pk = take(32)
    if pk != key_pk:
        raise Bad("another key")
    first = be(8)
    if first < 1:
        raise Bad("first seq")
    count = be(8)
    if count < 1 or first + count - 1 >= 2 ** 64:
        raise Bad("event count")
    if count * 37 + 197 > len(x) - o:
        raise Bad("event count does not fit")
    last = first + count - 1
    k = be(1)
    if k != bin(first - 1).count("1"):
        raise Bad("frontier count")
    tree = Tree(first - 1, [take(32) for _ in range(k)])
    nh = be(4)
    if nh > 10000000 or nh * 112 + count * 37 + 192 > len(x) - o:
        raise Bad("head count")
    heads = []
    prev = max(1, first - 1) - 1
    for _ in range(nh):
        size, _at, root, sig = be(8), be(8), take(32), take(64)
        if not prev < size < last:
            raise Bad("head order")
        if not head_sig_ok(pk, origin, size, root, sig):
            raise Bad("head signature")
        heads.append((size, root))
        prev = size
    hi = 0
    seq = first
    while True:
        while hi < len(heads) and heads[hi][0] == tree.size:
            if tree.root() != heads[hi][1]:
                raise Bad("head root")
            hi += 1
        if seq > last:
            break
        n = be(4)
        if not 1 <= n <= 16777216:
            raise Bad("event length")
        lh = take(32)
        b = take(n)
        if leaf_hash(b) != lh:
            raise Bad("leaf hash of seq %d" % seq)
        if decode_event(b) != seq:
            raise Bad("seq %d" % seq)
        tree.push(lh)
        seq += 1
    if take(8) != b"OSSE-END":
        raise Bad("trailer magic")
    total = be(8)
    if total != o + 176:
        raise Bad("total length")
    size, _at, root, sig = be(8), be(8), take(32), take(64)
    if size != last or not head_sig_ok(pk, origin, size, root, sig):
        raise Bad("final head")
    if tree.root() != root:
        raise Bad("final head root")
    digest = hashlib.sha256(x[:o]).digest()
    if not ed25519_verify(pk, digest, take(64)):
        raise Bad("closing signature")
    if o != len(x):
        raise Bad("extra bytes")
