"""One event as an RFC 5424 syslog message, its body JSON or CEF (pure functions; the
``syslog`` sink sends them).

Message (RFC 5424 §6)::

    <PRI>1 TIMESTAMP HOSTNAME APP-NAME - MSGID [auditstream@32473 tenant="…" seq="…" id="…"] BOM MSG

* PRI = facility × 8 + the severity below; facility 13 (``log audit``) unless configured.
* Severity (RFC 5424 §6.2.1) from the event's: ``critical`` → 2 (Critical), ``high`` → 3
  (Error), ``medium`` → 4 (Warning), ``low`` → 5 (Notice), ``info`` → 6 (Informational).
* TIMESTAMP: the event's timestamp (RFC 3339, UTC, ``Z``, at most 6 fractional digits, as
  §6.2.3 wants). HOSTNAME: the deployment's name; APP-NAME: configured (``auditstream``);
  PROCID: ``-``. Each is cut to its length and characters outside printable US-ASCII
  (33–126) become ``_``; an empty one is ``-`` (NILVALUE).
* MSGID: the event type the same way, at most 32 characters.
* One SD-ELEMENT, SD-ID ``auditstream@32473`` (32473 is the enterprise number RFC 5612
  reserves for documentation), with PARAM-VALUEs escaped per §6.3.3 (``"``, ``\\`` and
  ``]`` get a ``\\``).
* BOM (``EF BB BF``) then MSG in UTF-8: the format's record as compact JSON (no newline),
  or CEF below.

CEF (ArcSight CEF rev. 25)::

    CEF:0|auditstream|auditstream|<version>|<type>|<title>|<severity>|<extension>

Header fields escape ``\\`` and ``|`` with a ``\\``; a line break in one becomes a space
(the header has no escape for it). The title is the type when the event has none.
Severity 0–10: info 1, low 3, medium 5, high 8, critical 10. Extension values escape
``\\``, ``=`` and line breaks (``\\n``, ``\\r``); keys, in this order, when the event
has the value:

    rt          timestamp, epoch milliseconds
    cat         category
    act         type (the audited action)
    outcome     outcome
    suser       actor.name, else actor.id
    suid        actor.id
    src         source.ip, else actor.ip (only a valid IPv4/IPv6 address: SIEMs type it)
    cs2 cs2Label  subject as type:id, "subject"
    msg         description
    externalId  id
    cs1 cs1Label  tenant, "tenant"
    cn1 cn1Label  seq, "seq"
    dvchost     the deployment
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from typing import Any

from .. import __version__
from ..model.times import format_us, parse_time
from .payload import object_of, text_of

#: Default facility: 13, "log audit" (RFC 5424 table 1).
AUDIT_FACILITY = 13
SEVERITY = {"critical": 2, "high": 3, "medium": 4, "low": 5, "info": 6}
CEF_SEVERITY = {"critical": 10, "high": 8, "medium": 5, "low": 3, "info": 1}
SD_ID = "auditstream@32473"
BOM = b"\xef\xbb\xbf"
NILVALUE = "-"

_NOT_PRINTUSASCII = re.compile(r"[^\x21-\x7e]")
_RFC5424_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z$")


def header_value(text: str, limit: int) -> str:
    """A HOSTNAME, APP-NAME, PROCID or MSGID: printable US-ASCII, at most ``limit``."""
    return _NOT_PRINTUSASCII.sub("_", text)[:limit] or NILVALUE


def sd_value(text: str) -> str:
    """A PARAM-VALUE (RFC 5424 §6.3.3)."""
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def timestamp(value: str) -> str:
    if _RFC5424_TIME.match(value):
        return value
    return format_us(parse_time(value))  # another RFC 3339 form: the canonical one is


def cef_header(text: str) -> str:
    return (text.replace("\\", "\\\\").replace("|", "\\|")
            .replace("\r\n", " ").replace("\r", " ").replace("\n", " "))


def cef_value(text: str) -> str:
    # CR and LF each keep their own escape: a CR LF pair reads back as both.
    return (text.replace("\\", "\\\\").replace("=", "\\=")
            .replace("\n", "\\n").replace("\r", "\\r"))


def _ip(value: Any) -> str:
    try:
        return str(ipaddress.ip_address(value)) if isinstance(value, str) else ""
    except ValueError:
        return ""


def cef_extension(event: dict[str, Any], deployment: str) -> list[tuple[str, str]]:
    actor, subject, source = (object_of(event, k) for k in ("actor", "subject", "source"))
    who = actor.get("name") if actor.get("name") is not None else actor.get("id")
    what = ":".join(text_of(subject[k]) for k in ("type", "id") if subject.get(k) is not None)
    ip = _ip(source.get("ip")) or _ip(actor.get("ip"))
    pairs = [
        ("rt", str(parse_time(event["timestamp"]) // 1000)),
        ("cat", text_of(event.get("category"))),
        ("act", text_of(event.get("type"))),
        ("outcome", text_of(event.get("outcome"))),
        ("suser", text_of(who)),
        ("suid", text_of(actor.get("id"))),
        ("src", ip),
    ]
    if what:
        pairs += [("cs2", what), ("cs2Label", "subject")]
    pairs += [("msg", text_of(event.get("description"))), ("externalId", text_of(event.get("id")))]
    if event.get("tenant") is not None:
        pairs += [("cs1", text_of(event["tenant"])), ("cs1Label", "tenant")]
    if event.get("seq") is not None:
        pairs += [("cn1", text_of(event["seq"])), ("cn1Label", "seq")]
    pairs.append(("dvchost", deployment))
    return [(k, v) for k, v in pairs if v != ""]


def cef(event: dict[str, Any], deployment: str) -> str:
    severity = str(event.get("severity") or "info")
    title = text_of(event.get("title")) or text_of(event.get("type"))
    header = [
        "CEF:0", "auditstream", "auditstream", __version__,
        cef_header(text_of(event.get("type"))), cef_header(title),
        str(CEF_SEVERITY.get(severity, 1)),
    ]
    extension = " ".join(f"{k}={cef_value(v)}" for k, v in cef_extension(event, deployment))
    return "|".join(header) + "|" + extension


def header(event: dict[str, Any], facility: int, hostname: str, app_name: str) -> bytes:
    """Everything before the BOM, with its trailing space."""
    pri = facility * 8 + SEVERITY.get(str(event.get("severity")), 6)
    sd = (f'[{SD_ID} tenant="{sd_value(text_of(event.get("tenant")))}" '
          f'seq="{sd_value(text_of(event.get("seq")))}" id="{sd_value(text_of(event["id"]))}"]')
    return (f"<{pri}>1 {timestamp(event['timestamp'])} {header_value(hostname, 255)} "
            f"{header_value(app_name, 48)} {NILVALUE} "
            f"{header_value(text_of(event.get('type')), 32)} {sd} ").encode()


def truncate_utf8(data: bytes, limit: int) -> bytes:
    """``data`` cut to at most ``limit`` bytes, never inside a UTF-8 character."""
    if len(data) <= limit:
        return data
    return data[:limit].decode("utf-8", "ignore").encode()


def message(event: dict[str, Any], body: Callable[[dict[str, Any]], bytes], *,
            facility: int, hostname: str, app_name: str,
            max_msg_bytes: int | None = None) -> bytes:
    """One syslog message; the MSG part (``body(event)``) cut to ``max_msg_bytes`` when
    given (UDP)."""
    msg = body(event)
    if max_msg_bytes is not None:
        msg = truncate_utf8(msg, max_msg_bytes)
    return header(event, facility, hostname, app_name) + BOM + msg


__all__ = ["AUDIT_FACILITY", "BOM", "SD_ID", "cef", "header", "message", "sd_value",
           "truncate_utf8"]
