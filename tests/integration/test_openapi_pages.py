"""The OpenAPI pages load nothing from another host, and the document describes every answer."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from gateway.delivery import DELIVERY_STATUSES
from providers.vocabulary import EVENT_TYPES

Client = AsyncTestClient[Litestar]

#: Anything a page or style sheet would fetch: src/href attributes, CSS url(), @import.
_REFERENCE = re.compile(
    r"""(?:\b(?:src|href)\s*=\s*["']?|url\(\s*["']?|@import\s+["'])([^"')\s>]+)""", re.I
)


def _references(text: str) -> list[str]:
    return [ref for ref in _REFERENCE.findall(text) if not ref.startswith(("data:", "#"))]


@pytest.mark.parametrize("page", ["/schema", "/schema/swagger"])
async def test_schema_pages_load_everything_from_the_gateway(client: Client, page: str) -> None:
    response = await client.get(page)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    references = _references(response.text)
    assert len(references) >= 4, references  # icon, style sheet, two scripts
    for reference in references:
        parts = urlsplit(reference)
        assert not parts.scheme and not parts.netloc, f"{page} loads {reference} from elsewhere"
        asset = await client.get(reference)
        assert asset.status_code == 200, reference
        assert len(asset.content) > 500, reference
        if reference.endswith(".css"):
            assert asset.headers["content-type"].startswith("text/css")
            for nested in _references(asset.text):
                assert not urlsplit(nested).netloc, f"{reference} loads {nested}"
        if reference.endswith(".js"):
            assert "javascript" in asset.headers["content-type"]
    assert "cdn." not in response.text and "unpkg" not in response.text


async def test_only_local_pages_exist(client: Client) -> None:
    """Litestar's other pages (ReDoc, RapiDoc, Elements) would load from a CDN: not served."""
    for page in ("/schema/redoc", "/schema/rapidoc", "/schema/elements", "/schema/scalar"):
        assert (await client.get(page)).status_code == 404, page
    assert (await client.get("/schema/openapi.yaml")).status_code == 200
    assert (await client.get("/schema/openapi.json")).status_code == 200


async def _document(client: Client) -> dict[str, Any]:
    document: dict[str, Any] = (await client.get("/schema/openapi.json")).json()
    return document


async def test_the_webhook_is_described_completely(client: Client) -> None:
    document = await _document(client)
    webhook = document["paths"]["/webhooks/{provider}"]["post"]
    assert set(webhook["responses"]) == {"200", "400", "401", "404", "408", "413", "503"}
    for status in ("400", "401", "404", "408", "413", "503"):
        content = webhook["responses"][status]["content"]["application/problem+json"]
        assert content["schema"]["$ref"].endswith("/Problem"), status
    parameters = {p["name"]: p for p in webhook["parameters"]}
    assert parameters["provider"]["schema"]["enum"] == ["lemlist", "postmark", "phantombuster"]
    assert parameters["token"]["in"] == "query"
    assert webhook["security"] == [{"webhook_token": []}, {"webhook_basic": []}]
    schemes = document["components"]["securitySchemes"]
    assert schemes["webhook_token"] | {"description": ""} == {
        "type": "apiKey",
        "name": "token",
        "in": "query",
        "description": "",
    }
    assert (schemes["webhook_basic"]["type"], schemes["webhook_basic"]["scheme"]) == (
        "http",
        "basic",
    )
    ack = document["components"]["schemas"]["Ack"]["properties"]["status"]
    assert set(ack["enum"]) == {"processed", "duplicate", "unmatched", "ignored", "pending"}


async def test_vocabularies_are_enums(client: Client) -> None:
    schemas = (await _document(client))["components"]["schemas"]
    event = schemas["Event"]["properties"]
    all_types = EVENT_TYPES["email"] | EVENT_TYPES["linkedin"]
    assert sorted(event["event_type"]["enum"]) == sorted(all_types)  # one enum, no oneOf
    assert set(event["channel"]["enum"]) == set(EVENT_TYPES)
    assert event["provider"]["enum"] == ["lemlist", "postmark", "phantombuster"]
    assert tuple(schemas["Delivery"]["properties"]["status"]["enum"]) == DELIVERY_STATUSES


async def test_every_api_operation_documents_its_503(client: Client) -> None:
    document = await _document(client)
    for path, item in document["paths"].items():
        if path.startswith("/api/"):
            for method, operation in item.items():
                assert "503" in operation["responses"], (method, path)
