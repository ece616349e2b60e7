"""Signed notes and checkpoints: golang.org/x/mod/sumdb/note vectors, round trips, tampering."""

from __future__ import annotations

import base64

import pytest

from auditstream.integrity.checkpoint import (
    Checkpoint,
    CheckpointFormatError,
    KeyFormatError,
    MalformedNoteError,
    NoteVerificationError,
    Signer,
    Verifier,
    format_checkpoint,
    generate_signer,
    key_id,
    open_checkpoint,
    open_note,
    parse_checkpoint,
    sign_note,
)
from auditstream.integrity.merkle import EMPTY_ROOT

# From the golang.org/x/mod/sumdb/note package documentation (ExampleSign / ExampleOpen).
GO_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
GO_SIG_LINE = (
    "\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKv"
    "qfqdngotpRZb6KE6RyyBwJnAM=\n"
)
GO_NOTE = GO_TEXT + "\n" + GO_SIG_LINE
# The second signature of the doubly-signed example note in the same documentation
# (signed by "EnochRoot", whose key is not published): an unknown key that must be ignored.
ENOCH_LINE = (
    "\u2014 EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwn"
    "WLox33WWd1RvMc+QQ=\n"
)

# Verifier-key example from the C2SP signed-note specification.
SPEC_VKEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
SPEC_NOTE = (
    "This is an example message.\n\n"
    "\u2014 example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3"
    "mFXmRKuwHjG1Yu72IneyaQM=\n"
)

ROOT = bytes(range(32))


# ---------------------------------------------------------------------------------------------
# Known-answer tests
# ---------------------------------------------------------------------------------------------


def test_go_signer_key_parses_and_reencodes() -> None:
    s = Signer.from_key_string(GO_SKEY)
    assert s.name == "PeterNeumann"
    assert s.key_id.hex() == "c74f20a3"
    assert s.key_string() == GO_SKEY
    assert s.verifier_key() == GO_VKEY
    assert "AYEK" not in repr(s)  # key material never in repr


def test_go_verifier_key_parses_and_reencodes() -> None:
    v = Verifier.from_key_string(GO_VKEY)
    assert (v.name, v.key_id.hex()) == ("PeterNeumann", "c74f20a3")
    assert v.key_string() == GO_VKEY
    assert key_id(v.name, v.public_key).hex() == "c74f20a3"


def test_sign_reproduces_go_vector_exactly() -> None:
    # Ed25519 is deterministic, so the whole note must match byte for byte.
    assert sign_note(GO_TEXT, Signer.from_key_string(GO_SKEY)) == GO_NOTE


def test_open_go_vector() -> None:
    assert open_note(GO_NOTE, GO_VKEY) == GO_TEXT
    assert open_note(GO_NOTE.encode(), Verifier.from_key_string(GO_VKEY)) == GO_TEXT


def test_open_go_doubly_signed_vector_ignores_unknown_key() -> None:
    assert open_note(GO_NOTE + ENOCH_LINE, GO_VKEY) == GO_TEXT
    assert open_note(GO_TEXT + "\n" + ENOCH_LINE + GO_SIG_LINE, GO_VKEY) == GO_TEXT


def test_open_c2sp_spec_example() -> None:
    assert open_note(SPEC_NOTE, SPEC_VKEY) == "This is an example message.\n"


def test_brief_typo_text_does_not_match_vector() -> None:
    # "the problem" instead of "your problem" is a different message: it must not verify.
    wrong = GO_TEXT.replace("your problem is", "the problem is")
    with pytest.raises(NoteVerificationError):
        open_note(wrong + "\n" + GO_SIG_LINE, GO_VKEY)


# ---------------------------------------------------------------------------------------------
# Tampering and wrong keys
# ---------------------------------------------------------------------------------------------


def test_every_single_byte_change_of_the_body_is_rejected() -> None:
    raw = GO_TEXT.encode()
    for i in range(len(raw) - 1):  # keep the final newline so the note still parses
        tampered = raw[:i] + bytes([raw[i] ^ 0x01]) + raw[i + 1 :]
        if tampered[i] < 0x20 and tampered[i] != 0x0A:
            continue  # would be rejected as malformed, tested separately
        note = tampered + b"\n" + GO_SIG_LINE.encode()
        with pytest.raises(NoteVerificationError):
            open_note(note, GO_VKEY)


def test_tampered_signature_is_rejected() -> None:
    sig = base64.b64decode(GO_SIG_LINE.split(" ")[2])
    for i in (4, 40, len(sig) - 1):  # skip the key id: that would make it an unknown key
        bad = sig[:i] + bytes([sig[i] ^ 0x80]) + sig[i + 1 :]
        line = "\u2014 PeterNeumann " + base64.b64encode(bad).decode() + "\n"
        with pytest.raises(NoteVerificationError, match="invalid signature"):
            open_note(GO_TEXT + "\n" + line, GO_VKEY)


def test_wrong_key_is_rejected() -> None:
    other = generate_signer("PeterNeumann")  # same name, different key and key id
    with pytest.raises(NoteVerificationError, match="not signed"):
        open_note(GO_NOTE, other.verifier_key())
    with pytest.raises(NoteVerificationError):
        open_note(sign_note(GO_TEXT, other), GO_VKEY)


