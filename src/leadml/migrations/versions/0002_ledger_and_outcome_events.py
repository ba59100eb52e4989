"""The score ledger's provenance columns and sales outcome events.

scored_leads gains where a score came from (`source`), the reasons shown, and for retraining with
inverse-propensity weights whether the lead was handed over as exploration and its chance of being
handed over (`selection_probability`: 1.0 for MQLs). Rows written before this revision get
source 'api', no reasons, no exploration, and 1.0 or 0.0 by their MQL flag.

outcome_events keeps every sales event (sql_accepted, sql_rejected, won, lost) once per
(lead id, event, time), so a CRM that retries never double-counts.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the column types: later changes to leadml.store must not rewrite history.
JSON_TYPE = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
ID_TYPE = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
UTC_DATETIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("scored_leads") as batch:
        batch.add_column(sa.Column("source", sa.Text(), nullable=False, server_default="api"))
        batch.add_column(sa.Column("reasons", JSON_TYPE, nullable=True))
        batch.add_column(
            sa.Column("exploration", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(
            sa.Column("selection_probability", sa.Float(), nullable=False, server_default="1.0")
        )
    op.execute(
        "UPDATE scored_leads SET selection_probability = CASE WHEN is_mql THEN 1.0 ELSE 0.0 END"
    )
    op.create_table(
        "outcome_events",
        sa.Column("id", ID_TYPE, autoincrement=True, nullable=False),
        sa.Column("lead_id", sa.Text(), nullable=False),
        sa.Column("event", sa.Text(), nullable=False),
        sa.Column("occurred_at", UTC_DATETIME, nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("deal_value", sa.Float(), nullable=True),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("recorded_at", UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_outcome_events"),
        sa.UniqueConstraint(
            "lead_id", "event", "occurred_at", name="uq_outcome_events_lead_id_event_occurred_at"
        ),
    )
    op.create_index("ix_outcome_events_occurred_at", "outcome_events", ["occurred_at"])


def downgrade() -> None:
    op.drop_index("ix_outcome_events_occurred_at", table_name="outcome_events")
    op.drop_table("outcome_events")
    with op.batch_alter_table("scored_leads") as batch:
        batch.drop_column("selection_probability")
        batch.drop_column("exploration")
        batch.drop_column("reasons")
        batch.drop_column("source")
