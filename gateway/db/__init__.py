"""Database access: embedded server, migrations, pool, and typed functions over named SQL."""
