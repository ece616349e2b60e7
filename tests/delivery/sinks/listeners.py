"""Real syslog receivers (UDP, TCP, TLS) in threads, and strict parsers for what they get:
RFC 6587 octet counting, RFC 5424 messages and CEF."""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import queue
import re
import socket
import ssl
import threading
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

WAIT = 10.0  # seconds before a test that waits for a frame fails (not a timing assertion)


class StreamListener:
    """TCP (or TLS with ``tls``) on 127.0.0.1; every octet-counted frame it reads goes to
    ``frames``. A frame that is not ``LEN SP MSG`` fails the test through ``errors``."""

    def __init__(self, tls: ssl.SSLContext | None = None, handshake: bool = True,
                 port: int = 0, reply: bytes = b""):
        """``handshake=False``: a TLS listener that accepts and never answers; ``reply``:
        sent back once after the first frame of each connection, when ``go`` is set."""
        self.tls = tls
        self.reply = reply
        self.go = threading.Event()
        self.handshake = handshake
        self.sock = socket.create_server(("127.0.0.1", port))
        self.port = int(self.sock.getsockname()[1])
        self.frames: queue.Queue[bytes] = queue.Queue()
        self.errors: list[str] = []
        self.accepted = 0
        self.server_names: list[str | None] = []
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        if tls is not None:
            tls.sni_callback = lambda conn, name, ctx: self.server_names.append(name)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self._lock:
                self.accepted += 1
                self._conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        stream: Any = conn
        try:
            if self.tls is not None:
                if not self.handshake:
                    threading.Event().wait()  # accepts, then never says a word
                stream = self.tls.wrap_socket(conn, server_side=True)
                with self._lock:
                    self._conns.append(stream)
            buffer, replied = b"", False
            while True:
                data = stream.recv(65536)
                if not data:
                    break
                buffer += data
                before = self.frames.qsize()
                buffer = self._frames(buffer)
                if self.reply and not replied and self.frames.qsize() > before:
                    self.go.wait()
                    stream.sendall(self.reply)
                    replied = True
            if buffer:
                self.errors.append(f"connection closed inside a frame: {buffer[:80]!r}")
            stream.close()  # the sender closed: so does a receiver
        except (OSError, ValueError):
            pass  # a failed handshake, or a connection this listener dropped

    def _frames(self, buffer: bytes) -> bytes:
        while True:
            space = buffer.find(b" ")
            if space < 0:
                return buffer
            length = buffer[:space]
            if not re.fullmatch(rb"[1-9][0-9]*", length):
                self.errors.append(f"bad octet count {length[:20]!r}")
                return b""
            end = space + 1 + int(length)
            if len(buffer) < end:
                return buffer
            self.frames.put(buffer[space + 1:end])
            buffer = buffer[end:]

    def take(self, n: int) -> list[bytes]:
        frames = [self.frames.get(timeout=WAIT) for _ in range(n)]
        assert not self.errors, self.errors
        return frames

    def drop_connections(self) -> None:
        """Close every connection from this side (a receiver restarting, say)."""
        with self._lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()

    def close(self) -> None:
        # shutdown wakes the thread blocked in accept (close alone leaves it listening).
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self.drop_connections()


class UdpListener:
    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(WAIT)
        self.port = int(self.sock.getsockname()[1])

    def take(self, n: int) -> list[bytes]:
        return [self.sock.recvfrom(65536)[0] for _ in range(n)]

    def nothing(self) -> bool:
        self.sock.setblocking(False)
        try:
            self.sock.recvfrom(65536)
        except BlockingIOError:
            return True
        finally:
            self.sock.settimeout(WAIT)
        return False

    def close(self) -> None:
        self.sock.close()


@dataclass
class Cert:
    pem: str
    key_pem: str

    def server_context(self, tmp_path: Any) -> ssl.SSLContext:
        cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
        cert.write_text(self.pem)
        key.write_text(self.key_pem)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        return context


