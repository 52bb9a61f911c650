"""Initial schema: registrations, email deliveries, password resets, sign-in throttles and
notifications. Enums are kept as their names in VARCHAR(32) columns.

Revision ID: 0001
Revises:
Create Date: 2026-11-23 18:30:43.118560
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import registration.adapters.db.tables

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "notifications",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("order_id", sa.String(length=128), nullable=False),
        sa.Column("recipient", sa.String(length=254), nullable=False),
        sa.Column(
            "created_at", registration.adapters.db.tables.UtcDateTime(timezone=True), nullable=False
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("order_id"),
    )
    op.create_table(
        "sign_in_throttles",
        sa.Column("email_key", sa.String(length=64), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column(
            "window_started_at",
            registration.adapters.db.tables.UtcDateTime(timezone=True),
            nullable=False,
        ),
        sa.Column(
            "locked_until",
            registration.adapters.db.tables.UtcDateTime(timezone=True),
            nullable=True,
        ),
        sa.PrimaryKeyConstraint("email_key"),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("registration_id", sa.String(length=64), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("email_claim", sa.String(length=254), nullable=True),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=True),
        sa.Column("verification_token_hash", sa.String(length=64), nullable=True),
        sa.Column(
            "next_resend_at",
            registration.adapters.db.tables.UtcDateTime(timezone=True),
            nullable=True,
        ),
        sa.Column("resends_remaining", sa.Integer(), nullable=False),
        sa.Column(
            "created_at", registration.adapters.db.tables.UtcDateTime(timezone=True), nullable=False
        ),
        sa.Column(
            "verified_at", registration.adapters.db.tables.UtcDateTime(timezone=True), nullable=True
        ),
        sa.Column(
            "expires_at", registration.adapters.db.tables.UtcDateTime(timezone=True), nullable=False
        ),
        sa.Column(
            "updated_at", registration.adapters.db.tables.UtcDateTime(timezone=True), nullable=False
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("email_claim"),
        sa.UniqueConstraint("registration_id"),
    )
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_users_email"), ["email"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_users_verification_token_hash"),
            ["verification_token_hash"],
            unique=False,
        )

    op.create_table(
        "email_deliveries",
        sa.Column("id", sa.String(length=128), nullable=False),
        sa.Column("registration_id", sa.String(length=64), nullable=True),
        sa.Column("notification_id", sa.String(length=64), nullable=True),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.String(length=2000), nullable=True),
        sa.Column("message_id", sa.String(length=255), nullable=True),
        sa.Column(
            "created_at", registration.adapters.db.tables.UtcDateTime(timezone=True), nullable=False
        ),
        sa.Column(
            "sent_at", registration.adapters.db.tables.UtcDateTime(timezone=True), nullable=True
        ),
        sa.Column(
            "updated_at", registration.adapters.db.tables.UtcDateTime(timezone=True), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["notification_id"],
            ["notifications.id"],
        ),
        sa.ForeignKeyConstraint(
            ["registration_id"],
            ["users.registration_id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("email_deliveries", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_email_deliveries_notification_id"), ["notification_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_email_deliveries_registration_id"), ["registration_id"], unique=False
        )

    op.create_table(
        "password_resets",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("registration_id", sa.String(length=64), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column(
            "created_at", registration.adapters.db.tables.UtcDateTime(timezone=True), nullable=False
        ),
        sa.Column(
            "expires_at", registration.adapters.db.tables.UtcDateTime(timezone=True), nullable=False
        ),
        sa.Column(
            "used_at", registration.adapters.db.tables.UtcDateTime(timezone=True), nullable=True
        ),
        sa.Column(
            "updated_at", registration.adapters.db.tables.UtcDateTime(timezone=True), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["registration_id"],
            ["users.registration_id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
    )
    with op.batch_alter_table("password_resets", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_password_resets_registration_id"), ["registration_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("password_resets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_password_resets_registration_id"))

    op.drop_table("password_resets")
    with op.batch_alter_table("email_deliveries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_email_deliveries_registration_id"))
        batch_op.drop_index(batch_op.f("ix_email_deliveries_notification_id"))

    op.drop_table("email_deliveries")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_users_verification_token_hash"))
        batch_op.drop_index(batch_op.f("ix_users_email"))

    op.drop_table("users")
    op.drop_table("sign_in_throttles")
    op.drop_table("notifications")
