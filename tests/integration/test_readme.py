"""The README's read API examples run: each curl answers 200 on the seeded database."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from urllib.parse import urlsplit

from litestar import Litestar
from litestar.testing import AsyncTestClient

from gateway.db.pool import Pool
from gateway.db.seed import load_seed

README = Path(__file__).resolve().parents[2] / "README.md"


def read_api_examples() -> list[str]:
    """The URLs of the curl commands between the read-api-examples markers."""
    text = README.read_text()
    block = re.search(r"<!-- read-api-examples -->(.*?)<!-- /read-api-examples -->", text, re.S)
    assert block, "README lost its read API examples"
    return [
        shlex.split(line)[-1] for line in block.group(1).splitlines() if line.startswith("curl ")
    ]


async def test_readme_examples_answer(client: AsyncTestClient[Litestar], clean_db: Pool) -> None:
    async with clean_db.acquire() as conn:
        assert await load_seed(conn)
    examples = read_api_examples()
    assert len(examples) >= 8
    for example in examples:
        url = urlsplit(f"http://{example}")
        assert url.port == 8000, example
        response = await client.get(url.path + (f"?{url.query}" if url.query else ""))
        assert response.status_code == 200, (example, response.text)
        if url.path.startswith("/api/"):
            assert response.json(), example
