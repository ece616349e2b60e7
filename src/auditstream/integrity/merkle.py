"""RFC 9162 (Certificate Transparency v2, same tree as RFC 6962) Merkle tree hashing.

Hashes are SHA-256 with domain separation::

    leaf_hash(d)    = SHA-256(0x00 || d)
    node_hash(l, r) = SHA-256(0x01 || l || r)
    MTH({})         = SHA-256("")

Storage model. For each log, the store persists every *perfect* subtree root as a node
``(level, index) -> hash``: level 0 holds the leaf hashes, and node ``(level, i)`` covers leaves
``[i * 2**level, (i + 1) * 2**level)``. Perfect nodes never change once written, so the table is
append-only. Nodes on the ragged right edge of a tree whose size is not a power of two are never
stored; they are recomputed from perfect nodes (at most ``log2(n)`` of them) using RFC 9162's
split rule (left child = largest power of two strictly smaller than the range size).

``get_node(level, index) -> bytes`` is the callback through which all functions here read the
store. Every generator touches O(log n) nodes, never reads a node beyond the tree size it is
asked about (so it is safe to call while the log keeps growing), and never rebuilds the tree.
``*_node_ids`` functions list exactly the nodes a generator will request so a store can fetch
them in one round trip and serve ``get_node`` from the result, e.g.
``lambda level, index: fetched[level, index]``.

The verifiers are written from RFC 9162 §2.1.3.2 and §2.1.4.2 and share no code with the
generators beyond the two hash primitives, so a generator bug cannot hide itself.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterable, Sequence
from typing import Final

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "CompactRange",
    "Node",
    "NodeGetter",
    "NodeId",
    "consistency_node_ids",
    "consistency_path",
    "inclusion_node_ids",
    "inclusion_path",
    "leaf_hash",
    "node_hash",
    "root_hash",
    "root_node_ids",
    "subtree_hash",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE: Final = 32
EMPTY_ROOT: Final = hashlib.sha256(b"").digest()
"""Root hash of the empty tree, MTH({}) = SHA-256 of the empty string."""

_LEAF_PREFIX: Final = b"\x00"
_NODE_PREFIX: Final = b"\x01"
# Size field of CompactRange.to_bytes(); 2**64 leaves is beyond any real log.
_SIZE_BYTES: Final = 8

NodeId = tuple[int, int]
"""``(level, index)`` of a perfect subtree, covering leaves [index << level, (index+1) << level)."""
Node = tuple[int, int, bytes]
"""``(level, index, hash)`` as returned by :meth:`CompactRange.append` for persisting."""
NodeGetter = Callable[[int, int], bytes]
"""Store callback: ``get_node(level, index)`` returns the stored hash of that perfect node."""


def leaf_hash(data: bytes) -> bytes:
    """RFC 9162 leaf hash: SHA-256(0x00 || data)."""
    return hashlib.sha256(_LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 9162 interior node hash: SHA-256(0x01 || left || right)."""
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


# ---------------------------------------------------------------------------------------------
# Compact range (frontier)
# ---------------------------------------------------------------------------------------------