def self_signed(name: str = "localhost") -> Cert:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([
            x509.DNSName(name), x509.IPAddress(ipaddress.ip_address("127.0.0.2"))]),
            critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256()))
    return Cert(
        cert.public_bytes(serialization.Encoding.PEM).decode(),
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                          serialization.NoEncryption()).decode())


# RFC 5424 --------------------------------------------------------------------------------

_HEADER = re.compile(
    rb"^<([0-9]{1,3})>1 ([\x21-\x7e]+) ([\x21-\x7e]{1,255}) ([\x21-\x7e]{1,48}) "
    rb"([\x21-\x7e]{1,128}) ([\x21-\x7e]{1,32}) ")


@dataclass
class Syslog:
    pri: int
    timestamp: str
    hostname: str
    app_name: str
    procid: str
    msgid: str
    sd_id: str
    params: dict[str, str]
    msg: bytes  # after the BOM


def parse_syslog(data: bytes) -> Syslog:
    """A strict RFC 5424 parse of one message with one SD-ELEMENT and a BOM'd MSG."""
    m = _HEADER.match(data)
    assert m, data[:200]
    rest = data[m.end():].decode("utf-8")
    assert rest.startswith("["), rest[:80]
    end_id = rest.index(" ")
    sd_id, i, params = rest[1:end_id], end_id, {}
    assert re.fullmatch(r"[\x21-\x7e]{1,32}", sd_id) and not set(sd_id) & set('= ]"')
    while rest[i] == " ":
        eq = rest.index("=", i)
        name = rest[i + 1:eq]
        assert re.fullmatch(r"[\x21-\x7e]{1,32}", name) and not set(name) & set('= ]"')
        assert rest[eq + 1] == '"'
        j, value = eq + 2, []
        while rest[j] != '"':
            if rest[j] == "\\" and rest[j + 1] in '"\\]':
                j += 1
            else:
                assert rest[j] not in '"]', f"unescaped {rest[j]!r} in {name}"
            value.append(rest[j])
            j += 1
        params[name] = "".join(value)
        i = j + 1
    assert rest[i] == "]", rest[i:i + 20]
    after = rest[i + 1:].encode("utf-8")
    assert after.startswith(b" \xef\xbb\xbf"), after[:10]
    return Syslog(int(m[1]), m[2].decode(), m[3].decode(), m[4].decode(), m[5].decode(),
                  m[6].decode(), sd_id, params, after[4:])


# CEF -------------------------------------------------------------------------------------

@dataclass
class Cef:
    header: list[str]
    extension: dict[str, str]


def parse_cef(text: str) -> Cef:
    """Seven header fields (``\\|`` and ``\\\\`` unescaped) and the ``key=value``
    extension (``\\=``, ``\\\\``, ``\\n``, ``\\r`` unescaped)."""
    header, field, i = [], [], 0
    while len(header) < 7:
        c = text[i]
        if c == "\\":
            assert text[i + 1] in "|\\", f"bad header escape at {i}"
            field.append(text[i + 1])
            i += 2
            continue
        assert c not in "\r\n"
        if c == "|":
            header.append("".join(field))
            field = []
        else:
            field.append(c)
        i += 1
    extension: dict[str, str] = {}
    rest = text[i:]
    keys = list(re.finditer(r"(?:^| )([A-Za-z0-9_]+)=", rest))
    for n, key in enumerate(keys):
        raw = rest[key.end():keys[n + 1].start() if n + 1 < len(keys) else len(rest)]
        value, j = [], 0
        while j < len(raw):
            if raw[j] == "\\":
                value.append({"\\": "\\", "=": "=", "n": "\n", "r": "\r"}[raw[j + 1]])
                j += 2
            else:
                assert raw[j] not in "=\r\n", f"unescaped {raw[j]!r} in {key[1]}"
                value.append(raw[j])
                j += 1
        assert key[1] not in extension
        extension[key[1]] = "".join(value)
    return Cef(header, extension)
