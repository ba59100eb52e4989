"""The store's first tables: MQL policy versions, scored leads, outcomes.

Revision ID: 0001
Revises:
Create Date: 2025-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the column types: later changes to leadml.store must not rewrite history.
JSON_TYPE = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
ID_TYPE = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
UTC_DATETIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "mql_policies",
        sa.Column("model_name", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("model_version", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("params", JSON_TYPE, nullable=False),
        sa.Column("cutoff", sa.Float(), nullable=False),
        sa.Column("grade_bands", JSON_TYPE, nullable=False),
        sa.Column("expected", JSON_TYPE, nullable=False),
        sa.Column("sentence", sa.Text(), nullable=False),
        sa.Column("set_by", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("model_name", "version", name="pk_mql_policies"),
    )
    op.create_table(
        "scored_leads",
        sa.Column("id", ID_TYPE, autoincrement=True, nullable=False),
        sa.Column("lead_id", sa.Text(), nullable=True),
        sa.Column("model_name", sa.Text(), nullable=False),
        sa.Column("model_version", sa.Text(), nullable=False),
        sa.Column("policy_version", sa.Integer(), nullable=True),
        sa.Column("probability", sa.Float(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("grade", sa.Text(), nullable=False),
        sa.Column("is_mql", sa.Boolean(), nullable=False),
        sa.Column("scored_at", UTC_DATETIME, nullable=False),
        sa.Column("features", JSON_TYPE, nullable=False),
        sa.ForeignKeyConstraint(
            ["model_name", "policy_version"],
            ["mql_policies.model_name", "mql_policies.version"],
            name="fk_scored_leads_model_name_policy_version_mql_policies",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_scored_leads"),
    )
    op.create_index("ix_scored_leads_lead_id", "scored_leads", ["lead_id"])
    op.create_index(
        "ix_scored_leads_model_name_scored_at", "scored_leads", ["model_name", "scored_at"]
    )
    op.create_table(
        "outcomes",
        sa.Column("lead_id", sa.Text(), nullable=False),
        sa.Column("converted", sa.Boolean(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("outcome_at", UTC_DATETIME, nullable=False),
        sa.Column("recorded_at", UTC_DATETIME, nullable=False),
        sa.Column("first_recorded_at", UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("lead_id", name="pk_outcomes"),
    )


def downgrade() -> None:
    op.drop_table("outcomes")
    op.drop_index("ix_scored_leads_model_name_scored_at", table_name="scored_leads")
    op.drop_index("ix_scored_leads_lead_id", table_name="scored_leads")
    op.drop_table("scored_leads")
    op.drop_table("mql_policies")