def test_signature_under_same_name_and_id_but_other_key_is_rejected() -> None:
    # A forged key id collision: the line claims PeterNeumann+c74f20a3, the bytes are another
    # key's signature. It must be verified (and fail), not skipped.
    other = generate_signer("PeterNeumann")
    forged = base64.b64encode(bytes.fromhex("c74f20a3") + other.sign(GO_TEXT.encode())).decode()
    note = GO_TEXT + "\n\u2014 PeterNeumann " + forged + "\n"
    with pytest.raises(NoteVerificationError, match="invalid signature"):
        open_note(note, GO_VKEY)


def test_valid_signature_does_not_excuse_an_invalid_one_by_the_same_key() -> None:
    bad_sig = base64.b64encode(bytes.fromhex("c74f20a3") + bytes(64)).decode()
    note = GO_NOTE + "\u2014 PeterNeumann " + bad_sig + "\n"
    with pytest.raises(NoteVerificationError):
        open_note(note, GO_VKEY)


@pytest.mark.parametrize(
    "note",
    [
        GO_TEXT + GO_SIG_LINE,  # no blank line
        GO_TEXT + "\n",  # no signatures
        GO_TEXT + "\n" + GO_SIG_LINE.rstrip("\n"),  # no final newline
        GO_TEXT + "\n" + GO_SIG_LINE.replace("\u2014", "-"),  # ASCII dash
        GO_TEXT + "\n" + GO_SIG_LINE.replace("\u2014 ", "\u2014"),
        GO_TEXT + "\n" + GO_SIG_LINE.replace("PeterNeumann ", "PeterNeumann"),
        GO_TEXT + "\n" + GO_SIG_LINE.replace("=\n", "\n"),  # bad padding
        GO_TEXT + "\n" + GO_SIG_LINE.replace("x08go", "x08g!"),  # bad alphabet
        GO_TEXT + "\n" + "\u2014 PeterNeumann AAAA\n",  # too short
        GO_TEXT + "\n" + "\u2014  " + GO_SIG_LINE[2:],  # empty name
        GO_TEXT.replace("\n", "\r\n") + "\n" + GO_SIG_LINE,  # control character
        "tab\there\n\n" + GO_SIG_LINE,
        GO_TEXT + "\n" + GO_SIG_LINE + "\n",  # trailing blank line
        GO_TEXT + "\n" + GO_SIG_LINE * 101,  # too many signatures
    ],
)
def test_malformed_notes_are_rejected(note: str) -> None:
    with pytest.raises(MalformedNoteError):
        open_note(note, GO_VKEY)


def test_invalid_utf8_note_is_rejected() -> None:
    with pytest.raises(MalformedNoteError):
        open_note(b"\xff\xfe\n\n" + GO_SIG_LINE.encode(), GO_VKEY)
    with pytest.raises(MalformedNoteError):
        open_note("\ud800\n\n" + GO_SIG_LINE, GO_VKEY)


def test_body_with_inner_blank_lines_round_trips() -> None:
    signer = generate_signer("example.com/log")
    body = "first\n\nthird\n\n"  # the last blank line of the *note* separates the signatures
    assert open_note(sign_note(body, signer), signer.verifier_key()) == body


# ---------------------------------------------------------------------------------------------
# Keys
# ---------------------------------------------------------------------------------------------


def test_generated_signer_round_trips_through_key_strings() -> None:
    s = generate_signer("audit.example/tenant-7")
    again = Signer.from_key_string(s.key_string())
    assert again.key_id == s.key_id and again.public_key == s.public_key
    v = Verifier.from_key_string(s.verifier_key())
    assert v.key_string() == s.verifier_key()
    assert s.verifier_key().startswith(f"audit.example/tenant-7+{s.key_id.hex()}+")
    note = sign_note("hello\n", s)
    assert note == sign_note("hello\n", again)  # deterministic
    assert open_note(note, v) == "hello\n"


@pytest.mark.parametrize(
    "vkey",
    [
        "",
        "PeterNeumann",
        "PeterNeumann+c74f20a3",
        "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # wrong id
        "PeterNeumann+c74f20a+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # short id
        "PeterNeumann+c74f20ag+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # non-hex
        "PeterNeuman+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # other name
        "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # space
        "PeterNeumann+c74f20a3+Alpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # type 0x02
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10T",  # bad base64
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy1w==",  # short key
    ],
)
def test_malformed_verifier_keys_are_rejected(vkey: str) -> None:
    with pytest.raises(KeyFormatError):
        Verifier.from_key_string(vkey)
    with pytest.raises(KeyFormatError):
        open_note(GO_NOTE, vkey)


@pytest.mark.parametrize(
    "skey",
    [
        GO_SKEY.replace("PRIVATE+KEY", "PUBLIC+KEY"),
        GO_SKEY.replace("c74f20a3", "c74f20a4"),
        GO_SKEY.replace("PeterNeumann", "Peter"),  # id no longer matches the name
        GO_SKEY[:-1],
        GO_VKEY,
    ],
)
def test_malformed_signer_keys_are_rejected(skey: str) -> None:
    with pytest.raises(KeyFormatError):
        Signer.from_key_string(skey)


