"""The processes of ``auditstream serve --workers N`` (N > 1).

One supervisor (this process) prepares the database (migrations, under a lock; the demo on
an empty file), then runs:

* **the writer process**, the only process that writes the database and the only one that
  holds the signing key: it assigns seqs, hashes, inserts and group-commits, and sends each
  commit's notices to every worker (``log.process``);
* **N HTTP workers** (uvicorn's process manager, sharing the listening socket): auth,
  parsing, validation, canonical serialisation and every read. A worker answers an append
  only after the writer's reply, which comes after the commit.

The supervisor restarts a worker or the writer that dies (a killed writer loses nothing
acknowledged: every reply followed a commit). ``--workers 1`` is one process that also
runs the writer thread (``app.create_app``).
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import secrets
import shutil
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI
from uvicorn.supervisors.multiprocess import Multiprocess

from .integrity.keys import load_or_create_signer
from .log.feed import CommitFeed
from .log.process import RemoteChannel, run_writer
from .log.writer import WriterThread
from .metrics import Metrics, prepare_directory, worker_exited
from .settings import Settings

log = logging.getLogger("auditstream")

#: How the supervisor tells the processes it starts where the writer is (not settings: a
#: user never sets them).
ENV_SOCKET = "AUDITSTREAM_INTERNAL_WRITER_SOCKET"
ENV_KEY = "AUDITSTREAM_INTERNAL_WRITER_KEY"
ENV_PUBLIC_KEY = "AUDITSTREAM_INTERNAL_PUBLIC_KEY"
ENV_SUPERVISOR = "AUDITSTREAM_INTERNAL_SUPERVISOR_PID"
#: Where the socket (and the writer's pid file) go; a fresh private directory if unset.
#: Tests and tools that want to reach the writer set it, and ENV_KEY, themselves.
ENV_RUNTIME = "AUDITSTREAM_INTERNAL_RUNTIME_DIR"


def prepare_database(settings: Settings) -> str:
    """Migrate the file, and load the demo into an empty one. Answers why the file cannot
    be written (a full disk, a read-only file), or "" when it can."""
    from .app import build_services, load_demo
    from .log.channel import ClosedChannel

    async def run() -> str:
        svc = build_services(settings.with_(metrics_dir=""))
        try:
            channel = getattr(svc.store, "channel", None)
            if isinstance(channel, ClosedChannel):
                return channel.reason
            if settings.demo:
                await load_demo(svc)
            return ""
        finally:
            await svc.close()

    return asyncio.run(run())


def exit_with_parent(interval: float = 1.0) -> None:
    """SIGTERM this process (a clean stop: the writer commits what it accepted) once the
    supervisor that started it is gone. Without it a ``kill -9`` of the supervisor left the
    writer and the workers running: the port stayed taken, and the next ``serve`` on the
    file failed to start or ran beside them. Polling ``getppid`` rather than
    ``PR_SET_PDEATHSIG``: that fires when the parent *thread* exits, and is Linux only.
    The supervisor's pid comes from the environment: a worker still importing when the
    supervisor died would otherwise take its new parent (init) for the supervisor."""
    parent = int(os.environ.get(ENV_SUPERVISOR, os.getppid()))

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(interval)
        log.warning("auditstream: the supervisor (pid %d) is gone; stopping", parent)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="auditstream-parent-watch", daemon=True).start()


def writer_main(env: dict[str, str]) -> None:
    """The writer process (a ``spawn`` target: it starts from a fresh interpreter)."""
    os.environ.update(env)
    exit_with_parent()
    settings = Settings.from_env()
    from .store.sqlite import open_log

    signer = load_or_create_signer(settings.db, settings.deployment) \
        if settings.integrity else None
    opened = open_log(settings.db, indexed_paths=settings.indexed_path_list,
                      synchronous=settings.synchronous,
                      idempotency_hours=settings.idempotency_hours, signer=signer,
                      deployment=settings.deployment)
    if opened.sequencer is None:
        raise SystemExit(f"auditstream writer: {opened.refused}")
    Path(env[ENV_SOCKET] + ".pid").write_text(f"{os.getpid()}\n")
    sequencer = opened.sequencer
    metrics = Metrics.for_workers(settings.metrics_dir) if settings.metrics_dir else None
    try:
        run_writer(env[ENV_SOCKET], bytes.fromhex(env[ENV_KEY]), lambda on_notices: WriterThread(
            sequencer, max_queue_events=settings.writer_queue_events, on_notices=on_notices,
            on_commit=metrics.on_commit if metrics is not None else None))
    finally:
        opened.close()


def worker_app() -> FastAPI:
    """The app of one HTTP worker (uvicorn's factory, in each worker process)."""
    from .app import RemoteWriter, create_app

    exit_with_parent()
    settings = Settings.from_env()
    feed = CommitFeed()
    channel = RemoteChannel(os.environ[ENV_SOCKET], bytes.fromhex(os.environ[ENV_KEY]), feed)
    return create_app(settings, remote=RemoteWriter(
        channel, feed, os.environ.get(ENV_PUBLIC_KEY, ""),
        runtime_dir=os.path.dirname(os.environ[ENV_SOCKET])))


class Supervisor(Multiprocess):
    """uvicorn's process manager, also keeping the writer process alive."""

    def __init__(self, config: uvicorn.Config, sockets: list[socket.socket],
                 writer_env: dict[str, str], metrics_dir: str):
        super().__init__(config, sockets)
        self.writer_env = writer_env
        self.metrics_dir = metrics_dir
        self.writer: Any = None
        self.start_writer()

    def start_writer(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.writer = ctx.Process(target=writer_main, args=(self.writer_env,),
                                  name="auditstream-writer")
        self.writer.start()

    def keep_subprocess_alive(self) -> None:
        if not self.should_exit.is_set() and not self.writer.is_alive():
            log.warning("the writer process exited (%s); starting another",
                        self.writer.exitcode)
            if self.metrics_dir:
                worker_exited(self.writer.pid, self.metrics_dir)
            self.start_writer()
        for process in self.processes:
            if not process.process.is_alive() and self.metrics_dir and process.pid:
                worker_exited(process.pid, self.metrics_dir)
        super().keep_subprocess_alive()

    def run(self) -> None:
        try:
            super().run()
        finally:
            self.writer.terminate()  # SIGTERM: it commits what it accepted, then exits
            self.writer.join(timeout=30)
            if self.writer.is_alive():
                self.writer.kill()


def uvicorn_config(app: Any, settings: Settings, **options: Any) -> uvicorn.Config:
    """uvicorn's configuration, the same whichever way auditstream serves.
    ``timeout_graceful_shutdown``: a Server-Sent Events stream never ends by itself, so
    without it a Ctrl-C waited for every such client to leave."""
    return uvicorn.Config(app, loop="uvloop", http="httptools", access_log=False,
                          timeout_graceful_shutdown=settings.shutdown_grace_seconds,
                          **options)


def serve(settings: Settings, sock: socket.socket, *, ready: Callable[[], None] = lambda: None,
          log_level: str = "warning") -> None:
    """Run the multi-process server on the listening ``sock`` until SIGINT or SIGTERM;
    ``ready()`` once the database is prepared (the socket already queues connections)."""
    refused = prepare_database(settings)
    if refused:
        # No writer process can start; one process serves the reads and answers ingest 503.
        log.warning("auditstream: the database cannot be written (%s): one process serves "
                    "it read-only", refused)
        from .app import create_app

        ready()
        uvicorn.Server(uvicorn_config(create_app(settings.with_(workers=1)), settings,
                                      log_level=log_level)).run(sockets=[sock])
        return
    given = os.environ.get(ENV_RUNTIME)
    runtime = given or tempfile.mkdtemp(prefix="auditstream-")  # 0700: the socket's home
    metrics_dir = settings.metrics_dir or os.path.join(runtime, "metrics")
    prepare_directory(metrics_dir)
    signer = load_or_create_signer(settings.db, settings.deployment) \
        if settings.integrity else None
    env = {**settings.with_(metrics_dir=metrics_dir, demo=False).to_env(),
           ENV_SOCKET: os.path.join(runtime, "writer.sock"),
           ENV_KEY: os.environ.get(ENV_KEY) or secrets.token_hex(32),
           ENV_PUBLIC_KEY: signer.verifier_key() if signer is not None else "",
           ENV_SUPERVISOR: str(os.getpid())}
    del signer  # the workers get the public key only
    # uvicorn's workers start from fresh interpreters and read their settings from here.
    os.environ.update(env)
    ready()
    config = uvicorn_config("auditstream.server:worker_app", settings, factory=True,
                            workers=settings.workers, log_level=log_level, lifespan="on")
    try:
        Supervisor(config, [sock], env, metrics_dir).run()
    finally:
        if not given:
            shutil.rmtree(runtime, ignore_errors=True)


__all__ = ["ENV_KEY", "ENV_PUBLIC_KEY", "ENV_RUNTIME", "ENV_SOCKET", "prepare_database", "serve",
           "uvicorn_config", "worker_app", "writer_main"]
