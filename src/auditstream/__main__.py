"""``python -m auditstream`` and the ``auditstream`` command."""

import sys


def run() -> None:
    """The CLI; a Ctrl-C while it is still importing (a second or so) ends it quietly, with
    the shell's status for SIGINT, instead of a traceback from deep in an import."""
    try:
        from .cli import main

        main()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    run()
