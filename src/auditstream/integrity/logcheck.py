"""Checking a tenant's log entry by entry: the backend-neutral half of ``verify``.

A ``LogChecker`` is fed one tenant's stored entries in seq order and trusts nothing but the
public key. It checks that:

* seqs run 1..n with no gap, and each entry names the seq and tenant it is stored at;
* a live entry's stored bytes hash to its leaf (RFC 9162 leaf hash of RFC 8785 bytes).
  The bytes themselves, not a re-serialisation of what one parser made of them: JSON
  parsers differ on duplicate keys (orjson keeps the last, SQLite's JSON functions the
  first), so any other bytes could show one reader what another never verified;
* a redaction stub is one a signed redaction record committed to, byte for byte
  (``integrity.redaction``), and every record's commitment matches the stubs that name it;
* the tree over the leaves reproduces the root of every stored signed checkpoint, and of
  every checkpoint kept elsewhere (``external``: a rollback of the newest entries together
  with their checkpoints shows up there); every entry is covered by a signed checkpoint;
* stored interior nodes (which proofs are served from) are the ones the leaves produce.

The backend's own checker (``store.sqlite.audit``) feeds it, then compares whatever else
its queries read (columns, indexes, full-text rows, rollups) with the entries it returns.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import orjson

from . import merkle, redaction
from .canonical import CanonicalizationError
from .checkpoint import Checkpoint


@dataclass
class Problem:
    tenant: str | None  # None: the file as a whole
    seq: int | None
    reason: str

    def __str__(self) -> str:
        where = "database" if self.tenant is None else f"tenant {self.tenant}"
        return f"{where}: seq {self.seq}: {self.reason}" if self.seq is not None \
            else f"{where}: {self.reason}"


@dataclass
class Report:
    events: int = 0
    tenants: int = 0
    redacted: int = 0
    checkpoints: int = 0
    external: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


class LogChecker:
    """Checks one tenant's log; ``entry`` returns the parsed event while all is well."""

    def __init__(
        self, tenant: str, report: Report, *, checkpoints: dict[int, bytes],
        external: Iterable[Checkpoint] = (),
        nodes: dict[tuple[int, int], bytes] | None = None, min_node_level: int = 1,
    ):
        self.tenant = tenant
        self.report = report
        self.checkpoints = checkpoints
        self.external = {cp.size: cp for cp in external}
        self.nodes = nodes
        self.min_node_level = min_node_level
        self.tree = merkle.CompactRange()
        self.expected = 1
        self.last_good_cp = 0
        self.failed = False
        self._marker = orjson.dumps({"tenant": tenant})[1:-1]
        # Per record seq: the digest of the stubs that name it so far, and the first one.
        self._claims: dict[int, redaction.Digest] = {}
        self._first_stub: dict[int, int] = {}

    def fail(self, seq: int | None, reason: str) -> None:
        self.report.problems.append(Problem(self.tenant, seq, reason))
        self.failed = True

    def entry(self, seq: int, raw: bytes, leaf: bytes | None) -> dict[str, object] | None:
        """Check the next stored entry; None once the log is found bad (stop feeding)."""
        if self.failed:
            return None
        if seq != self.expected:
            self.fail(self.expected, f"missing: the next row has seq {seq}"
                      if seq > self.expected else f"duplicate seq {seq}")
            return None
        if leaf is None:
            self.fail(seq, "row has no leaf hash")
            return None
        try:
            ev = orjson.loads(raw)
        except orjson.JSONDecodeError:
            self.fail(seq, "stored body is not valid JSON")
            return None
        if type(ev) is not dict or ev.get("seq") != seq or ev.get("tenant") != self.tenant:
            got = (ev.get("tenant"), ev.get("seq")) if type(ev) is dict else (None, None)
            self.fail(seq, f"row holds the event of tenant {got[0]!r} seq {got[1]!r} "
                      "(moved rows)")
            return None
        if redaction.is_stub(ev):
            if not self._stub(seq, raw, ev, leaf):
                return None
        elif not self._live(seq, raw, ev, leaf):
            return None
        if not self._grow(seq, leaf):
            return None
        self.expected += 1
        self.report.events += 1
        return ev

    def _stub(self, seq: int, raw: bytes, ev: dict[str, object], leaf: bytes) -> bool:
        info = ev.get("redacted")
        by = info.get("by") if isinstance(info, dict) else None
        if type(by) is not int or by <= seq:
            self.fail(seq, "redacted content, but no redaction record in the signed log "
                      "names this event")
            return False
        try:
            canonical = redaction.stub_bytes(ev) == raw
        except CanonicalizationError:
            canonical = False
        if not canonical:  # the record commits to the canonical bytes (see _live)
            self.fail(seq, "redaction stub is not stored in its canonical form (edited)")
            return False
        self._claims.setdefault(by, redaction.Digest()).add(seq, leaf, raw)
        self._first_stub.setdefault(by, seq)
        self.report.redacted += 1
        return True

    def _live(self, seq: int, raw: bytes, ev: dict[str, object], leaf: bytes) -> bool:
        if merkle.leaf_hash(raw) != leaf:
            self.fail(seq, "content does not match its leaf hash (the event was edited)")
            return False
        claimed = self._claims.pop(seq, None)
        if redaction.is_record(ev):
            claim = redaction.claim_of(ev)
            got = claimed or redaction.Digest()
            if claim is None or claim.count != got.count or claim.digest != got.hexdigest():
                first = self._first_stub.get(seq)
                self.fail(first or seq, f"redaction record seq {seq} does not match the "
                          f"stubs that name it ({got.count} found, "
                          f"{claim.count if claim else '?'} recorded): a stub was forged, "
                          "edited or restored")
                return False
        elif claimed is not None:
            self.fail(self._first_stub[seq], f"redaction stub names seq {seq}, which is not "
                      "a redaction record")
            return False
        return True

    def _grow(self, seq: int, leaf: bytes) -> bool:
        for lvl, idx, h in self.tree.append(leaf):
            if self.nodes is not None and lvl >= self.min_node_level \
                    and self.nodes.pop((lvl, idx), None) != h:
                self.fail(seq, f"stored Merkle node ({lvl}, {idx}) is not the one the "
                          "leaves produce (proofs would not verify)")
                return False
        want = self.checkpoints.get(seq)
        if want is not None:
            if self.tree.root() != want:
                self.fail(self.last_good_cp + 1, f"tree does not match the signed checkpoint "
                          f"of size {seq}: a leaf in seq {self.last_good_cp + 1}..{seq} was "
                          "altered")
                return False
            self.last_good_cp = seq
        ext = self.external.pop(seq, None)
        if ext is not None and self.tree.root() != ext.root:
            self.fail(seq, f"the log forks from the checkpoint kept elsewhere at size {seq}: "
                      "its entries were replaced")
            return False
        return True

    def finish(self) -> None:
        """After the last entry: truncation, coverage, dangling stubs and nodes."""
        if self.failed:
            return
        n = self.expected - 1
        signed = max(self.checkpoints, default=0)
        if self.external:
            size = max(self.external)
            self.fail(n + 1, f"rolled back: a checkpoint kept elsewhere has {size} entries, "
                      f"the database {n}")
        elif signed > n:
            self.fail(n + 1, f"log truncated: a checkpoint is signed for {signed} events but "
                      f"only {n} are stored")
        elif n > signed:
            self.fail(signed + 1, f"seq {signed + 1}..{n} are not covered by any signed "
                      "checkpoint (inserted outside the writer)")
        elif self._claims:
            by = min(self._claims)
            self.fail(self._first_stub[by], f"redaction stub names seq {by}, which is not a "
                      "redaction record in the log")
        elif self.nodes:
            lvl, idx = min(self.nodes)
            self.fail(None, f"stored Merkle node ({lvl}, {idx}) lies outside the tree")


__all__ = ["LogChecker", "Problem", "Report"]
