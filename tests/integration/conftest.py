"""The integration tier runs against a real PostgreSQL: the fixtures of tests/database.py."""

from tests.database import *  # noqa: F403  # its __all__: the fixtures, declared for this tier
