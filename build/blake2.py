"""_blake2 for a parpy linked to a distribution's static libpython.

That archive leaves out the HACL* code of CPython's own _blake2 (see
build/static_link.rs), and hashlib, unlike for MD5 or SHA-2, does not take
BLAKE2 from OpenSSL: without a _blake2 it logs an error at every import.
This module has the same API. Unkeyed hashes of the full digest size (what
hashlib.blake2b(data) is) run in OpenSSL; any other parameters run the
algorithm of RFC 7693 in Python, correct but slow (about 0.1 MB/s).
"""

import sys as _sys

BLAKE2B_MAX_DIGEST_SIZE = 64
BLAKE2B_MAX_KEY_SIZE = 64
BLAKE2B_PERSON_SIZE = 16
BLAKE2B_SALT_SIZE = 16
BLAKE2S_MAX_DIGEST_SIZE = 32
BLAKE2S_MAX_KEY_SIZE = 32
BLAKE2S_PERSON_SIZE = 8
BLAKE2S_SALT_SIZE = 8
_GIL_MINSIZE = 2048

_SIGMA = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
    (14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3),
    (11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4),
    (7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8),
    (9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13),
    (2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9),
    (12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11),
    (13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10),
    (6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5),
    (10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0),
)

# word bits, rounds, rotations, IV (the SHA-512 / SHA-256 initial values)
_B = (64, 12, (32, 24, 16, 63), (
    0x6A09E667F3BCC908, 0xBB67AE8584CAA73B, 0x3C6EF372FE94F82B, 0xA54FF53A5F1D36F1,
    0x510E527FADE682D1, 0x9B05688C2B3E6C1F, 0x1F83D9ABFB41BD6B, 0x5BE0CD19137E2179))
_S = (32, 10, (16, 12, 8, 7), (
    0x6A09E667, 0xBB67AE85, 0x3C6EF372, 0xA54FF53A,
    0x510E527F, 0x9B05688C, 0x1F83D9AB, 0x5BE0CD19))


def _compress(spec, h, block, t, last, last_node):
    w, rounds, (r1, r2, r3, r4), iv = spec
    mask = (1 << w) - 1
    n = w // 8
    m = [int.from_bytes(block[i:i + n], "little") for i in range(0, 16 * n, n)]
    v = list(h) + list(iv)
    v[12] ^= t & mask
    v[13] ^= t >> w
    if last:
        v[14] ^= mask
    if last_node:
        v[15] ^= mask
    for i in range(rounds):
        s = _SIGMA[i % 10]
        for k, (a, b, c, d) in enumerate((
            (0, 4, 8, 12), (1, 5, 9, 13), (2, 6, 10, 14), (3, 7, 11, 15),
            (0, 5, 10, 15), (1, 6, 11, 12), (2, 7, 8, 13), (3, 4, 9, 14),
        )):
            va, vb, vc, vd = v[a], v[b], v[c], v[d]
            va = (va + vb + m[s[2 * k]]) & mask
            x = vd ^ va
            vd = ((x >> r1) | (x << (w - r1))) & mask
            vc = (vc + vd) & mask
            x = vb ^ vc
            vb = ((x >> r2) | (x << (w - r2))) & mask
            va = (va + vb + m[s[2 * k + 1]]) & mask
            x = vd ^ va
            vd = ((x >> r3) | (x << (w - r3))) & mask
            vc = (vc + vd) & mask
            x = vb ^ vc
            vb = ((x >> r4) | (x << (w - r4))) & mask
            v[a], v[b], v[c], v[d] = va, vb, vc, vd
    return [h[i] ^ v[i] ^ v[i + 8] for i in range(8)]


def _bytes(obj):
    if isinstance(obj, str):
        raise TypeError("Strings must be encoded before hashing")
    return bytes(memoryview(obj))


