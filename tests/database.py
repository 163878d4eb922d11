"""The database tiers' fixtures and helpers: a real PostgreSQL for integration and e2e tests.

`tests/integration/conftest.py` and `tests/e2e/conftest.py` declare these
fixtures; the unit tier sees none of them and runs without asyncpg.
`TEST_DATABASE_URL` points at an existing server (a database there is
created and dropped per session); unset, an embedded PostgreSQL (pgserver)
starts in a temporary directory. Either way one server and one migrated
database serve the whole session, whichever tier asks first (they are kept
in pytest's stash, since each tier's conftest holds its own copy of a
session fixture). Integration tests empty its tables before each test.
Nothing here mocks the database.
"""

from __future__ import annotations

import os
import uuid
import warnings
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
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
from gateway.db.pool import Pool, create_pool, init_connection
from gateway.fetch import ResultFetcher
from gateway.ingest import Ingestor
from gateway.settings import Settings
from tests.conftest import API_KEY, PB_API, SECRET_SETTINGS, SECRETS

#: Hosts a test may reach for real: the gateway processes and servers it starts.
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
#: Every table a test may write, emptied before each integration test.
TABLES = (
    "campaign_events, contact_keys, campaign_enrollments, instance_keys, campaign_instances, "
    "linkedin_sequences, email_sequences, campaign_templates, webhook_deliveries"
)
#: The fixtures, which each database tier's conftest.py takes with `import *`.
__all__ = [
    "clean_db",
    "client",
    "create_database",
    "create_migrated_database",
    "database_url",
    "no_outside_requests",
    "pool",
    "server_url",
    "settings",
]
_SERVER = pytest.StashKey[str]()
_MIGRATED = pytest.StashKey[str]()


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
def server_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A PostgreSQL server's URL (its maintenance database), stopped when the session ends."""
    config = request.config
    if _SERVER not in config.stash:
        configured = os.environ.get("TEST_DATABASE_URL")
        if configured:
            config.stash[_SERVER] = configured
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # platformdirs, from inside pgserver
                import pgserver

                root = tmp_path_factory.mktemp("pg")
                server = pgserver.get_server(root / "pgdata", cleanup_mode="stop")
            config.add_cleanup(server.cleanup)
            config.stash[_SERVER] = server.get_uri()
    return config.stash[_SERVER]


def _admin(url: str, statement: str) -> None:
    """Run a statement outside any transaction, synchronously (callable from async tests)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(statement.encode())


def _new_database(server_url: str, prefix: str) -> tuple[str, str]:
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    _admin(server_url, f'CREATE DATABASE "{name}"')
    return name, with_database(server_url, name)


def _drop(server_url: str, name: str) -> None:
    _admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def create_database(server_url: str) -> Iterator[Callable[..., str]]:
    """A factory of fresh, empty databases, all dropped at the end of the session."""
    made: list[str] = []

    def make(prefix: str = "gw_test") -> str:
        name, url = _new_database(server_url, prefix)
        made.append(name)
        return url

    yield make
    for name in made:
        _drop(server_url, name)


@pytest.fixture(scope="session")
def database_url(request: pytest.FixtureRequest, server_url: str) -> str:
    """The session's migrated test database, dropped when the session ends."""
    config = request.config
    if _MIGRATED not in config.stash:
        name, url = _new_database(server_url, "gw_test")
        config.add_cleanup(lambda: _drop(server_url, name))
        apply_migrations(url)
        config.stash[_MIGRATED] = url
    return config.stash[_MIGRATED]


@pytest.fixture(scope="session")
async def pool(database_url: str) -> AsyncIterator[Pool]:
    """A pool on the migrated test database, for assertions on rows."""
    created = await asyncpg.create_pool(database_url, min_size=1, max_size=5, init=init_connection)
    assert created is not None
    yield created
    await created.close()


@pytest.fixture
async def clean_db(pool: Pool) -> Pool:
    """The test database with every table empty."""
    await pool.execute(f"TRUNCATE {TABLES} CASCADE")
    return pool


@pytest.fixture(scope="session")
def create_migrated_database(create_database: Callable[..., str]) -> Callable[[], str]:
    """A factory of fresh databases with every migration applied, for a test's own processes."""

    def make() -> str:
        url = create_database()
        apply_migrations(url)
        return url

    return make


def app_settings(database_url: str, data_dir: Path) -> Settings:
    """Settings for an app on a test database, with known secrets and a fake PhantomBuster API."""
    return Settings(
        database_url=database_url,
        data_dir=data_dir,
        **SECRET_SETTINGS,
        api_keys=(API_KEY, "previous-api-key"),
        phantombuster_api_key="pb-api-key",
        phantombuster_api_base=PB_API,
        phantombuster_result_hosts=("phantombuster.s3.amazonaws.com",),
        phantombuster_fetch_deadline_s=3.0,
        log_format="json",
    )


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    """Settings for an app on the test database (`app_settings`)."""
    return app_settings(database_url, tmp_path / "data")


@pytest.fixture
async def client(settings: Settings, clean_db: Pool) -> AsyncIterator[AsyncTestClient[Litestar]]:
    """An HTTP client on a running app (lifespan included) over an empty database."""
    app = create_app(settings, configure_logs=False)
    async with AsyncTestClient(app=app) as test_client:
        yield test_client


@asynccontextmanager
async def running_ingestors(settings: Settings, *, batch_max: int) -> AsyncIterator[list[Ingestor]]:
    """Two ingestors on two pools, two writers each: two gateway processes' batches at once."""
    pools = [await create_pool(settings, settings.database_url or "") for _ in range(2)]
    fetcher = ResultFetcher(settings)
    ingestors = [
        Ingestor(pool, settings, fetcher, writers=2, batch_max=batch_max) for pool in pools
    ]
    for ingestor in ingestors:
        await ingestor.start()
    try:
        yield ingestors
    finally:
        for ingestor in ingestors:
            await ingestor.stop()
        await fetcher.aclose()
        for pool in pools:
            await pool.close()


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