class CompactRange:
    """The perfect-subtree roots covering leaves [0, size): the "frontier" of an append-only log.

    There is one root per set bit of ``size``, largest (leftmost) first; together they determine
    the tree root. :meth:`append` is O(log n) worst case, O(1) amortised, and reports every
    perfect node it completes so the caller can persist exactly those and nothing else.

    Instances are mutable and not thread-safe; a log writer owns one per tenant.
    """

    __slots__ = ("_hashes", "_size")

    def __init__(self) -> None:
        """Create the compact range of the empty tree."""
        self._size = 0
        # Perfect subtree roots, ordered left to right (descending level).
        self._hashes: list[bytes] = []

    # -- construction / serialisation --------------------------------------------------------

    @classmethod
    def from_nodes(cls, size: int, get_node: NodeGetter) -> CompactRange:
        """Rebuild the compact range of a tree of ``size`` leaves from stored perfect nodes.

        Reads exactly :func:`root_node_ids` ``(size)`` (popcount(size) <= 64 nodes).
        """
        _check_size(size)
        return cls._from_hashes(size, [get_node(lvl, idx) for lvl, idx in root_node_ids(size)])

    @classmethod
    def from_bytes(cls, data: bytes) -> CompactRange:
        """Inverse of :meth:`to_bytes`. Raises ``ValueError`` if ``data`` is not well formed."""
        if len(data) < _SIZE_BYTES:
            raise ValueError("compact range encoding is truncated")
        size = int.from_bytes(data[:_SIZE_BYTES], "big")
        body = data[_SIZE_BYTES:]
        count = size.bit_count()
        if len(body) != count * HASH_SIZE:
            raise ValueError(
                f"compact range of size {size} needs {count} hashes, encoding has "
                f"{len(body) / HASH_SIZE:g}"
            )
        hashes = [body[i : i + HASH_SIZE] for i in range(0, len(body), HASH_SIZE)]
        return cls._from_hashes(size, hashes)

    @classmethod
    def _from_hashes(cls, size: int, hashes: list[bytes]) -> CompactRange:
        if len(hashes) != size.bit_count():
            raise ValueError("number of hashes does not match the tree size")
        for h in hashes:
            _check_hash(h, "node hash")
        cr = cls()
        cr._size = size
        cr._hashes = list(hashes)
        return cr

    def to_bytes(self) -> bytes:
        """Serialise as 8-byte big-endian size followed by the 32-byte roots, left to right."""
        return self._size.to_bytes(_SIZE_BYTES, "big") + b"".join(self._hashes)

    def copy(self) -> CompactRange:
        """Independent copy (e.g. to compute a tentative root before committing a batch)."""
        return self._from_hashes(self._size, self._hashes)

    # -- queries ------------------------------------------------------------------------------

    @property
    def size(self) -> int:
        """Number of leaves appended so far."""
        return self._size

    def nodes(self) -> list[Node]:
        """The current perfect-subtree roots as ``(level, index, hash)``, left to right."""
        ids = root_node_ids(self._size)
        return [(lvl, idx, h) for (lvl, idx), h in zip(ids, self._hashes, strict=True)]

    def root(self) -> bytes:
        """RFC 9162 root hash MTH of the current tree (``EMPTY_ROOT`` when empty)."""
        if not self._hashes:
            return EMPTY_ROOT
        # The ragged right edge folds right to left: MTH splits off the largest perfect
        # left subtree at every step.
        acc = self._hashes[-1]
        for h in reversed(self._hashes[:-1]):
            acc = node_hash(h, acc)
        return acc

    # -- mutation -----------------------------------------------------------------------------

    def append(self, leaf: bytes) -> list[Node]:
        """Append one leaf *hash* (see :func:`leaf_hash`) and return the nodes it completed.

        The returned list starts with ``(0, old_size, leaf)`` and continues with every
        perfect subtree that this leaf closed, bottom-up; those are exactly the nodes that
        did not exist before and that the store must persist.
        """
        _check_hash(leaf, "leaf hash")
        index = self._size
        new: list[Node] = [(0, index, leaf)]
        acc = leaf
        level = 0
        # Each trailing 1 bit of the old size is a perfect sibling waiting on our left.
        while (index >> level) & 1:
            acc = node_hash(self._hashes.pop(), acc)
            level += 1
            new.append((level, index >> level, acc))
        self._hashes.append(acc)
        self._size = index + 1
        return new

    def extend(self, leaves: Iterable[bytes]) -> list[Node]:
        """Append several leaf hashes; return all nodes completed, in creation order.

        Same result as calling :meth:`append` per leaf, inlined because the store's writer
        calls it for every event it commits.
        """
        out: list[Node] = []
        hashes = self._hashes
        size = self._size
        sha = hashlib.sha256
        for leaf in leaves:
            _check_hash(leaf, "leaf hash")
            out.append((0, size, leaf))
            acc = leaf
            level = 0
            while (size >> level) & 1:
                acc = sha(_NODE_PREFIX + hashes.pop() + acc).digest()
                level += 1
                out.append((level, size >> level, acc))
            hashes.append(acc)
            size += 1
        self._size = size
        return out

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CompactRange):
            return NotImplemented
        return self._size == other._size and self._hashes == other._hashes

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"CompactRange(size={self._size}, root={self.root().hex()})"


# ---------------------------------------------------------------------------------------------
# Reading the tree through perfect nodes
# ---------------------------------------------------------------------------------------------


def root_node_ids(size: int) -> list[NodeId]:
    """The perfect nodes whose fold gives the root of a tree of ``size`` leaves, left to right."""
    _check_size(size)
    return _range_node_ids(0, size)


