"""Alembic migrations: the owner of the database schema (see adapters/db/migrate.py)."""
