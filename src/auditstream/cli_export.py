"""``auditstream export`` and ``auditstream pull``: getting events out, in bulk or incrementally.

``export`` reads the database file directly (``--db``) and writes one NDJSON, CSV or
Parquet file with the same encoders as ``GET /v1/events/export``.

``pull`` mirrors a tenant's stream from a running server into an NDJSON file, run after
run (from cron, say), with **every event exactly once**:

* It resumes by ``seq``, not by time. A time window ("fetch the previous hour every
  hour") silently misses every event that arrives late with an older client timestamp,
  or that is committed while the window is being read. ``seq`` is per tenant, gap-free
  and assigned at commit, so "everything after seq N" is complete by construction. With
  no filter in force, ``pull`` also checks that the seqs it receives are contiguous and
  never records a position past a gap.
* The state file (JSON) advances only after the output is durable: lines are appended,
  the file is flushed and fsynced, and only then is the new state written to a temporary
  file, fsynced and renamed over the old one (atomic on POSIX). The state also records
  the output's committed size and identity (device, inode), so a run that was killed
  after writing lines but before committing them truncates that uncommitted tail first
  and fetches those events again: no duplicates, no gaps, whatever the kill point.
* Progress is committed every ``--batch`` events, so a long catch-up that is interrupted
  keeps what it has durably written.
* ``--window 1h`` only bounds the *first* run: it starts the mirror at events stamped
  within the last hour instead of the beginning of history. The horizon is fixed in the
  state file on that first run (so a resumed first run uses the same one); once the
  mirror has caught up, every later commit is pulled whatever its timestamp.
* A lock file (``STATE.lock``) stops two pulls from sharing one state file, and the
  state remembers the server URL and the tenant, so neither another server nor a key of
  another tenant can resume someone else's position (``seq`` numbers are per tenant).

``register(app)`` adds both commands to the main Typer app.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import fcntl
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Annotated, Any

import httpx
import orjson
import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from .errors import ProblemError
from .export import FORMATS, encoder
from .integrity.witness import WitnessError
from .model.times import TimeParseError, format_us, now_us, parse_duration

err = Console(stderr=True)
STATE_VERSION = 1


class PullError(Exception):
    """``pull`` cannot go on safely (bad answer, wrong tenant, gap, locked state)."""


# -- shared file helpers ------------------------------------------------------------


def fsync_dir(path: Path) -> None:
    """Make a rename or a file creation in ``path`` durable (the directory entry)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so that a crash leaves the old or the new content,
    never a mix: write a temporary sibling, fsync it, rename it over, fsync the directory."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


# -- export ---------------------------------------------------------------------------


def _export_filter(q: str | None, since: str | None, until: str | None) -> Any:
    from .query.params import filter_from_params

    items = [(k, v) for k, v in (("q", q), ("since", since), ("until", until)) if v]
    # The same parser as the HTTP export, so a filter means the same on both.
    return filter_from_params(items, allowed=frozenset())


