"""Flow deployments and per-flow reads: deployed_at / deploy_note, sessions by flow.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25

``flowengine flows deploy`` records when a version went live (and, with ``--force``,
why despite a failed replay check); diffs, replays and traffic diagrams read every
session of one flow, so sessions get an index on (flow_name, created_at).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("flow_versions") as batch:
        batch.add_column(sa.Column("deployed_at", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("deploy_note", sa.Text(), nullable=False, server_default=""))
    op.create_index("ix_sessions_flow_name_created_at", "sessions", ["flow_name", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_sessions_flow_name_created_at", table_name="sessions")
    with op.batch_alter_table("flow_versions") as batch:
        batch.drop_column("deploy_note")
        batch.drop_column("deployed_at")
