"""The no-database ceiling: the gateway's HTTP stack answering webhooks, storing nothing.

Litestar + msgspec served by uvicorn with uvloop and httptools, as `gateway
serve` runs them. Per request: the provider's token checked in constant time,
the JSON body decoded into the fields the gateway reads, and the gateway's
acknowledgement answered as JSON. bench/ingest.py starts it with

    uvicorn --factory nodb_app:create_app --app-dir bench --workers 2 --loop uvloop --http httptools

under the same wrk load as the gateway: what the stack itself allows on this
machine when the database costs nothing. A benchmark reference, not a mode
of the product. Secrets come from BENCH_SECRET_<PROVIDER>.
"""

from __future__ import annotations

import hmac
import os
import uuid
from typing import Any

import msgspec
from litestar import Litestar, Request, Response, get, post
from litestar.params import FromPath


class Lemlist(msgspec.Struct, frozen=True):
    id: str = msgspec.field(name="_id")
    type: str = ""
    createdAt: str = ""
    campaignId: str | None = None
    leadEmail: str | None = None
    linkedinUrl: str | None = None


class Postmark(msgspec.Struct, frozen=True):
    RecordType: str
    MessageID: str
    Recipient: str | None = None
    Tag: str | None = None


class PhantomBuster(msgspec.Struct, frozen=True):
    agentId: int | str
    containerId: int | str | None = None
    script: str | None = None
    resultObject: Any = None


DECODERS: dict[str, msgspec.json.Decoder[Any]] = {
    "lemlist": msgspec.json.Decoder(Lemlist),
    "postmark": msgspec.json.Decoder(Postmark),
    "phantombuster": msgspec.json.Decoder(PhantomBuster),
}


class Ack(msgspec.Struct, frozen=True):
    """The gateway's answer to a webhook."""

    delivery_id: str
    status: str
    events: int
    duplicates: int


def create_app() -> Litestar:
    """The app, with the secrets read once from the environment."""
    secrets = {p: os.environ.get(f"BENCH_SECRET_{p.upper()}", "").encode() for p in DECODERS}

    @post("/webhooks/{provider:str}", status_code=200)
    async def receive(request: Request[Any, Any, Any], provider: FromPath[str]) -> Response[Any]:
        decoder = DECODERS.get(provider)
        if decoder is None:
            return Response({"title": "unknown provider"}, status_code=404)
        token = request.query_params.get("token", "").encode()
        if not secrets[provider] or not hmac.compare_digest(token, secrets[provider]):
            return Response({"title": "unauthorized"}, status_code=401)
        try:
            decoder.decode(await request.body())
        except msgspec.DecodeError as exc:
            return Response({"title": "invalid payload", "detail": str(exc)}, status_code=400)
        return Response(Ack(str(uuid.uuid4()), "processed", 1, 0))

    @get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return Litestar([receive, healthz], request_max_body_size=64 * 2**20)
