"""Webhook secrets and API keys: configured, or generated once and kept owner-only.

None of the three providers signs its payloads, so each provider has a shared
secret that arrives in the URL: `?token=` or the HTTP Basic password. The
management API takes a key in a header instead (`Authorization: Bearer` or
`X-API-Key`), never in the URL, where proxies and access logs would keep it.
Several comma-separated values are all accepted, for rotation.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hmac
import json
import os
import secrets
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from urllib.parse import quote

import msgspec

from gateway.settings import Settings
from providers.vocabulary import PROVIDERS

SECRETS_FILE = "webhook-secrets.json"
API_KEY_FILE = "api-key.json"
#: What a secret is replaced with wherever it would be stored, logged or answered.
REDACTED = "[redacted]"
REDACTED_BYTES = REDACTED.encode()


class WebhookSecrets:
    """The accepted secrets per provider, compared in constant time."""

    def __init__(self, by_provider: Mapping[str, tuple[str, ...]]) -> None:
        self._by_provider = {p: tuple(s.encode() for s in v) for p, v in by_provider.items()}
        self.by_provider = dict(by_provider)

    def verify(self, provider: str, candidates: list[str]) -> bool:
        """True when any candidate equals any secret of the provider.

        Every pair is compared, whatever matches first, so the time taken
        tells nothing about which secret or how much of it matched.
        """
        return _matches(candidates, self._by_provider.get(provider, ()))

    def all_values(self) -> list[str]:
        """Every secret, so that redaction can look for them anywhere."""
        return [s for values in self.by_provider.values() for s in values]


class Redactor:
    """Masks every configured secret wherever a request may carry it.

    Providers echo secrets in odd places (lemlist posts its hook `secret` in
    the body; a URL may carry the token under any query name), so the webhook
    edge masks every secret in header and query names and values and in the
    body bytes before anything is parsed, stored, logged or answered. Events,
    causes and stored bodies all come from the masked body, so a stored
    delivery parses again into exactly the events it first gave.

    In a body, a secret is masked as UTF-8 and in its JSON-escaped spellings.
    A JSON body that still holds `\\u` or `\\/` escapes is decoded to look for
    a secret spelt with them, and only then re-encoded (masked) instead of kept
    byte for byte. Each check is a substring search over the body: no decoding
    on the usual path.
    """

    def __init__(self, secrets: Iterable[str]) -> None:
        # Longest first: a secret that contains another is masked whole.
        values = sorted({s for s in secrets if s}, key=len, reverse=True)
        texts = dict.fromkeys(values)
        for value in values:  # as a header value decoded as Latin-1 spells it
            texts.setdefault(value.encode("utf-8", "surrogateescape").decode("latin-1"))
        self._texts = tuple(sorted(texts, key=len, reverse=True))
        self._lowered = tuple(dict.fromkeys(text.lower() for text in self._texts))
        forms: dict[bytes, None] = {}
        for value in values:
            forms.setdefault(value.encode("utf-8", "surrogateescape"))
            forms.setdefault(msgspec.json.encode(value)[1:-1])
            forms.setdefault(json.dumps(value)[1:-1].encode())  # \uXXXX for non-ASCII
        self._forms = tuple(sorted(forms, key=len, reverse=True))
        self._plain = tuple(value.encode("utf-8", "surrogateescape") for value in values)

    def text(self, value: str) -> str:
        """A header or query name or value with every secret masked."""
        for secret in self._texts:
            if secret in value:
                value = value.replace(secret, REDACTED)
        return value

    def name(self, value: str) -> str:
        """A header name, lower-cased, with every secret masked whatever its case.

        HTTP servers lower-case header names: a secret in one arrives lower-cased.
        """
        value = value.lower()
        for secret in self._lowered:
            if secret in value:
                value = value.replace(secret, REDACTED)
        return value

    def body(self, body: bytes) -> bytes:
        """Body bytes with every secret masked; unchanged (same object) when none is there."""
        for form in self._forms:
            if form in body:
                body = body.replace(form, REDACTED_BYTES)
        if self._plain and (b"\\u" in body or b"\\/" in body):
            return self._escaped(body)
        return body

    def _escaped(self, body: bytes) -> bytes:
        """The body re-encoded with secrets masked, when its decoded strings hold one."""
        try:
            canonical = msgspec.json.encode(msgspec.json.decode(body))
        except (msgspec.DecodeError, msgspec.EncodeError, UnicodeDecodeError, RecursionError):
            return body  # not JSON: no parser reads a string out of it
        if not any(secret in canonical for secret in self._plain):
            return body
        for form in self._forms:
            canonical = canonical.replace(form, REDACTED_BYTES)
        return canonical


class ApiKeys:
    """The keys the management API accepts, compared in constant time."""

    def __init__(self, keys: tuple[str, ...]) -> None:
        self._keys = tuple(k.encode() for k in keys)
        self.values = keys

    def verify(self, candidates: list[str]) -> bool:
        """True when any candidate equals any accepted key (every pair compared)."""
        return _matches(candidates, self._keys)


def _matches(candidates: list[str], accepted: tuple[bytes, ...]) -> bool:
    """Whether any candidate equals any accepted value.

    Every pair is compared, whatever matches first, so the time taken tells
    nothing about which value or how much of it matched.
    """
    matched = False
    for candidate in candidates:
        raw = candidate.encode("utf-8", "surrogateescape")
        for value in accepted:
            matched |= hmac.compare_digest(raw, value)
    return matched


def load_secrets(settings: Settings) -> tuple[WebhookSecrets, list[str]]:
    """Configured secrets, plus generated ones for unconfigured providers.

    Returns the secrets and the providers whose secret was generated just now
    (so that `serve` prints those URLs once).
    """
    configured = settings.secrets()
    missing: list[str] = [p for p in PROVIDERS if p not in configured]
    stored, generated = _stored_or_generated(settings.data_dir, SECRETS_FILE, missing, 24)
    merged = configured
    for provider in missing:
        merged[provider] = (stored[provider],)
    return WebhookSecrets(merged), generated


def load_api_keys(settings: Settings) -> tuple[ApiKeys, bool]:
    """The configured API keys, or the one generated under the data dir.

    Returns the keys and whether the key was generated just now (so that
    `serve` prints it once).
    """
    if settings.api_keys:
        return ApiKeys(settings.api_keys), False
    stored, generated = _stored_or_generated(settings.data_dir, API_KEY_FILE, ["api_key"], 32)
    return ApiKeys((stored["api_key"],)), bool(generated)


def known_redactor(settings: Settings) -> Redactor:
    """A Redactor for every secret configured or generated so far; generates none.

    Export and purge archives mask stored rows again with it: rows stored
    before the webhook edge masked bodies may still hold a secret.
    """
    values = [s for configured in settings.secrets().values() for s in configured]
    values += settings.api_keys
    for filename in (SECRETS_FILE, API_KEY_FILE):
        values += _read(settings.data_dir / filename).values()
    return Redactor(values)


def _stored_or_generated(
    data_dir: Path, filename: str, names: list[str], nbytes: int
) -> tuple[dict[str, str], list[str]]:
    """The values of `names` kept in `data_dir/filename`, generating the missing ones.

    Returns every stored value and the names generated just now. The file is
    owner-only and written under a lock, so concurrent workers all end up with
    one value per name.
    """
    if not names:
        return {}, []
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / filename
    with _locked(data_dir / f".{filename}.lock"):
        stored = _read(path)
        generated = [name for name in names if name not in stored]
        if generated:
            for name in generated:
                stored[name] = secrets.token_urlsafe(nbytes)
            _write_owner_only(path, stored)
    return stored, generated


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _read(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise RuntimeError(f"cannot read generated secrets from {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise RuntimeError(f"{path} does not hold a JSON object")
    return {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, str) and v}


def _write_owner_only(path: Path, values: dict[str, str]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(values, f, indent=2)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def credentials_from_request(query: Mapping[str, str], authorization: str | None) -> list[str]:
    """The secrets a request offers: `?token=` and the HTTP Basic password."""
    offered: list[str] = []
    token = query.get("token")
    if token:
        offered.append(token)
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "basic" and value:
            # A non-ASCII credential is a ValueError of its own (not binascii.Error):
            # it is as wrong as any other, never a server error.
            with contextlib.suppress(ValueError):
                decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
                _, sep, password = decoded.partition(":")
                if sep and password:
                    offered.append(password)
    return offered


def api_key_from_request(headers: Mapping[str, str]) -> list[str]:
    """The API keys a request offers: `Authorization: Bearer …` and `X-API-Key`."""
    offered: list[str] = []
    scheme, _, value = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        offered.append(value.strip())
    header = headers.get("x-api-key", "").strip()
    if header:
        offered.append(header)
    return offered


class SecretMask:
    """Masks configured secrets wherever they appear in what the API answers.

    Secrets are redacted when a delivery is stored, but only where the
    gateway knew to look (the token parameter, credential headers); a secret
    echoed in a body (lemlist sends its hook `secret`), under another query
    name, or in a row stored by an older version would otherwise be served.
    Each secret is looked for as written, JSON-escaped and URL-encoded.
    """

    def __init__(self, values: Iterable[str]) -> None:
        forms: set[str] = set()
        for value in values:
            if value:
                forms |= {
                    value,
                    json.dumps(value)[1:-1],
                    json.dumps(value, ensure_ascii=False)[1:-1],
                    quote(value, safe=""),
                }
        # Longest first: a secret containing another is masked whole.
        self._forms = sorted(forms, key=len, reverse=True)
        self._raw = [form.encode() for form in self._forms]

    def text(self, value: str) -> str:
        """The text with every secret replaced by [redacted]."""
        for form in self._forms:
            if form in value:
                value = value.replace(form, REDACTED)
        return value

    def bytes(self, value: bytes) -> bytes:
        """The bytes with every secret (UTF-8) replaced by [redacted]."""
        for form in self._raw:
            if form in value:
                value = value.replace(form, REDACTED_BYTES)
        return value

    def mapping(self, value: Mapping[str, str]) -> dict[str, str]:
        """A stored header or query mapping, names and values masked."""
        return {self.text(str(k)): self.text(str(v)) for k, v in value.items()}
