"""``python -m auditstream`` and the ``auditstream`` command."""

import os
import signal


def run() -> None:
    """The CLI. Until it is imported (a second or so) a Ctrl-C ends the process at once:
    a KeyboardInterrupt raised inside a half-imported C extension printed a traceback, and
    sometimes the interpreter then crashed on its way out (SIGSEGV)."""
    default = signal.getsignal(signal.SIGINT) is signal.default_int_handler
    if default:  # not if the caller made us ignore it
        signal.signal(signal.SIGINT, lambda *_: os._exit(130))
    from .cli import main

    if default:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    main()


if __name__ == "__main__":
    run()
