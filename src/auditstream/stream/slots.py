"""``StreamSlots``: at most N open streams per credential, counted across processes.

Each open stream holds an exclusive ``flock`` on one of N slot files of its credential in
a directory every process of the server shares. The kernel drops a lock when its holder
exits, however it exits, so a killed worker never leaks a slot; and no process needs to
talk to another to count. Slot files are named by a hash of the credential's identity,
never by the secret.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import random
import shutil
import tempfile
from pathlib import Path


class StreamSlots:
    def __init__(self, directory: str | None, per_credential: int):
        """``directory`` shared by the processes of one server; None: this process only
        (a private temporary directory, removed by ``close``)."""
        self.own = directory is None
        self.dir = Path(directory or tempfile.mkdtemp(prefix="auditstream-streams-"))
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.per_credential = per_credential

    def close(self) -> None:
        if self.own:
            shutil.rmtree(self.dir, ignore_errors=True)

    def acquire(self, identity: str) -> int | None:
        """A held slot (a file descriptor to pass to ``release``), or None when all of this
        credential's slots are taken."""
        name = hashlib.sha256(identity.encode()).hexdigest()[:32]
        # From a random slot on: probing from 0 made the k-th stream of a credential try
        # k locked files first (5,000 streams of one key took minutes to open).
        start = random.randrange(self.per_credential)
        for j in range(self.per_credential):
            i = (start + j) % self.per_credential
            fd = os.open(self.dir / f"{name}.{i}", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            return fd
        return None

    @staticmethod
    def release(fd: int) -> None:
        os.close(fd)  # closing drops the lock


__all__ = ["StreamSlots"]