def root_hash(size: int, get_node: NodeGetter) -> bytes:
    """RFC 9162 MTH of the first ``size`` leaves, from at most popcount(size) stored nodes."""
    _check_size(size)
    if size == 0:
        return EMPTY_ROOT
    return _fold(_range_node_ids(0, size), get_node)


def subtree_hash(start: int, end: int, get_node: NodeGetter) -> bytes:
    """RFC 9162 MTH of leaves [start, end) (``EMPTY_ROOT`` for an empty range).

    For ranges that are subtrees of the log tree (``start`` a multiple of the largest power
    of two <= ``end - start``: every range in a proof or root is of this kind) this reads
    O(log n) perfect nodes. Other ranges are still hashed exactly as MTH defines them but may
    need up to ``end - start`` leaf reads, because their interior nodes are not stored.
    """
    if not (0 <= start <= end):
        raise ValueError(f"invalid leaf range [{start}, {end})")
    if start == end:
        return EMPTY_ROOT
    return _mth(start, end, get_node)


def _mth(start: int, end: int, get_node: NodeGetter) -> bytes:
    n = end - start
    if start % (1 << (n.bit_length() - 1)) == 0:
        return _fold(_range_node_ids(start, end), get_node)
    k = _split(n)
    return node_hash(_mth(start, start + k, get_node), _mth(start + k, end, get_node))


def _split(n: int) -> int:
    """Largest power of two strictly smaller than n (n >= 2): RFC 9162's ``k``."""
    return 1 << ((n - 1).bit_length() - 1)


def _range_node_ids(start: int, end: int) -> list[NodeId]:
    """Perfect nodes covering an aligned range [start, end), left to right, largest first.

    Aligned means ``start`` is a multiple of the largest power of two <= ``end - start``;
    the MTH of such a range is the right-to-left fold of these nodes.
    """
    out: list[NodeId] = []
    while start < end:
        level = (end - start).bit_length() - 1
        if start & ((1 << level) - 1):
            raise AssertionError(f"range [{start}, {end}) is not aligned")  # internal misuse
        out.append((level, start >> level))
        start += 1 << level
    return out


def _fold(ids: Sequence[NodeId], get_node: NodeGetter) -> bytes:
    acc = get_node(*ids[-1])
    for lvl, idx in reversed(ids[:-1]):
        acc = node_hash(get_node(lvl, idx), acc)
    return acc


# ---------------------------------------------------------------------------------------------
# Proof generation (RFC 9162 §2.1.3.1 PATH and §2.1.4.1 PROOF/SUBPROOF)
# ---------------------------------------------------------------------------------------------


def _inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """Leaf ranges of the PATH(index, D[size]) elements, in proof order (leaf to root)."""
    if not (0 <= index < size):
        raise ValueError(f"leaf index {index} is outside a tree of size {size}")
    lo, hi = 0, size
    out: list[tuple[int, int]] = []
    while hi - lo > 1:
        k = _split(hi - lo)
        if index < lo + k:
            out.append((lo + k, hi))  # PATH(m, D[0:k]) : MTH(D[k:n])
            hi = lo + k
        else:
            out.append((lo, lo + k))  # PATH(m - k, D[k:n]) : MTH(D[0:k])
            lo += k
    out.reverse()  # recursion appends the outermost sibling last
    return out


def _consistency_ranges(m: int, n: int) -> list[tuple[int, int]]:
    """Leaf ranges of the PROOF(m, D[n]) elements, in proof order."""
    if not (0 <= m <= n):
        raise ValueError(f"invalid consistency sizes {m} -> {n}")
    if m == 0 or m == n:
        # Every tree extends the empty tree; a tree is consistent with itself: no hashes needed.
        return []
    lo, hi, complete = 0, n, True  # ``complete`` is SUBPROOF's b flag
    out: list[tuple[int, int]] = []
    while m != hi:
        k = _split(hi - lo)
        if m - lo <= k:
            out.append((lo + k, hi))  # SUBPROOF(m, D[0:k], b) : MTH(D[k:n])
            hi = lo + k
        else:
            out.append((lo, lo + k))  # SUBPROOF(m - k, D[k:n], false) : MTH(D[0:k])
            lo += k
            complete = False
    if not complete:
        out.append((lo, hi))  # SUBPROOF(m, D[m], false) = {MTH(D[m])}
    out.reverse()
    return out


