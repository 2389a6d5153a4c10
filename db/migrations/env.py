"""Alembic environment: migrations always run on a connection db.schema hands over (inside
its lock and transaction), never from an alembic.ini."""
from __future__ import annotations

from alembic import context

from db.models import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with `python -m db upgrade`, not the alembic command")
context.configure(connection=connection, target_metadata=Base.metadata)
with context.begin_transaction():
    context.run_migrations()
