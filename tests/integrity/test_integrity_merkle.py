"""RFC 9162 Merkle tree: published vectors, an independent RFC-literal oracle, tamper checks."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from functools import cache

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auditstream.integrity.merkle import (
    EMPTY_ROOT,
    CompactRange,
    consistency_node_ids,
    consistency_path,
    inclusion_node_ids,
    inclusion_path,
    leaf_hash,
    node_hash,
    root_hash,
    root_node_ids,
    subtree_hash,
    verify_consistency,
    verify_inclusion,
)

# ---------------------------------------------------------------------------------------------
# Published test vectors (RFC 6962 reference tree used by Certificate Transparency and
# github.com/transparency-dev/merkle proof/verify_test.go).
# ---------------------------------------------------------------------------------------------

CT_LEAVES = [
    bytes.fromhex(h)
    for h in [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
]
CT_ROOTS = {  # tree size -> root
    0: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    1: "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    2: "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    3: "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    4: "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    5: "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    6: "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    7: "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    8: "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
}
# (0-based leaf index, tree size, proof). transparency-dev lists these with 1-based indices.
CT_INCLUSION = [
    (
        0,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (
        1,
        5,
        [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (0, 1, []),
]
CT_CONSISTENCY = [
    (1, 1, []),
    (
        1,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        [
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (
        6,
        7,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
]


def _h(hexes: Sequence[str]) -> list[bytes]:
    return [bytes.fromhex(x) for x in hexes]


# ---------------------------------------------------------------------------------------------
# Independent oracle: RFC 9162 §2.1.1 / §2.1.3.1 / §2.1.4.1 transcribed literally, on data.
# Uses hashlib directly (not the module under test) so hashing bugs cannot cancel out.
# ---------------------------------------------------------------------------------------------


def _sha(b: bytes) -> bytes:
    return hashlib.sha256(b).digest()


def _k(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def ref_mth(d: Sequence[bytes]) -> bytes:
    n = len(d)
    if n == 0:
        return _sha(b"")
    if n == 1:
        return _sha(b"\x00" + d[0])
    k = _k(n)
    return _sha(b"\x01" + ref_mth(d[:k]) + ref_mth(d[k:]))


def ref_path(m: int, d: Sequence[bytes], mth: Callable[[Sequence[bytes]], bytes]) -> list[bytes]:
    n = len(d)
    if n == 1:
        return []
    k = _k(n)
    if m < k:
        return ref_path(m, d[:k], mth) + [mth(d[k:])]
    return ref_path(m - k, d[k:], mth) + [mth(d[:k])]


def ref_subproof(
    m: int, d: Sequence[bytes], b: bool, mth: Callable[[Sequence[bytes]], bytes]
) -> list[bytes]:
    n = len(d)
    if m == n:
        return [] if b else [mth(d)]
    k = _k(n)
    if m <= k:
        return ref_subproof(m, d[:k], b, mth) + [mth(d[k:])]
    return ref_subproof(m - k, d[k:], False, mth) + [mth(d[:k])]


def ref_proof(m: int, d: Sequence[bytes], mth: Callable[[Sequence[bytes]], bytes]) -> list[bytes]:
    return ref_subproof(m, d, True, mth)


# ---------------------------------------------------------------------------------------------
# A tree of N synthetic leaves; the "store" is exactly what CompactRange.append emitted.
# ---------------------------------------------------------------------------------------------

N = 70
DATA = [b"leaf-%d" % i for i in range(N)]


@cache
def _mth_range(lo: int, hi: int) -> bytes:
    return ref_mth(DATA[lo:hi]) if hi - lo <= 1 else _split_mth(lo, hi)


def _split_mth(lo: int, hi: int) -> bytes:
    k = _k(hi - lo)
    return _sha(b"\x01" + _mth_range(lo, lo + k) + _mth_range(lo + k, hi))


def _oracle_mth(d: Sequence[bytes]) -> bytes:
    # Oracle slices are contiguous ranges of DATA, identified by content; memoising by range
    # keeps the exhaustive m <= n <= 70 sweep fast without changing the RFC-literal recursion.
    lo = _INDEX[d[0]]
    return _mth_range(lo, lo + len(d))


_INDEX = {d: i for i, d in enumerate(DATA)}


def _getter(store: dict[tuple[int, int], bytes]) -> Callable[[int, int], bytes]:
    return lambda level, index: store[(level, index)]


def _build_store(data: Sequence[bytes]) -> tuple[dict[tuple[int, int], bytes], CompactRange]:
    store: dict[tuple[int, int], bytes] = {}
    cr = CompactRange()
    for d in data:
        for level, index, h in cr.append(leaf_hash(d)):
            assert (level, index) not in store, "node emitted twice"
            store[(level, index)] = h
    return store, cr


STORE, FULL = _build_store(DATA)


class CountingGetter:
    """get_node that records calls and refuses nodes outside a tree of ``size`` leaves."""

    def __init__(self, store: dict[tuple[int, int], bytes], size: int) -> None:
        self.store = store
        self.size = size
        self.calls: list[tuple[int, int]] = []

    def __call__(self, level: int, index: int) -> bytes:
        assert level >= 0 and index >= 0
        assert (index + 1) << level <= self.size, f"read node {(level, index)} beyond size"
        self.calls.append((level, index))
        return self.store[(level, index)]


def _log2_ceil(n: int) -> int:
    return max(0, (n - 1).bit_length())


# ---------------------------------------------------------------------------------------------
# Vectors
# ---------------------------------------------------------------------------------------------


def test_leaf_and_node_hash_primitives() -> None:
    assert leaf_hash(b"").hex() == CT_ROOTS[1]
    assert EMPTY_ROOT.hex() == CT_ROOTS[0]
    l0, l1 = leaf_hash(CT_LEAVES[0]), leaf_hash(CT_LEAVES[1])
    assert node_hash(l0, l1).hex() == CT_ROOTS[2]


def test_ct_roots_every_size() -> None:
    store, _ = _build_store(CT_LEAVES)
    cr = CompactRange()
    assert cr.root().hex() == CT_ROOTS[0]
    for size in range(0, 9):
        assert root_hash(size, _getter(store)).hex() == CT_ROOTS[size]
        assert ref_mth(CT_LEAVES[:size]).hex() == CT_ROOTS[size]  # oracle sanity
        if size:
            cr.append(leaf_hash(CT_LEAVES[size - 1]))
            assert cr.root().hex() == CT_ROOTS[size]


@pytest.mark.parametrize(("index", "size", "proof"), CT_INCLUSION)
def test_ct_inclusion_vectors(index: int, size: int, proof: list[str]) -> None:
    store, _ = _build_store(CT_LEAVES)
    assert inclusion_path(index, size, _getter(store)) == _h(proof)
    assert ref_path(index, CT_LEAVES[:size], ref_mth) == _h(proof)  # oracle sanity
    root = bytes.fromhex(CT_ROOTS[size])
    assert verify_inclusion(leaf_hash(CT_LEAVES[index]), index, size, _h(proof), root)


@pytest.mark.parametrize(("m", "n", "proof"), CT_CONSISTENCY)
def test_ct_consistency_vectors(m: int, n: int, proof: list[str]) -> None:
    store, _ = _build_store(CT_LEAVES)
    assert consistency_path(m, n, _getter(store)) == _h(proof)
    if m < n:
        assert ref_proof(m, CT_LEAVES[:n], ref_mth) == _h(proof)  # oracle sanity
    m_root, n_root = bytes.fromhex(CT_ROOTS[m]), bytes.fromhex(CT_ROOTS[n])
    assert verify_consistency(m, n, m_root, n_root, _h(proof))


# ---------------------------------------------------------------------------------------------
# Store model
# ---------------------------------------------------------------------------------------------


def test_append_emits_exactly_all_perfect_nodes() -> None:
    expected = {
        (level, i): _mth_range(i << level, (i + 1) << level)
        for level in range(N.bit_length())
        for i in range(N >> level)
    }
    assert expected == STORE


def test_append_reports_completed_nodes_in_order() -> None:
    cr = CompactRange()
    for i in range(7):
        cr.append(leaf_hash(DATA[i]))
    new = cr.append(leaf_hash(DATA[7]))
    assert [(lvl, idx) for lvl, idx, _ in new] == [(0, 7), (1, 3), (2, 1), (3, 0)]
    assert new[-1][2] == _mth_range(0, 8)


def test_compact_range_roundtrips_and_rebuilds() -> None:
    cr = CompactRange()
    for size in range(N + 1):
        assert cr.size == size
        assert cr.root() == (_mth_range(0, size) if size else EMPTY_ROOT)
        assert CompactRange.from_bytes(cr.to_bytes()) == cr
        getter = CountingGetter(STORE, size)
        rebuilt = CompactRange.from_nodes(size, getter)
        assert rebuilt == cr
        assert getter.calls == root_node_ids(size)
        assert len(getter.calls) == size.bit_count()
        assert [(lvl, idx) for lvl, idx, _ in cr.nodes()] == root_node_ids(size)
        assert all(STORE[(lvl, idx)] == h for lvl, idx, h in cr.nodes())
        if size < N:
            cr.append(leaf_hash(DATA[size]))


def test_compact_range_copy_is_independent() -> None:
    cr = CompactRange()
    cr.extend(leaf_hash(d) for d in DATA[:5])
    twin = cr.copy()
    twin.append(leaf_hash(DATA[5]))
    assert cr.size == 5 and twin.size == 6
    assert cr.root() == _mth_range(0, 5)


def test_compact_range_rejects_bad_input() -> None:
    cr = CompactRange()
    with pytest.raises(ValueError):
        cr.append(b"short")
    with pytest.raises(ValueError):
        CompactRange.from_bytes(b"\x00" * 7)
    good = FULL.to_bytes()
    with pytest.raises(ValueError):
        CompactRange.from_bytes(good[:-1])
    with pytest.raises(ValueError):
        CompactRange.from_bytes(good + b"\x00" * 32)
    with pytest.raises(ValueError):
        CompactRange.from_nodes(-1, _getter(STORE))


def test_root_hash_reads_popcount_nodes() -> None:
    for size in range(N + 1):
        getter = CountingGetter(STORE, size)
        assert root_hash(size, getter) == (_mth_range(0, size) if size else EMPTY_ROOT)
        assert len(getter.calls) == size.bit_count()


def test_subtree_hash_any_range() -> None:
    for start in range(0, 40):
        for end in range(start, 41):
            getter = CountingGetter(STORE, N)
            expected = ref_mth(DATA[start:end]) if end > start else EMPTY_ROOT
            assert subtree_hash(start, end, getter) == expected, (start, end)
            n = end - start
            if n and start % (1 << (n.bit_length() - 1)) == 0:
                assert len(getter.calls) == n.bit_count()  # aligned: perfect nodes only
    with pytest.raises(ValueError):
        subtree_hash(5, 4, _getter(STORE))


# ---------------------------------------------------------------------------------------------
# Generators against the oracle, exhaustively for every 0 <= m <= n <= 70
# ---------------------------------------------------------------------------------------------


def test_inclusion_paths_match_oracle_and_verify() -> None:
    for size in range(1, N + 1):
        root = _mth_range(0, size)
        for index in range(size):
            getter = CountingGetter(STORE, size)
            path = inclusion_path(index, size, getter)
            assert path == ref_path(index, DATA[:size], _oracle_mth), (index, size)
            # O(log n): one sibling per level plus at most one ragged right edge.
            assert len(getter.calls) <= 2 * _log2_ceil(size) + 1
            assert sorted(getter.calls) == sorted(inclusion_node_ids(index, size))
            lh = leaf_hash(DATA[index])
            assert verify_inclusion(lh, index, size, path, root)
            _assert_inclusion_tampering_rejected(lh, index, size, path, root)


def test_consistency_paths_match_oracle_and_verify() -> None:
    for n in range(1, N + 1):
        n_root = _mth_range(0, n)
        for m in range(0, n + 1):
            m_root = _mth_range(0, m) if m else EMPTY_ROOT
            getter = CountingGetter(STORE, n)
            path = consistency_path(m, n, getter)
            expected = ref_proof(m, DATA[:n], _oracle_mth) if 0 < m < n else []
            assert path == expected, (m, n)
            assert len(getter.calls) <= 3 * _log2_ceil(n) + 1
            assert sorted(getter.calls) == sorted(consistency_node_ids(m, n))
            assert verify_consistency(m, n, m_root, n_root, path)
            if path:
                _assert_consistency_tampering_rejected(m, n, m_root, n_root, path)


def _flip(b: bytes, i: int = 0, bit: int = 8) -> bytes:
    return b[:i] + bytes([b[i] ^ bit]) + b[i + 1 :]


def _assert_inclusion_tampering_rejected(
    lh: bytes, index: int, size: int, path: list[bytes], root: bytes
) -> None:
    # The probes of transparency-dev's corruptInclusionProof. (size +/- 1 is deliberately not
    # probed: when the proof shape is unchanged, no verifier can tell that ``root`` is not the
    # root of a tree one leaf larger -- the claim is bound to the root, not to the size alone.)
    some = _sha(b"some other hash")
    bad = [
        (lh, index - 1, size, path, root),
        (lh, index + 1, size, path, root),
        (lh, index ^ 2, size, path, root),
        (lh, index, size * 2, path, root),
        (lh, index, size // 2, path, root),
        (_flip(lh), index, size, path, root),
        (lh, index, size, path, _flip(root, 31, 1)),
        (lh, index, size, path, EMPTY_ROOT),
        (lh, index, size, [*path, b""], root),
        (lh, index, size, [*path, root], root),
        (lh, index, size, [b"", *path], root),
        (lh, index, size, [root, *path], root),
    ]
    for i in range(len(path)):
        bad.append((lh, index, size, [*path[:i], _flip(path[i], i % 32), *path[i + 1 :]], root))
    if path:
        bad.append((lh, index, size, path[:-1], root))
    if len(path) > 1:
        bad.append((lh, index, size, [path[0], some, *path[1:]], root))
    for args in bad:
        assert not verify_inclusion(*args), f"accepted {args[1:3]} for ({index}, {size})"


def _assert_consistency_tampering_rejected(
    m: int, n: int, m_root: bytes, n_root: bytes, path: list[bytes]
) -> None:
    bad = [
        (m - 1, n, m_root, n_root, path),
        (m + 1, n, m_root, n_root, path),
        (m ^ 2, n, m_root, n_root, path),
        (m, n * 2, m_root, n_root, path),
        (m, n // 2, m_root, n_root, path),
        (m, n, _flip(m_root), n_root, path),
        (m, n, m_root, _flip(n_root), path),
        (m, n, n_root, m_root, path),
        (m, n, m_root, n_root, []),
        (m, n, m_root, n_root, [*path, b""]),
        (m, n, m_root, n_root, [*path, m_root]),
        (m, n, m_root, n_root, [*path, n_root]),
        (m, n, m_root, n_root, [b"", *path]),
        (m, n, m_root, n_root, [m_root, *path]),
        (m, n, m_root, n_root, [n_root, *path]),
        (m, n, m_root, n_root, [path[0], *path]),
        (m, n, m_root, n_root, path[:-1]),
    ]
    for i in range(len(path)):
        bad.append((m, n, m_root, n_root, [*path[:i], _flip(path[i], 0, 16), *path[i + 1 :]]))
    for args in bad:
        assert not verify_consistency(*args), f"accepted tampered consistency proof {m}->{n}"


# ---------------------------------------------------------------------------------------------
# Larger random trees
# ---------------------------------------------------------------------------------------------

BIG = 1500
BIG_DATA = [b"big-%d" % i for i in range(BIG)]
BIG_STORE, BIG_CR = _build_store(BIG_DATA)


@cache
def _big_root(size: int) -> bytes:
    return root_hash(size, _getter(BIG_STORE))


@settings(max_examples=100, deadline=None)
@given(st.integers(1, BIG).flatmap(lambda n: st.tuples(st.integers(0, n - 1), st.just(n))))
def test_random_inclusion_round_trip(args: tuple[int, int]) -> None:
    index, size = args
    getter = CountingGetter(BIG_STORE, size)
    path = inclusion_path(index, size, getter)
    assert len(getter.calls) <= 2 * _log2_ceil(size) + 1
    root = _big_root(size)
    lh = leaf_hash(BIG_DATA[index])
    assert verify_inclusion(lh, index, size, path, root)
    if path:
        assert not verify_inclusion(lh, index, size, [*path[:-1], _flip(path[-1])], root)
        assert not verify_inclusion(lh, index, size * 2, path, root)
    if index + 1 < size:
        assert not verify_inclusion(lh, index + 1, size, path, root)


@settings(max_examples=100, deadline=None)
@given(st.integers(1, BIG).flatmap(lambda n: st.tuples(st.integers(1, n), st.just(n))))
def test_random_consistency_round_trip(args: tuple[int, int]) -> None:
    m, n = args
    getter = CountingGetter(BIG_STORE, n)
    path = consistency_path(m, n, getter)
    assert len(getter.calls) <= 3 * _log2_ceil(n) + 1
    assert verify_consistency(m, n, _big_root(m), _big_root(n), path)
    if path:
        assert not verify_consistency(m, n, _big_root(m), _big_root(n), path[:-1])
        assert not verify_consistency(m, n, _flip(_big_root(m)), _big_root(n), path)


def test_big_tree_root_matches_oracle() -> None:
    assert BIG_CR.root() == ref_mth(BIG_DATA)


# ---------------------------------------------------------------------------------------------
# Verifier edge cases (mirroring transparency-dev's TestVerifyInclusion / TestVerifyConsistency)
# ---------------------------------------------------------------------------------------------

SOME = bytes.fromhex("abacaba000000000000000000000000000000000000000000060061e00123456")


def test_verify_inclusion_single_entry_and_degenerate_sizes() -> None:
    h = leaf_hash(b"data")
    assert verify_inclusion(h, 0, 1, [], h)
    assert not verify_inclusion(h, 0, 1, [], b"")
    assert not verify_inclusion(b"", 0, 1, [], h)
    for index, size in [(0, 0), (1, 0), (1, 1), (2, 1)]:
        assert not verify_inclusion(SOME, index, size, [], EMPTY_ROOT)
    assert not verify_inclusion(h, -1, 1, [], h)
    assert not verify_inclusion(h, 0, 1, [h], h)


def test_verify_consistency_edge_cases() -> None:
    r1, r2 = _sha(b"root one"), _sha(b"root two")
    assert verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])
    assert verify_consistency(0, 1, EMPTY_ROOT, r2, [])
    assert verify_consistency(1, 1, r2, r2, [])
    assert not verify_consistency(0, 0, r1, r2, [])
    assert not verify_consistency(1, 1, r1, r2, [])
    assert not verify_consistency(0, 1, r1, r2, [])  # size-0 root must be the empty root
    assert not verify_consistency(1, 0, r1, r2, [])
    assert not verify_consistency(2, 1, r1, r2, [])
    assert not verify_consistency(1, 2, r1, r2, [])
    assert not verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT])
    assert not verify_consistency(0, 1, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT])
    assert not verify_consistency(1, 1, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT])
    assert not verify_consistency(1, 1, b"short", b"short", [])


def test_generators_reject_out_of_range_arguments() -> None:
    for index, size in [(0, 0), (5, 5), (-1, 3)]:
        with pytest.raises(ValueError):
            inclusion_path(index, size, _getter(STORE))
    for m, n in [(3, 2), (-1, 2)]:
        with pytest.raises(ValueError):
            consistency_path(m, n, _getter(STORE))
    assert consistency_path(0, 5, _getter(STORE)) == []
    assert consistency_path(5, 5, _getter(STORE)) == []