def _unique_ids(ranges: Iterable[tuple[int, int]]) -> list[NodeId]:
    return list(dict.fromkeys(nid for s, e in ranges for nid in _range_node_ids(s, e)))


def inclusion_node_ids(index: int, size: int) -> list[NodeId]:
    """Exactly the perfect nodes :func:`inclusion_path` will read (for batch prefetching)."""
    return _unique_ids(_inclusion_ranges(index, size))


def consistency_node_ids(m: int, n: int) -> list[NodeId]:
    """Exactly the perfect nodes :func:`consistency_path` will read (for batch prefetching)."""
    return _unique_ids(_consistency_ranges(m, n))


def inclusion_path(index: int, size: int, get_node: NodeGetter) -> list[bytes]:
    """RFC 9162 §2.1.3.1 inclusion proof PATH(index, D[size]) for leaf ``index`` (0-based).

    Reads O(log size) stored nodes. Raises ``ValueError`` unless 0 <= index < size.
    """
    return [_fold(_range_node_ids(s, e), get_node) for s, e in _inclusion_ranges(index, size)]


def consistency_path(m: int, n: int, get_node: NodeGetter) -> list[bytes]:
    """RFC 9162 §2.1.4.1 consistency proof PROOF(m, D[n]) between tree sizes m and n.

    Empty when m == 0 or m == n. Reads O(log n) stored nodes. Raises ``ValueError`` unless
    0 <= m <= n.
    """
    return [_fold(_range_node_ids(s, e), get_node) for s, e in _consistency_ranges(m, n)]


# ---------------------------------------------------------------------------------------------
# Verification (RFC 9162 §2.1.3.2 and §2.1.4.2). Never raises on hostile input: returns False.
# ---------------------------------------------------------------------------------------------


def _is_size(x: object) -> bool:
    return type(x) is int and x >= 0


def _is_hash(x: object) -> bool:
    return isinstance(x, bytes) and len(x) == HASH_SIZE


def verify_inclusion(
    leaf_hash: bytes, index: int, size: int, path: Sequence[bytes], root: bytes
) -> bool:
    """True iff ``path`` proves that ``leaf_hash`` is leaf ``index`` of the tree ``(size, root)``.

    Implements RFC 9162 §2.1.3.2 literally. Malformed input (wrong hash lengths, negative or
    out-of-range index) yields False, never an exception.
    """
    if not (_is_size(index) and _is_size(size) and index < size):
        return False
    if not (_is_hash(leaf_hash) and _is_hash(root) and all(_is_hash(p) for p in path)):
        return False
    fn, sn = index, size - 1
    r = leaf_hash
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and hmac.compare_digest(r, root)


def verify_consistency(m: int, n: int, m_root: bytes, n_root: bytes, path: Sequence[bytes]) -> bool:
    """True iff ``path`` proves the tree ``(n, n_root)`` is an append-only extension of
    ``(m, m_root)``.

    Implements RFC 9162 §2.1.4.2 for 0 < m < n. Edge cases: m == n requires an empty path and
    equal roots; m == 0 requires an empty path and ``m_root == EMPTY_ROOT`` (stricter than some
    implementations, which ignore the old root there). Malformed input yields False.
    """
    if not (_is_size(m) and _is_size(n) and m <= n):
        return False
    if not (_is_hash(m_root) and _is_hash(n_root) and all(_is_hash(c) for c in path)):
        return False
    if m == n:
        return not path and hmac.compare_digest(m_root, n_root)
    if m == 0:
        return not path and hmac.compare_digest(m_root, EMPTY_ROOT)
    if not path:
        return False
    proof = list(path)
    if m & (m - 1) == 0:
        proof.insert(0, m_root)
    fn, sn = m - 1, n - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = proof[0]
    for c in proof[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and hmac.compare_digest(fr, m_root) and hmac.compare_digest(sr, n_root)


# ---------------------------------------------------------------------------------------------


def _check_size(size: int) -> None:
    if type(size) is not int or size < 0:
        raise ValueError(f"tree size must be a non-negative int, got {size!r}")
    if size >= 1 << (8 * _SIZE_BYTES):
        raise ValueError("tree size does not fit in 64 bits")


def _check_hash(h: bytes, what: str) -> None:
    if not isinstance(h, bytes) or len(h) != HASH_SIZE:
        raise ValueError(f"{what} must be {HASH_SIZE} bytes")
