"""Captured deliveries (contract §6): JSON Lines in, JSON Lines out.

One line is one delivery: `{"provider", "received_at", "headers", "query",
"body"}`, where `body` is the JSON payload itself or `{"base64": "…"}` for
bytes that are not JSON. A directory of plain `*.json` bodies also reads as a
capture, its provider named by `--provider` or by the directory.

One addition, optional on reading: `"fetched": {"from": URL, "body": …}`
carries the PhantomBuster result object the gateway fetched for a run, so that
an exported capture replays into a fresh database with the same events even
after PhantomBuster has dropped the result (docs/operations.md, "Replay, export and reprocess").

Reading never raises on bad input: a line that is not a capture comes out as a
`BadLine` naming `file:line`, and the replay counts it.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec

from gateway.delivery import Fetched
from providers.vocabulary import PROVIDERS


class Captured(msgspec.Struct, frozen=True, kw_only=True):
    """One delivery read from a capture, with where it was read from."""

    source: str
    """`file:line`, or the body file's path."""
    provider: str
    received_at: datetime | None
    """None for plain body files: the replay stamps its own time."""
    headers: dict[str, str]
    query: dict[str, str]
    body: bytes
    fetched: Fetched | None = None


class BadLine(msgspec.Struct, frozen=True, kw_only=True):
    """Input that is not a capture: reported with its place, counted, skipped."""

    source: str
    error: str


class _FetchedField(msgspec.Struct, kw_only=True):
    """A line's `fetched`, read and written alike."""

    source: str = msgspec.field(name="from")
    body: msgspec.Raw


class _Line(msgspec.Struct, kw_only=True):
    provider: str
    received_at: datetime | None = None
    headers: dict[str, str] = msgspec.field(default_factory=dict)
    query: dict[str, str] = msgspec.field(default_factory=dict)
    body: msgspec.Raw
    fetched: _FetchedField | None = None


class _Base64(msgspec.Struct, forbid_unknown_fields=True):
    base64: str


class _OutLine(msgspec.Struct, omit_defaults=True):
    provider: str
    received_at: datetime
    headers: dict[str, Any]
    query: dict[str, Any]
    body: msgspec.Raw
    fetched: _FetchedField | None = None


_line_decoder = msgspec.json.Decoder(_Line)
_base64_decoder = msgspec.json.Decoder(_Base64)
_encoder = msgspec.json.Encoder()


def read(paths: Sequence[Path], provider: str | None = None) -> Iterator[Captured | BadLine]:
    """Every delivery of the given captures, body files and body directories, in order.

    `*.json` files are plain bodies; any other file is JSON Lines. `provider`
    names the provider of plain bodies; unset, their directory's name does. A
    directory is read with its subdirectories: `payloads/` holding
    `lemlist/*.json` and `postmark/*.json` replays each under its folder's
    provider. A path that cannot be read is a BadLine, never an exception.
    """
    for path in paths:
        if path.is_dir():
            yield from _read_dir(path, provider)
        elif path.suffix == ".json":
            yield _read_body(path, provider)
        else:
            yield from _read_lines(path)


def _read_dir(path: Path, provider: str | None) -> Iterator[Captured | BadLine]:
    """A directory's `*.json` bodies, then its `*.jsonl` captures, then its subdirectories."""
    try:
        bodies, captures, subdirs = _listing(path)
    except OSError as exc:
        yield BadLine(source=str(path), error=f"cannot read: {exc.strerror or exc}")
        return
    if not (bodies or captures or subdirs):
        yield BadLine(source=str(path), error="no *.json bodies or *.jsonl captures here")
    for body_path in bodies:
        yield _read_body(body_path, provider)
    for capture_path in captures:
        yield from _read_lines(capture_path)
    for subdir in subdirs:
        yield from _read_dir(subdir, provider)


def _listing(path: Path) -> tuple[list[Path], list[Path], list[Path]]:
    """A directory's body files, capture files and subdirectories, sorted."""
    entries = sorted(path.iterdir())
    bodies = [p for p in entries if p.suffix == ".json" and p.is_file()]
    captures = [p for p in entries if p.suffix == ".jsonl" and p.is_file()]
    # Hidden and symlinked directories are left out: no surprises, no loops.
    subdirs = [
        p for p in entries if p.is_dir() and not p.is_symlink() and not p.name.startswith(".")
    ]
    return bodies, captures, subdirs