@pytest.mark.parametrize("name", ["", "a b", "a+b", "a\tb", "a\u00a0b", "a\u2003b", "a\nb"])
def test_invalid_key_names_are_rejected(name: str) -> None:
    with pytest.raises(KeyFormatError):
        generate_signer(name)


@pytest.mark.parametrize("body", ["no newline", "", "bell\x07\n", "\ud800\n"])
def test_sign_note_rejects_invalid_bodies(body: str) -> None:
    with pytest.raises(ValueError):
        sign_note(body, Signer.from_key_string(GO_SKEY))


# ---------------------------------------------------------------------------------------------
# Checkpoints
# ---------------------------------------------------------------------------------------------


def test_checkpoint_body_format() -> None:
    body = format_checkpoint("example.com/log", 20852163, ROOT)
    assert body == ("example.com/log\n20852163\n" + base64.b64encode(ROOT).decode() + "\n")
    assert parse_checkpoint(body) == Checkpoint("example.com/log", 20852163, ROOT, ())


def test_c2sp_spec_checkpoint_body_parses() -> None:
    body = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    cp = parse_checkpoint(body)
    assert (cp.origin, cp.size, cp.extensions) == ("example.com/behind-the-sofa", 20852163, ())
    assert len(cp.root) == 32 and cp.to_body() == body


def test_checkpoint_with_extensions_round_trips() -> None:
    cp = Checkpoint("log.example/acme", 0, EMPTY_ROOT, ("Timestamp: 1700000000", "x"))
    assert parse_checkpoint(cp.to_body()) == cp


def test_signed_checkpoint_round_trip_and_tamper() -> None:
    signer = generate_signer("log.example/acme")
    note = sign_note(format_checkpoint("log.example/acme", 42, ROOT), signer)
    cp = open_checkpoint(note, signer.verifier_key())
    assert cp == Checkpoint("log.example/acme", 42, ROOT)
    with pytest.raises(NoteVerificationError):
        open_checkpoint(note.replace("\n42\n", "\n43\n"), signer.verifier_key())


@pytest.mark.parametrize(
    "body",
    [
        "",
        "origin\n1\n",
        "origin\n1\n" + base64.b64encode(ROOT).decode(),  # no final newline
        "\n1\n" + base64.b64encode(ROOT).decode() + "\n",  # empty origin
        "origin\n01\n" + base64.b64encode(ROOT).decode() + "\n",  # leading zero
        "origin\n-1\n" + base64.b64encode(ROOT).decode() + "\n",
        "origin\n+1\n" + base64.b64encode(ROOT).decode() + "\n",
        "origin\n 1\n" + base64.b64encode(ROOT).decode() + "\n",
        "origin\n\u0661\n" + base64.b64encode(ROOT).decode() + "\n",  # Arabic-Indic one
        "origin\n18446744073709551616\n" + base64.b64encode(ROOT).decode() + "\n",  # 2**64
        "origin\n1\n" + base64.b64encode(ROOT[:31]).decode() + "\n",  # 31-byte root
        "origin\n1\n" + base64.b64encode(ROOT).decode().rstrip("=") + "\n",  # no padding
        "origin\n1\n" + base64.urlsafe_b64encode(b"\xff" * 32).decode() + "\n",  # url alphabet
        "origin\n1\n" + base64.b64encode(ROOT).decode() + "\n\n",  # empty extension
        "origin\n1\n" + base64.b64encode(ROOT).decode() + "\next\x01\n",  # control char
    ],
)
def test_malformed_checkpoints_are_rejected(body: str) -> None:
    with pytest.raises(CheckpointFormatError):
        parse_checkpoint(body)


def test_non_canonical_base64_root_is_rejected() -> None:
    good = base64.b64encode(ROOT).decode()  # ends in "PQ==" / "Hx8=" style padding
    last = good.rstrip("=")[-1]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    sibling = alphabet[alphabet.index(last) ^ 1]  # differs only in the discarded low bits
    bad = good.rstrip("=")[:-1] + sibling + "=" * (len(good) - len(good.rstrip("=")))
    assert base64.b64decode(bad) == ROOT
    with pytest.raises(CheckpointFormatError):
        parse_checkpoint(f"origin\n1\n{bad}\n")


@pytest.mark.parametrize(
    ("origin", "size", "root", "extensions"),
    [
        ("", 1, ROOT, ()),
        ("a\nb", 1, ROOT, ()),
        ("o", -1, ROOT, ()),
        ("o", 2**64, ROOT, ()),
        ("o", 1, ROOT[:31], ()),
        ("o", 1, ROOT, ("",)),
        ("o", 1, ROOT, ("a\nb",)),
    ],
)
def test_format_checkpoint_rejects_invalid_fields(
    origin: str, size: int, root: bytes, extensions: tuple[str, ...]
) -> None:
    with pytest.raises(CheckpointFormatError):
        format_checkpoint(origin, size, root, extensions)