class _Pure:
    """BLAKE2 of RFC 7693, with the parameter block of the BLAKE2 paper."""

    def __init__(self, spec, digest_size, key, salt, person, fanout, depth,
                 leaf_size, node_offset, node_depth, inner_size, last_node):
        self.spec = spec
        w = spec[0]
        self.block = 16 * w // 8
        p = bytearray(8 * w // 8)
        p[0], p[1], p[2], p[3] = digest_size, len(key), fanout, depth
        p[4:8] = leaf_size.to_bytes(4, "little")
        if w == 64:
            p[8:16] = node_offset.to_bytes(8, "little")
            p[16], p[17] = node_depth, inner_size
            p[32:32 + len(salt)] = salt
            p[48:48 + len(person)] = person
        else:
            p[8:14] = node_offset.to_bytes(6, "little")
            p[14], p[15] = node_depth, inner_size
            p[16:16 + len(salt)] = salt
            p[24:24 + len(person)] = person
        n = w // 8
        self.h = [iv ^ int.from_bytes(p[i * n:(i + 1) * n], "little")
                  for i, iv in enumerate(spec[3])]
        self.t = 0
        self.buf = b""
        self.last_node = last_node
        self.digest_size = digest_size
        if key:
            self.update(key + bytes(self.block - len(key)))

    def update(self, data):
        buf = self.buf + data
        # The last block is compressed only in digest(), flagged as last.
        while len(buf) > self.block:
            self.t += self.block
            self.h = _compress(self.spec, self.h, buf[:self.block], self.t, False, False)
            buf = buf[self.block:]
        self.buf = buf

    def digest(self):
        t = self.t + len(self.buf)
        block = self.buf + bytes(self.block - len(self.buf))
        h = _compress(self.spec, self.h, block, t, True, self.last_node)
        n = self.spec[0] // 8
        return b"".join(x.to_bytes(n, "little") for x in h)[:self.digest_size]

    def copy(self):
        other = object.__new__(_Pure)
        other.__dict__.update(self.__dict__)
        other.h = list(self.h)
        return other


class _Immutable(type):
    """Like the C types: their attributes cannot be set."""

    def __setattr__(cls, name, value):
        raise TypeError(f"cannot set {name!r} attribute of immutable type "
                        f"'{cls.__module__}.{cls.__qualname__}'")


class _Blake2(metaclass=_Immutable):
    _spec = None
    _openssl = None

    _KEYWORDS = ("digest_size", "key", "salt", "person", "fanout", "depth", "leaf_size",
                 "node_offset", "node_depth", "inner_size", "last_node", "usedforsecurity")

    def __init__(self, *args, **kwargs):
        # The argument errors of CPython's generated parser, in its order.
        name = self.name
        if len(args) > 1:
            raise TypeError(f"{name}() takes at most 1 positional argument ({len(args)} given)")
        if args and "data" in kwargs:
            raise TypeError(f"argument for {name}() given by name ('data') and position (1)")
        for k in kwargs:
            if k not in self._KEYWORDS and k not in ("data", "string"):
                raise TypeError(f"{name}() got an unexpected keyword argument '{k}'")
        given = bool(args) or "data" in kwargs
        data = args[0] if args else kwargs.pop("data", b"")
        string = kwargs.pop("string", None)
        if string is not None:
            if given:
                raise TypeError(
                    "'data' and 'string' are mutually exclusive and support for "
                    "'string' keyword parameter is slated for removal in a future version.")
            data = string
        self._init(data, **kwargs)

    def _init(self, data, digest_size=None, key=b"", salt=b"", person=b"", fanout=1,
              depth=1, leaf_size=0, node_offset=0, node_depth=0, inner_size=0,
              last_node=False, usedforsecurity=True):
        if digest_size is None:
            digest_size = self.MAX_DIGEST_SIZE
        m = self.MAX_DIGEST_SIZE
        # The messages of the C module, which 3.15 reworded.
        new = _sys.version_info >= (3, 15)
        q = "'" if new else ""
        if not 1 <= digest_size <= m:
            if new:
                raise ValueError(f"digest_size for {self.name} must be between 1 and {m} "
                                 f"bytes, got {digest_size}")
            raise ValueError(f"digest_size for {self.name.capitalize()} must be between 1 and "
                             f"{m} bytes, here it is {digest_size}")
        key, salt, person = _bytes(key), _bytes(salt), _bytes(person)
        for what, value, most in (("key", key, self.MAX_KEY_SIZE), ("salt", salt, self.SALT_SIZE),
                                  ("person", person, self.PERSON_SIZE)):
            if len(value) > most:
                got = f", got {len(value)}" if new else ""
                raise ValueError(f"maximum {what} length is {most} bytes{got}")
        if not 0 <= fanout <= 255:
            raise ValueError(f"{q}fanout{q} must be between 0 and 255")
        if not 1 <= depth <= 255:
            raise ValueError(f"{q}depth{q} must be between 1 and 255")
        for name, value in (("leaf_size", leaf_size), ("node_offset", node_offset)):
            if value < 0:
                raise ValueError("Cannot convert negative int")
        if leaf_size >= 1 << 32:
            raise OverflowError("leaf_size is too large")
        if node_offset >= 1 << 64:
            raise OverflowError("Python int too large for C unsigned long long")
        if self._spec[0] == 32 and node_offset >= 1 << 48:
            raise OverflowError("node_offset is too large")
        if not 0 <= node_depth <= 255:
            raise ValueError(f"{q}node_depth{q} must be between 0 and 255")
        if not 0 <= inner_size <= m:
            raise ValueError(f"'inner_size' must be between 0 and {m}" if new
                             else f"inner_size must be between 0 and is {m}")
        self.digest_size = digest_size
        plain = (digest_size, key, salt, person, fanout, depth, leaf_size, node_offset,
                 node_depth, inner_size, last_node) == (
                     self.MAX_DIGEST_SIZE, b"", b"", b"", 1, 1, 0, 0, 0, 0, False)
        self._h = None
        if plain:
            try:
                import _hashlib
                self._h = _hashlib.new(self._openssl, usedforsecurity=usedforsecurity)
            except (ImportError, ValueError):
                self._h = None
        if self._h is None:
            self._h = _Pure(self._spec, digest_size, key, salt, person, fanout, depth,
                            leaf_size, node_offset, node_depth, inner_size, bool(last_node))
        if data != b"":
            self.update(data)

    def update(self, data, /):
        self._h.update(_bytes(data))

    def digest(self):
        return self._h.digest()

    def hexdigest(self):
        return self.digest().hex()

    def copy(self):
        other = object.__new__(type(self))
        other.digest_size = self.digest_size
        other._h = self._h.copy()
        return other


class blake2b(_Blake2):
    """Return a new BLAKE2b hash object."""

    name = "blake2b"
    block_size = 128
    MAX_DIGEST_SIZE = BLAKE2B_MAX_DIGEST_SIZE
    MAX_KEY_SIZE = BLAKE2B_MAX_KEY_SIZE
    PERSON_SIZE = BLAKE2B_PERSON_SIZE
    SALT_SIZE = BLAKE2B_SALT_SIZE
    _spec = _B
    _openssl = "blake2b512"


class blake2s(_Blake2):
    """Return a new BLAKE2s hash object."""

    name = "blake2s"
    block_size = 64
    MAX_DIGEST_SIZE = BLAKE2S_MAX_DIGEST_SIZE
    MAX_KEY_SIZE = BLAKE2S_MAX_KEY_SIZE
    PERSON_SIZE = BLAKE2S_PERSON_SIZE
    SALT_SIZE = BLAKE2S_SALT_SIZE
    _spec = _S
    _openssl = "blake2s256"
