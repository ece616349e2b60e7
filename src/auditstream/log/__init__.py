"""The event log: sequencing, idempotency, leaf hashes, the Merkle tree, checkpoints and the
commit feed, independent of where the log is stored.

* :mod:`.prepared` -- an event made ready off the writer (canonical bytes around its seq,
  and the values an index keys on).
* :mod:`.protocol` -- the plain, picklable requests and replies between a worker and the
  writer, and the commit notice.
* :mod:`.storage` -- ``LogStorage``: the transactional primitives a backend provides.
* :mod:`.sequencer` -- ``Sequencer``: applies a group of requests in one transaction.
* :mod:`.writer` -- ``WriterThread``: the one thread that runs the sequencer (group commit).
* :mod:`.feed` -- ``CommitFeed``: who is waiting for which tenant's next commit.
* :mod:`.channel` -- how requests reach the writer: in this process, or over a socket to
  the writer process (``.process``).
"""
