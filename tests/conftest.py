"""Shared fixtures: a real PostgreSQL for every test that needs one.

`TEST_DATABASE_URL` points at an existing server (a database there is created
and dropped per session); unset, an embedded PostgreSQL (pgserver) starts in a
temporary directory. The database is migrated once; integration tests empty
its tables before each test. Nothing here mocks the database.
"""

from __future__ import annotations

import os
import uuid
import warnings
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import psycopg
import pytest
import respx
from httpx import Response
from litestar import Litestar
from litestar.testing import AsyncTestClient

from gateway.app import create_app
from gateway.db.migrate import apply_migrations
from gateway.db.pool import Pool, init_connection
from gateway.settings import Settings

FIXTURES = Path(__file__).parent / "fixtures"
#: Hosts a test may reach for real: the gateway processes and servers it starts.
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


@pytest.fixture(autouse=True)
def no_outside_requests() -> Iterator[respx.Router]:
    """Refuse any HTTP request to a host that is neither local nor mocked by the test.

    A test fakes outbound hosts with its own `respx.mock`, which answers before
    this one refuses; a request nobody mocked raises respx's AllMockedAssertionError
    in the code under test (a 500 at the webhook edge) instead of quietly failing
    on DNS.
    """
    with respx.mock(assert_all_called=False, assert_all_mocked=True) as guard:
        guard.route(host__in=LOCAL_HOSTS).pass_through()
        yield guard


def with_database(url: str, name: str) -> str:
    """The same server URL, another database."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


@pytest.fixture(scope="session")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A PostgreSQL server's URL (its maintenance database)."""
    configured = os.environ.get("TEST_DATABASE_URL")
    if configured:
        yield configured
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver

        root = tmp_path_factory.mktemp("pg")
        server = pgserver.get_server(root / "pgdata", cleanup_mode="stop")
    yield server.get_uri()
    server.cleanup()


def _admin(url: str, statement: str) -> None:
    """Run a statement outside any transaction, synchronously (callable from async tests)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(statement.encode())


@pytest.fixture(scope="session")
def create_database(server_url: str) -> Iterator[object]:
    """A factory of fresh, empty databases, all dropped at the end of the session."""
    made: list[str] = []

    def make(prefix: str = "gw_test") -> str:
        name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        _admin(server_url, f'CREATE DATABASE "{name}"')
        made.append(name)
        return with_database(server_url, name)

    yield make
    for name in made:
        _admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def database_url(create_database: object) -> str:
    """The session's migrated test database."""
    url: str = create_database()  # type: ignore[operator]
    apply_migrations(url)
    return url


@pytest.fixture(scope="session")
async def pool(database_url: str) -> AsyncIterator[Pool]:
    """A pool on the migrated test database, for assertions on rows."""
    created = await asyncpg.create_pool(database_url, min_size=1, max_size=5, init=init_connection)
    assert created is not None
    yield created
    await created.close()


TABLES = (
    "campaign_events, contact_keys, campaign_enrollments, instance_keys, campaign_instances, "
    "linkedin_sequences, email_sequences, campaign_templates, webhook_deliveries"
)


@pytest.fixture
async def clean_db(pool: Pool) -> Pool:
    """The test database with every table empty."""
    await pool.execute(f"TRUNCATE {TABLES} CASCADE")
    return pool


SECRETS: dict[str, tuple[str, ...]] = {
    "lemlist": ("lemlist-secret",),
    "postmark": ("postmark-secret", "postmark-previous"),
    "phantombuster": ("phantombuster-secret",),
}
#: The same secrets as Settings fields (`secret_<provider>`).
SECRET_SETTINGS = {f"secret_{provider}": values for provider, values in SECRETS.items()}
PB_API = "https://api.phantombuster.test/api/v2"
API_KEY = "test-api-key"
#: The headers a management API write needs.
AUTH = {"authorization": f"Bearer {API_KEY}"}


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    """Settings for an app on the test database, with known secrets."""
    return Settings(
        database_url=database_url,
        data_dir=tmp_path / "data",
        **SECRET_SETTINGS,
        api_keys=(API_KEY, "previous-api-key"),
        phantombuster_api_key="pb-api-key",
        phantombuster_api_base=PB_API,
        phantombuster_result_hosts=("phantombuster.s3.amazonaws.com",),
        phantombuster_fetch_deadline_s=3.0,
        log_format="json",
    )


@pytest.fixture
async def client(settings: Settings, clean_db: Pool) -> AsyncIterator[AsyncTestClient[Litestar]]:
    """An HTTP client on a running app (lifespan included) over an empty database."""
    app = create_app(settings, configure_logs=False)
    async with AsyncTestClient(app=app) as test_client:
        yield test_client


def fixture_body(provider: str, name: str) -> bytes:
    """The exact bytes of a fixture payload."""
    return (FIXTURES / provider / name).read_bytes()


async def post_webhook(
    client: AsyncTestClient[Litestar],
    provider: str,
    body: bytes,
    *,
    token: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """POST a body to a provider's webhook with its secret (or the given token)."""
    secret = token if token is not None else SECRETS[provider][0]
    return await client.post(
        f"/webhooks/{provider}",
        params={"token": secret} if secret else None,
        content=body,
        headers={"content-type": "application/json", **(headers or {})},
    )


async def make_instance(
    pool: Pool, provider_config: dict[str, object], *, status: str = "active", name: str = "Test"
) -> uuid.UUID:
    """A template and an instance mapped to provider campaign keys."""
    template_id = await pool.fetchval(
        "INSERT INTO campaign_templates (name, type) VALUES ($1, 'multi_channel') RETURNING id",
        f"{name} template",
    )
    instance_id: uuid.UUID = await pool.fetchval(
        "INSERT INTO campaign_instances (template_id, name, status, provider_config)"
        " VALUES ($1, $2, $3, $4) RETURNING id",
        template_id,
        name,
        status,
        provider_config,
    )
    return instance_id


async def make_enrollment(
    pool: Pool, instance_id: uuid.UUID, email: str | None = None, linkedin_url: str | None = None
) -> uuid.UUID:
    """An enrollment made and counted into its instance as the gateway does (counted last)."""
    async with pool.acquire() as conn, conn.transaction():
        enrollment_id: uuid.UUID = await conn.fetchval(
            "INSERT INTO campaign_enrollments (instance_id, contact_email, linkedin_url)"
            " VALUES ($1, $2, $3) RETURNING id",
            instance_id,
            email,
            linkedin_url,
        )
        await conn.execute(
            "SELECT apply_counter_deltas($1, '{1}', '{0}', '{0}', '{0}', '{0}')", [instance_id]
        )
    return enrollment_id
