"""``auditstream tail [Q]``: matching events live in the terminal, one coloured line each.

It reads ``/v1/events/stream`` through ``Client.stream``, so it rides out server restarts
(reconnecting with backoff and resuming after the last event shown: nothing is missed or
shown twice) and says so on stderr. Ctrl-C ends it with status 0.

Event fields are untrusted text: control characters (ANSI escapes, carriage returns,
newlines) and bidirectional overrides are shown escaped, so an event cannot rewrite the
terminal or forge a line.
"""

from __future__ import annotations

import contextlib
import sys
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.text import Text

from .cli_support import FAILED, USAGE, err, fail
from .model.text import clean

__all__ = ["format_line", "register", "tail_cmd"]

SEVERITY_STYLES = {"info": "dim", "low": "cyan", "medium": "yellow", "high": "bold red",
                   "critical": "bold white on red"}


def _actor(event: dict[str, Any]) -> str:
    actor = event.get("actor")
    if not isinstance(actor, dict):
        return "-"
    for key in ("name", "id", "type"):
        if actor.get(key) not in (None, ""):
            return clean(actor[key])
    return "-"


def format_line(event: dict[str, Any]) -> Text:
    """Time, severity (coloured), type, actor, title: one line of rich ``Text``."""
    ts = clean(event.get("timestamp", ""))[:19].replace("T", " ")
    severity = clean(event.get("severity", ""))
    line = Text(no_wrap=True, overflow="ellipsis")
    line.append(f"{ts:<19} ", style="dim")
    line.append(f"{severity.upper():<8} ", style=SEVERITY_STYLES.get(severity, ""))
    line.append(f"{clean(event.get('type', ''))} ", style="bold")
    line.append(f"{_actor(event)} ", style="cyan")
    line.append(clean(event.get("title", "")))
    return line


def tail_cmd(
    q: Annotated[str | None, typer.Argument(
        help="Filter in the query language of GET /v1/events?q= (e.g. 'severity:>=high "
             "type:user.*'); none: every event")] = None,
    url: Annotated[str, typer.Option(envvar="AUDITSTREAM_URL",
                                     help="Server base URL [env AUDITSTREAM_URL]")]
        = "http://127.0.0.1:8080",
    key: Annotated[str | None, typer.Option(
        envvar="AUDITSTREAM_API_KEY",
        help="API key (or JWT) with events:read [env AUDITSTREAM_API_KEY]")] = None,
    resume_from: Annotated[str | None, typer.Option(
        "--resume-from", help="Start after this seq or event id (default: from now on)")]
        = None,
    json_out: Annotated[bool, typer.Option(
        "--json", help="Print each event as one line of JSON instead")] = False,
) -> None:
    """Show matching events live as they are committed; survives server restarts."""
    import orjson

    from .client import Client, StreamAuthError, StreamError

    if not key:
        raise typer.BadParameter("an API key is needed (--key or AUDITSTREAM_API_KEY)",
                                 param_hint="--key")
    start: int | str | None = resume_from
    if resume_from is not None and resume_from.isdigit():
        start = int(resume_from)
    out = Console(highlight=False)
    # A terminal gets one line per event, cut to its width; a pipe or file the whole line.
    out.soft_wrap = not out.is_terminal

    def on_reconnect(delay: float, why: str) -> None:
        # Retried like any outage (tail rides out restarts), but a wrong --url looks the same.
        hint = (f"; is the server at {url} up? (--url, AUDITSTREAM_URL)"
                if "ConnectionRefused" in why else "")
        err.print(f"[dim]stream interrupted ({escape(clean(why))}){escape(clean(hint))}; "
                  f"reconnecting in {delay:g} s[/dim]")

    try:
        # ``closing``: a Ctrl-C that lands while a line is printed (outside the generator)
        # must still close the WebSocket, or its reader thread keeps the process alive.
        with Client(url, api_key=key) as client, contextlib.closing(client.stream(
                q=q, resume_from=start, on_reconnect=on_reconnect)) as events:
            for event in events:
                if json_out:
                    sys.stdout.write(orjson.dumps(event).decode() + "\n")
                    sys.stdout.flush()
                else:
                    out.print(format_line(dict(event)))
    except KeyboardInterrupt:
        raise typer.Exit(0) from None
    except StreamAuthError as exc:
        fail(clean(str(exc)), FAILED)
    except StreamError as exc:
        fail(clean(str(exc)), USAGE if exc.code in ("invalid_filter", "not_found", 404)
             else FAILED)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


def register(app: typer.Typer) -> None:
    """Add ``tail`` to the ``auditstream`` command."""
    app.command("tail")(tail_cmd)
