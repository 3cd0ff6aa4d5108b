"""Effect parameters: the amount an effect moves, fixed when it is requested.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25

A state with ``amount: excess`` (or ``held`` / ``due``) asks its effect to move an
exact number of base units computed in the transaction that requested it; the row
keeps it so a retry, or a runner that takes over after a crash, moves the same amount.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    json = sa.JSON().with_variant(JSONB(), "postgresql")
    with op.batch_alter_table("effects") as batch:
        batch.add_column(sa.Column("params", json, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("effects") as batch:
        batch.drop_column("params")
