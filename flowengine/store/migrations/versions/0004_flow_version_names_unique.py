"""One text per flow name and version.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25

The engine refuses a changed file under an unchanged ``version:`` by reading the stored
versions before inserting one; on PostgreSQL (READ COMMITTED) two deploys racing
through that read could each insert a different text as the same version. The unique
index makes the second one fail instead.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "uq_flow_versions_name_version", "flow_versions", ["name", "version"], unique=True
    )


def downgrade() -> None:
    op.drop_index("uq_flow_versions_name_version", table_name="flow_versions")
