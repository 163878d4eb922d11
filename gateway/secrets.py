"""Webhook secrets: configured, or generated once and kept owner-only.

None of the three providers signs its payloads, so each provider has a shared
secret that arrives in the URL: `?token=` or the HTTP Basic password. Several
comma-separated secrets are all accepted, for rotation.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import hmac
import json
import os
import secrets
from collections.abc import Iterator, Mapping
from pathlib import Path

from gateway.settings import PROVIDERS, Settings

SECRETS_FILE = "webhook-secrets.json"


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
        accepted = self._by_provider.get(provider, ())
        matched = False
        for candidate in candidates:
            raw = candidate.encode("utf-8", "surrogateescape")
            for secret in accepted:
                matched |= hmac.compare_digest(raw, secret)
        return matched

    def all_values(self) -> list[str]:
        """Every secret, so that redaction can look for them anywhere."""
        return [s for values in self.by_provider.values() for s in values]


def load_secrets(settings: Settings) -> tuple[WebhookSecrets, list[str]]:
    """Configured secrets, plus generated ones for unconfigured providers.

    Returns the secrets and the providers whose secret was generated just now
    (so that `serve` prints those URLs once). The file is owner-only and
    written under a lock, so concurrent workers all end up with one secret.
    """
    missing = [p for p in PROVIDERS if p not in settings.secrets]
    generated: list[str] = []
    stored: dict[str, str] = {}
    if missing:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        path = settings.data_dir / SECRETS_FILE
        with _locked(settings.data_dir / f".{SECRETS_FILE}.lock"):
            stored = _read(path)
            generated = [p for p in missing if p not in stored]
            if generated:
                for provider in generated:
                    stored[provider] = secrets.token_urlsafe(24)
                _write_owner_only(path, stored)
    merged = dict(settings.secrets)
    for provider in missing:
        merged[provider] = (stored[provider],)
    return WebhookSecrets(merged), generated


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
        raise RuntimeError(f"cannot read webhook secrets from {path}: {exc}") from exc
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
            with contextlib.suppress(binascii.Error, UnicodeDecodeError):
                decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
                _, sep, password = decoded.partition(":")
                if sep and password:
                    offered.append(password)
    return offered
