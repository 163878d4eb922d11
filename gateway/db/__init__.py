"""Database access: embedded server, migrations, pool and named queries."""
