"""``StreamSlots``: at most N open streams per credential, counted across processes.

In a server of several processes, each open stream holds an exclusive ``flock`` on one of
N slot files of its credential in a directory every process of the server shares. The
kernel drops a lock when its holder exits, however it exits, so a killed worker never
leaks a slot; and no process needs to talk to another to count. Slot files are named by a
hash of the credential's identity, never by the secret. A one-process server counts in
memory.
"""

from __future__ import annotations

import atexit
import fcntl
import hashlib
import os
import random
import shutil
import tempfile
from pathlib import Path


class StreamSlots:
    def __init__(self, directory: str | None, per_credential: int):
        """``directory`` shared by the processes of one server; None: this process is the
        whole server, and counts in memory (no file is needed: a full disk must not stop
        it from starting)."""
        self.dir = Path(directory) if directory else None
        self.private = False  # dir made by shared_dir: slots still count in memory
        if self.dir is not None:
            self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.per_credential = per_credential
        self.held: dict[str, int] = {}  # in memory: open streams per identity
        self.owner: dict[int, str] = {}  # in memory: slot token → identity
        self._next = -1

    def shared_dir(self) -> Path:
        """A directory for state the server's processes share about streams: the slots'
        own, or (one process) a private one made on first use and removed at exit; not at
        start, where a full disk must not stop the server."""
        if self.dir is None:
            self.dir = Path(tempfile.mkdtemp(prefix="auditstream-streams-"))
            atexit.register(shutil.rmtree, self.dir, True)
            self.private = True
        return self.dir

    def acquire(self, identity: str) -> int | None:
        """A held slot (a token to pass to ``release``), or None when all of this
        credential's slots are taken."""
        if self.dir is None or self.private:
            if self.held.get(identity, 0) >= self.per_credential:
                return None
            self.held[identity] = self.held.get(identity, 0) + 1
            token, self._next = self._next, self._next - 1  # negative: never a descriptor
            self.owner[token] = identity
            return token
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

    def release(self, token: int) -> None:
        if token >= 0:
            os.close(token)  # closing drops the lock
            return
        identity = self.owner.pop(token)
        self.held[identity] -= 1
        if not self.held[identity]:
            del self.held[identity]


__all__ = ["StreamSlots"]