async def export_to(
    out: IO[bytes],
    *,
    db: str | None,
    tenant: str,
    fmt: str,
    where: Any,
    after_seq: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Write the tenant's matching events (seq order) to ``out``; returns how many.

    Memory stays bounded by one scan batch (one row group for Parquet).
    ``progress(done, total)`` is called after every batch.
    """
    from .app import build_store
    from .settings import Settings

    settings = Settings.from_env(db=db)
    store = build_store(settings, readonly=True)
    try:
        from .query.filter import Cmp, and_

        total = await store.count(tenant, and_(where, Cmp("seq", ">", after_seq)))
        enc = encoder(fmt)
        out.write(enc.start())
        done = 0
        if progress:
            progress(0, total)
        async for batch in store.scan_raw(tenant, where, after_seq=after_seq):
            out.write(enc.encode_raw(batch))
            done += len(batch)
            if progress:
                progress(done, max(total, done))
        out.write(enc.finish())
        return done
    finally:
        await store.close()


def export_cmd(
    tenant: Annotated[str, typer.Option(help="Tenant to export")],
    out: Annotated[str, typer.Option("--out", help="Output file ('-' for stdout)")],
    fmt: Annotated[str, typer.Option("--format", help="ndjson, csv or parquet")] = "ndjson",
    q: Annotated[str | None, typer.Option("--q", help="Filter in the q language")] = None,
    since: Annotated[str | None, typer.Option(help="From (RFC 3339, date, Unix ms, 24h)")] = None,
    until: Annotated[str | None, typer.Option(help="Before (same forms as --since)")] = None,
    after_seq: Annotated[int, typer.Option(help="Only events with a greater seq")] = 0,
    db: Annotated[str | None, typer.Option("--db", help="SQLite database file "
                                           "(else AUDITSTREAM_DB)")] = None,
    bundle: Annotated[bool, typer.Option(
        "--bundle", help="Write a verifiable bundle instead: every event up to the latest "
        "signed checkpoint with its inclusion proof (check it with `auditstream verify "
        "--bundle`)")] = False,
    checkpoint: Annotated[Path | None, typer.Option(
        "--checkpoint", dir_okay=False, help="With --bundle: the file keeping the last "
        "checkpoint exported. The new one must extend it (checked with a consistency proof; "
        "a rollback or a fork is refused, exit 3); then the file is replaced by the new "
        "one. Keep it off the server.")] = None,
) -> None:
    """Export a tenant's events (seq order) to NDJSON, CSV or Parquet, from the database file.

    The file appears complete or not at all: it is written under a temporary name and
    renamed when finished.
    """
    from .cli_support import existing_db, existing_tenant, fail, problem_lines
    from .cli_support import settings as load_settings

    if fmt not in FORMATS:
        raise typer.BadParameter(f"use one of {', '.join(FORMATS)}", param_hint="--format")
    if bundle and (q or since or until or after_seq):
        raise typer.BadParameter("a bundle holds the whole log; filters do not apply",
                                 param_hint="--bundle")
    if checkpoint is not None and not bundle:
        raise typer.BadParameter("--checkpoint goes with --bundle", param_hint="--checkpoint")
    try:
        where = _export_filter(q, since, until)
    except ProblemError as exc:
        fail(exc.detail, 1, *(f"  {line}" for line in problem_lines(exc)))
    # Never create the database: an export from the wrong directory says so.
    existing_tenant(existing_db(load_settings(db=db).db), tenant)

    def run(sink: IO[bytes], bar: Progress | None) -> int:
        task = bar.add_task("export", total=None) if bar else None

        def progress(done: int, total: int) -> None:
            if bar is not None and task is not None:
                bar.update(task, completed=done, total=total)

        if bundle:
            return _bundle_to(sink, db, tenant, bar, task, checkpoint)
        return asyncio.run(export_to(sink, db=db, tenant=tenant, fmt=fmt, where=where,
                                     after_seq=after_seq, progress=progress))

    columns = (TextColumn(f"export {fmt}"), BarColumn(), MofNCompleteColumn(),
               TimeRemainingColumn())
    if out == "-":
        with Progress(*columns, console=err, transient=True) as bar:
            n = run(sys.stdout.buffer, bar)
        sys.stdout.buffer.flush()
        err.print(f"exported {n} events")
        return
    path = Path(out)
    tmp = path.with_name(f".{path.name}.partial")
    try:
        with open(tmp, "wb") as f, Progress(*columns, console=err) as bar:
            n = run(f, bar)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent.resolve())
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    err.print(f"exported {n} events to {path}")


# -- pull ---------------------------------------------------------------------------


@dataclass
class PullState:
    """What ``pull`` keeps between runs (the JSON state file)."""

    url: str
    after_seq: int = 0
    tenant: str | None = None
    #: The first run's horizon (RFC 3339) while the initial catch-up is under way.
    since: str | None = None
    #: The output file as of the last commit: committed size, device and inode.
    output: dict[str, Any] = field(default_factory=dict)
    #: The tenant log's latest signed checkpoint seen (C2SP note), and the key it is
    #: checked with (pinned on the first run): every run proves the new one extends it.
    checkpoint: str | None = None
    public_key: str | None = None
    updated_at: str | None = None
    version: int = STATE_VERSION

    @classmethod
    def load(cls, path: Path) -> PullState | None:
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            doc = orjson.loads(raw)
            if doc.get("version") != STATE_VERSION:
                raise PullError(f"{path}: unsupported state version {doc.get('version')!r}")
            return cls(**{k: doc[k] for k in cls.__dataclass_fields__ if k in doc})
        except (orjson.JSONDecodeError, TypeError, AttributeError) as exc:
            raise PullError(f"{path} is not a pull state file: {exc}") from None

    def dump(self) -> bytes:
        return orjson.dumps(asdict(self), option=orjson.OPT_INDENT_2) + b"\n"


@dataclass
class PullResult:
    events: int
    after_seq: int
    requests: int
    discarded_bytes: int = 0


def commit_state(path: Path, state: PullState) -> None:
    """Durably record ``state`` (called only once the output it describes is fsynced)."""
    state.updated_at = format_us(now_us())
    write_atomic(path, state.dump())


@contextlib.contextmanager
def _locked(state_path: Path) -> Iterator[None]:
    lock = state_path.with_name(state_path.name + ".lock")
    with open(lock, "a+b") as f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise PullError(f"another pull holds {lock}") from None
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def _open_output(out_path: Path, state: PullState) -> tuple[IO[bytes], int]:
    """Open the output for appending, first cutting off what an interrupted run wrote
    after its last commit. Returns the file and how many bytes were discarded.

    Only the very file the state describes (same device and inode) is ever truncated; a
    rotated or replaced output is appended to as it is.
    """
    created = not out_path.exists()
    f = open(out_path, "ab")  # noqa: SIM115 (handed to the caller, who closes it)
    if created:
        fsync_dir(out_path.parent.resolve())
    st = os.fstat(f.fileno())
    discarded = 0
    rec = state.output
    same = rec.get("dev") == st.st_dev and rec.get("ino") == st.st_ino
    if same and st.st_size > int(rec.get("size", 0)):
        discarded = st.st_size - int(rec["size"])
        f.truncate(int(rec["size"]))
        os.fsync(f.fileno())
    f.seek(0, os.SEEK_END)
    return f, discarded


def _record_output(state: PullState, out_path: Path, f: IO[bytes]) -> None:
    st = os.fstat(f.fileno())
    state.output = {"path": str(out_path.resolve()), "size": st.st_size,
                    "dev": st.st_dev, "ino": st.st_ino}


def _problem_text(response: httpx.Response) -> str:
    try:
        doc = orjson.loads(response.read())
        return f"{response.status_code} {doc.get('title', '')}: {doc.get('detail', '')}"
    except Exception:  # noqa: BLE001 (any body: we only want a message)
        return f"HTTP {response.status_code}"


def pull(
    url: str,
    key: str,
    state_path: Path,
    out_path: Path,
    *,
    window: str | None = None,
    batch: int = 10_000,
    timeout: float = 120.0,
    on_events: Callable[[int], None] | None = None,
    transport: httpx.BaseTransport | None = None,
    public_key: str | None = None,
) -> PullResult:
    """Append every event committed since the last run to ``out_path`` (see module doc).

    ``on_events(n)`` reports the events written so far in this run.

    Before any event, the server's latest signed checkpoint must extend the one the
    previous run saw (an RFC 9162 consistency proof): a log that was rolled back or
    rewritten raises ``witness.WitnessError`` and nothing is written or recorded.

    Raises ``PullError`` (or an ``httpx`` error) when it cannot finish; whatever was
    committed before stays committed, and the next run resumes from there.
    """
    if batch < 1:
        raise PullError("batch must be at least 1")
    base = url.rstrip("/")
    state_path = Path(state_path)
    out_path = Path(out_path)
    with _locked(state_path):
        state = PullState.load(state_path)
        if state is None:
            since = None
            if window:
                try:
                    since = format_us(now_us() - parse_duration(window))
                except TimeParseError as exc:
                    raise PullError(str(exc)) from None
            state = PullState(url=base, since=since)
        elif state.url != base:
            # A seq position means nothing on another server: resuming it there would
            # silently skip events. A server that moved: edit "url" in the state file.
            raise PullError(f"{state_path} belongs to {state.url}, not {base}")
        out, discarded = _open_output(out_path, state)
        try:
            if not state.output:
                # First run: commit the starting point (output size, horizon) before any
                # event is written, so a kill from here on can be rolled back exactly.
                _record_output(state, out_path, out)
                commit_state(state_path, state)
            result = PullResult(0, state.after_seq, 0, discarded)
            headers = {"X-API-Key": key, "Accept": "application/x-ndjson"}
            with httpx.Client(base_url=base, headers=headers, transport=transport,
                              timeout=httpx.Timeout(timeout, connect=10.0)) as client:
                # Recorded with the first commit below (every run commits at least once).
                _witness(client, state, public_key)
                while True:
                    done = _pull_chunk(client, state, state_path, out, out_path, batch, result,
                                       on_events)
                    if done:
                        return result
        finally:
            out.close()


def _witness(client: httpx.Client, state: PullState, public_key: str | None) -> None:
    """Check the server's latest checkpoint against the one seen before (see ``pull``) and
    keep it in ``state``. Servers without integrity are pulled unchecked."""
    from .integrity.checkpoint import Verifier, open_checkpoint
    from .integrity.witness import check_extension

    r = client.get("/v1/integrity/checkpoint")
    if r.status_code == 404 and state.checkpoint is None:
        return
    if r.status_code != 200:
        raise PullError(f"checkpoint: {_problem_text(r)}")
    if public_key and state.public_key and public_key.strip() != state.public_key:
        raise PullError("--public-key differs from the key this state pinned on its first "
                        "run; a new key means a new log: start a new state file")
    key = state.public_key or public_key
    if not key:
        k = client.get("/v1/integrity/public-key")
        if k.status_code != 200:
            raise PullError(f"public key: {_problem_text(k)}")
        key = k.text  # trust on first use, then pinned in the state
    try:
        verifier = Verifier.from_key_string(key.strip())
        current = open_checkpoint(r.text, verifier)
    except ValueError as exc:
        raise PullError(f"the server's checkpoint is not validly signed: {exc}") from None
    if state.checkpoint is not None:
        previous = open_checkpoint(state.checkpoint, verifier)
        if previous.origin != current.origin:
            raise PullError(f"this state follows the log {previous.origin}, the key reads "
                            f"{current.origin}: use a state file per tenant")
        proof: list[bytes] = []
        if 0 < previous.size < current.size:
            p = client.get("/v1/integrity/proof/consistency",
                           params={"from": previous.size, "to": current.size})
            if p.status_code != 200:
                raise PullError(f"consistency proof: {_problem_text(p)}")
            try:
                proof = [base64.b64decode(h, validate=True)
                         for h in p.json()["consistency_path"]]
            except (ValueError, KeyError, TypeError):
                raise PullError("the server sent a malformed consistency proof") from None
        check_extension(previous, current, proof)
    state.checkpoint, state.public_key = r.text, key.strip()


def _pull_chunk(
    client: httpx.Client,
    state: PullState,
    state_path: Path,
    out: IO[bytes],
    out_path: Path,
    batch: int,
    result: PullResult,
    on_events: Callable[[int], None] | None,
) -> bool:
    """One request of up to ``batch`` events, written and committed; True when caught up."""
    params: dict[str, Any] = {"format": "ndjson", "after_seq": state.after_seq, "limit": batch}
    filtered = state.since is not None
    if filtered:
        params["since"] = state.since
    last = state.after_seq
    received = 0
    complete = False
    header_seq = 0
    try:
        with client.stream("GET", "/v1/events/export", params=params) as response:
            result.requests += 1
            if response.status_code != 200:
                raise PullError(f"export failed: {_problem_text(response)}")
            header_seq = int(response.headers.get("auditstream-last-seq", "0") or 0)
            _check_tenant(state, response.headers.get("auditstream-tenant"))
            pending = b""
            for chunk in response.iter_bytes():
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    if not line.strip():
                        continue
                    seq = _check_line(line, state, last, filtered)
                    out.write(line + b"\n")
                    last = seq
                    received += 1
                if on_events and lines:
                    on_events(result.events + received)
            if pending.strip():
                # The body ended inside a line: not a complete answer.
                raise PullError("export ended in the middle of a line")
            complete = True
    finally:
        # Commit whatever complete lines were written, also when the transfer failed:
        # they are in seq order, so everything up to ``last`` is there exactly once.
        if received or complete:
            out.flush()
            os.fsync(out.fileno())
            caught_up = complete and received < batch
            high = last
            if caught_up and filtered:
                # Every match up to the header's seq was in the body; the non-matches
                # before the horizon are skipped for good, by design of --window.
                high = max(last, header_seq)
            state.after_seq = high
            if caught_up:
                state.since = None
            _record_output(state, out_path, out)
            commit_state(state_path, state)
            result.events += received
            result.after_seq = state.after_seq
    return complete and received < batch


def _check_line(line: bytes, state: PullState, last: int, filtered: bool) -> int:
    """The seq of one NDJSON line, after checking tenant, order and (unfiltered) contiguity."""
    try:
        ev = orjson.loads(line)
        seq = ev["seq"]
        tenant = ev.get("tenant")
    except (orjson.JSONDecodeError, KeyError, TypeError):
        raise PullError("export sent a line that is not an event with a seq") from None
    if not isinstance(seq, int) or seq <= last:
        raise PullError(f"export sent seq {seq!r} after {last}: out of order")
    if not filtered and seq != last + 1:
        raise PullError(f"gap in the stream: seq {seq} follows {last}; not advancing past it")
    _check_tenant(state, tenant)
    return seq


def _check_tenant(state: PullState, tenant: str | None) -> None:
    """Bind the state to the first tenant seen; refuse any other (seqs are per tenant)."""
    if tenant is None:
        return
    if state.tenant is None:
        state.tenant = tenant
    elif tenant != state.tenant:
        raise PullError(f"this state belongs to tenant {state.tenant!r}, the key reads "
                        f"{tenant!r}: use a state file per tenant")


def pull_cmd(
    url: Annotated[str, typer.Option(help="Base URL of the server, e.g. http://host:8080")],
    key: Annotated[str, typer.Option(envvar="AUDITSTREAM_API_KEY",
                                     help="API key with events:read [env AUDITSTREAM_API_KEY]")],
    state: Annotated[Path, typer.Option(help="State file (created on the first run)")],
    out: Annotated[Path, typer.Option(help="NDJSON file to append to")],
    window: Annotated[str | None, typer.Option(
        help="First run only: start with events of this last period (1h, 7d) instead of "
             "all history")] = None,
    batch: Annotated[int, typer.Option(help="Events per request and per commit")] = 10_000,
    public_key: Annotated[str | None, typer.Option(
        "--public-key", help="The server's checkpoint key (or a file holding it); default: "
        "fetched on the first run and pinned in the state")] = None,
) -> None:
    """Append every event committed since the last run to --out, exactly once.

    Resumes by the tenant's gap-free seq (late events with old timestamps are not missed);
    the state file advances only after the output is fsynced. Run it from cron.
    """
    try:
        with Progress(SpinnerColumn(), TextColumn("pull {task.completed} events"),
                      TimeElapsedColumn(), console=err, transient=True) as bar:
            task = bar.add_task("pull", total=None)

            def on_events(n: int) -> None:
                bar.update(task, completed=n)

            result = pull(url, key, state, out, window=window, batch=batch,
                          on_events=on_events, public_key=_key_arg(public_key))
    except WitnessError as exc:
        err.print(f"[red]REFUSED[/red] {exc}")
        err.print(f"nothing was pulled; {state} keeps the checkpoint seen before")
        raise typer.Exit(3) from None
    except (PullError, httpx.HTTPError) as exc:
        err.print(f"[red]error:[/red] {exc}")
        err.print("committed progress is kept; the next run resumes from it")
        raise typer.Exit(1) from None
    if result.discarded_bytes:
        err.print(f"discarded {result.discarded_bytes} uncommitted bytes of an interrupted run")
    err.print(f"pulled {result.events} event{'' if result.events == 1 else 's'}; next run "
              f"starts after seq {result.after_seq}")


def _key_arg(value: str | None) -> str | None:
    """A verifier key given inline (name+id+key) or as a file holding one."""
    if value is None or "+" in value and not Path(value).exists():
        return value
    try:
        return Path(value).read_text().strip()
    except OSError as exc:
        raise typer.BadParameter(f"cannot read public key {value!r}: {exc}") from None


def _bundle_to(sink: IO[bytes], db: str | None, tenant: str, bar: Progress | None,
               task: TaskID | None, kept: Path | None) -> int:
    from .app import build_store
    from .integrity.bundle import write_bundle
    from .integrity.checkpoint import open_checkpoint
    from .integrity.keys import key_path, load_or_create_signer
    from .integrity.witness import WitnessError
    from .settings import Settings

    settings = Settings.from_env(db=db)
    if not key_path(settings.db).exists():
        raise typer.BadParameter("no signing key beside the database: integrity was never on")
    verifier = load_or_create_signer(settings.db, settings.deployment).verifier()
    previous = None
    if kept is not None and kept.exists():
        try:
            previous = open_checkpoint(kept.read_text(), verifier)
        except ValueError as exc:
            raise typer.BadParameter(f"{kept}: not a checkpoint signed by this database's "
                                     f"key ({exc})", param_hint="--checkpoint") from None

    def progress(n: int) -> None:
        if bar is not None and task is not None:
            bar.advance(task, n)

    async def run() -> tuple[int, str]:
        store = build_store(settings, readonly=True)
        try:
            return await write_bundle(store, tenant, sink, verifier, previous=previous,
                                      progress=progress)
        finally:
            await store.close()

    try:
        n, note = asyncio.run(run())
    except LookupError as exc:
        raise typer.BadParameter(str(exc), param_hint="--tenant") from None
    except WitnessError as exc:
        err.print(f"[red]REFUSED[/red] {exc}")
        err.print(f"the checkpoint in {kept} is kept; no bundle was written")
        raise typer.Exit(3) from None
    if kept is not None:
        write_atomic(kept, note.encode())
    return n


def register(app: typer.Typer) -> None:
    """Add ``export`` and ``pull`` to the ``auditstream`` command."""
    app.command("export")(export_cmd)
    app.command("pull")(pull_cmd)


__all__ = ["PullError", "PullResult", "PullState", "export_to", "pull", "register"]