def count(paths: Sequence[Path]) -> int:
    """How many deliveries `read` will yield at most (for the progress line)."""
    total = 0
    for path in paths:
        if path.is_dir():
            try:
                bodies, captures, subdirs = _listing(path)
            except OSError:
                total += 1
                continue
            total += len(bodies) + count(captures) + count(subdirs)
        elif path.suffix == ".json":
            total += 1
        else:
            try:
                with path.open("rb") as f:
                    total += sum(1 for line in f if line.strip())
            except OSError:
                total += 1
    return total


def _read_body(path: Path, provider: str | None) -> Captured | BadLine:
    try:
        body = path.read_bytes()
    except OSError as exc:
        return BadLine(source=str(path), error=f"cannot read: {exc.strerror or exc}")
    name = provider or path.parent.name
    if name not in PROVIDERS:
        return BadLine(
            source=str(path),
            error=f"provider unknown: directory {path.parent.name!r} is not one of"
            f" {', '.join(PROVIDERS)}; pass --provider",
        )
    return Captured(
        source=str(path),
        provider=name,
        received_at=None,
        headers={"content-type": "application/json"},
        query={},
        body=body,
    )


def _read_lines(path: Path) -> Iterator[Captured | BadLine]:
    try:
        f = path.open("rb")
    except OSError as exc:
        yield BadLine(source=str(path), error=f"cannot read: {exc.strerror or exc}")
        return
    with f:
        for number, line in enumerate(f, start=1):
            if line.strip():
                yield parse_line(line, f"{path}:{number}")


def parse_line(line: bytes, source: str) -> Captured | BadLine:
    """One JSON Lines record as a delivery, or why it is not one."""
    try:
        decoded = _line_decoder.decode(line)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
        return BadLine(source=source, error=f"not a capture line: {exc}")
    if decoded.provider not in PROVIDERS:
        return BadLine(
            source=source,
            error=f"unknown provider {decoded.provider!r}; expected one of {', '.join(PROVIDERS)}",
        )
    try:
        body = _body_bytes(decoded.body)
        fetched = (
            Fetched(body=_body_bytes(decoded.fetched.body), source=decoded.fetched.source)
            if decoded.fetched is not None
            else None
        )
    except ValueError as exc:
        return BadLine(source=source, error=str(exc))
    received_at = decoded.received_at
    if received_at is not None and received_at.tzinfo is None:
        received_at = received_at.replace(tzinfo=UTC)
    return Captured(
        source=source,
        provider=decoded.provider,
        received_at=received_at,
        headers=decoded.headers,
        query=decoded.query,
        body=body,
        fetched=fetched,
    )


def _body_bytes(raw: msgspec.Raw) -> bytes:
    """The delivery's bytes: the JSON value as written, or the `{"base64"}` form decoded."""
    data = bytes(raw)
    if data.startswith(b"{"):
        try:
            wrapped = _base64_decoder.decode(data)
        except msgspec.DecodeError:
            return data
        try:
            return base64.b64decode(wrapped.base64, validate=True)
        except binascii.Error as exc:
            raise ValueError(f"body: invalid base64 ({exc})") from exc
    return data


def encode_line(
    *,
    provider: str,
    received_at: datetime,
    headers: dict[str, Any],
    query: dict[str, Any],
    body: bytes,
    fetched: Fetched | None = None,
) -> bytes:
    """One capture line, newline included, for a stored delivery."""
    line = _OutLine(
        provider=provider,
        received_at=received_at.astimezone(UTC),
        headers=headers,
        query=query,
        body=_body_json(body),
        fetched=_FetchedField(source=fetched.source, body=_body_json(fetched.body))
        if fetched is not None
        else None,
    )
    return _encoder.encode(line) + b"\n"


def _body_json(body: bytes) -> msgspec.Raw:
    """The body as JSON in the line: its exact bytes when they fit on one line.

    A pretty-printed body is re-encoded compactly (same JSON value, other
    bytes); anything that is not JSON, or that would read back as the
    `{"base64"}` form, is base64.
    """
    try:
        value = msgspec.json.decode(body)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        return _base64_json(body)
    if isinstance(value, dict) and list(value) == ["base64"]:
        return _base64_json(body)
    if b"\n" in body or b"\r" in body:
        return msgspec.Raw(_encoder.encode(value))
    return msgspec.Raw(body)


def _base64_json(body: bytes) -> msgspec.Raw:
    return msgspec.Raw(_encoder.encode({"base64": base64.b64encode(body).decode("ascii")}))
