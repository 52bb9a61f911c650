"""Abuse limits: uses of a limit per subject in a window (rate_limits), and sign-in failures
counted per address and source (sign_in_throttles keyed by both, with the run of lockouts).

The failure counts of the old sign_in_throttles are dropped: they are minutes old at most.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-06 04:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import registration.adapters.db.tables

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UtcDateTime = registration.adapters.db.tables.UtcDateTime


def upgrade() -> None:
    op.create_table(
        "rate_limits",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("window_started_at", UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    op.drop_table("sign_in_throttles")
    op.create_table(
        "sign_in_throttles",
        sa.Column("email_key", sa.String(length=64), nullable=False),
        sa.Column("source_key", sa.String(length=64), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("window_started_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("locked_until", UtcDateTime(timezone=True), nullable=True),
        sa.Column("lockouts", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("email_key", "source_key"),
    )


def downgrade() -> None:
    op.drop_table("sign_in_throttles")
    op.create_table(
        "sign_in_throttles",
        sa.Column("email_key", sa.String(length=64), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("window_started_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("locked_until", UtcDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("email_key"),
    )
    op.drop_table("rate_limits")
