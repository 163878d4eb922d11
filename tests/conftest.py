"""What every tier shares: the fixture bodies and the secrets the tests configure.

Plain values only, so that the unit tier runs with msgspec, hypothesis and
pytest alone. The database tiers' fixtures (a real PostgreSQL, an app on it,
the guard against outside hosts) are in tests/database.py, declared by
tests/integration/conftest.py and tests/e2e/conftest.py.
"""

from __future__ import annotations

from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures"

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


def fixture_body(provider: str, name: str) -> bytes:
    """The exact bytes of a fixture payload."""
    return (FIXTURES / provider / name).read_bytes()
