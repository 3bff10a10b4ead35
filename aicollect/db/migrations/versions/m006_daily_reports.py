"""Matching: the daily reconciliation reports, stored immutably per tenant and day with a
version per regeneration; each tenant's report settings (time zone, fee terms); and the
report-ready event on the outreach-event outbox (an event with no placement).

Revision ID: m006_daily_reports
Revises: m005_unapplied_payments_index
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "m006_daily_reports"
down_revision: str | None = "m005_unapplied_payments_index"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "matching"
TS = sa.DateTime(timezone=True)
OLD_TYPES = "type IN ('stop', 'pause', 'resume', 'balance_changed')"
NEW_TYPES = "type IN ('stop', 'pause', 'resume', 'balance_changed', 'report_ready')"


def upgrade() -> None:
    op.create_table(
        "tenant_report_settings",
        sa.Column("tenant_id", sa.Text(), primary_key=True),
        sa.Column("time_zone", sa.Text(), nullable=True),
        sa.Column("contingency_fee_bp", sa.Integer(), nullable=True),
        sa.Column("oob_fee_treatment", sa.Text(), nullable=True),
        sa.Column("oob_fee_bp", sa.Integer(), nullable=True),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("updated_by", sa.Text(), nullable=False),
        sa.CheckConstraint(
            "(contingency_fee_bp IS NULL) = (oob_fee_treatment IS NULL)"
            " AND (contingency_fee_bp IS NULL) = (oob_fee_bp IS NULL)",
            name="ck_tenant_report_settings_terms_whole",
        ),
        sa.CheckConstraint(
            "contingency_fee_bp BETWEEN 0 AND 10000 AND oob_fee_bp BETWEEN 0 AND 10000",
            name="ck_tenant_report_settings_bp",
        ),
        sa.CheckConstraint(
            "oob_fee_treatment IN ('full', 'reduced', 'waived')",
            name="ck_tenant_report_settings_treatment",
        ),
        schema=SCHEMA,
    )
    op.create_table(
        "daily_reports",
        sa.Column("id", sa.BigInteger(), primary_key=True, autoincrement=True),
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("time_zone", sa.Text(), nullable=False),
        sa.Column("end_time", TS, nullable=False),
        sa.Column("trigger", sa.Text(), nullable=False),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("currency_codes", sa.ARRAY(sa.Text()), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("sha256", sa.Text(), nullable=False),
        sa.Column("generated_at", TS, nullable=False),
        sa.UniqueConstraint("tenant_id", "day", "version", name="uq_daily_reports_version"),
        sa.CheckConstraint("version >= 1", name="ck_daily_reports_version"),
        sa.CheckConstraint(
            "trigger IN ('schedule', 'regenerate')", name="ck_daily_reports_trigger"
        ),
        schema=SCHEMA,
    )
    op.create_index("ix_daily_reports_end_time", "daily_reports", ["end_time"], schema=SCHEMA)
    # Stored reports never change: a regenerated day gets a new row. Deleting stays
    # possible for retention (after years).
    op.execute(
        f"""
        CREATE FUNCTION {SCHEMA}.daily_reports_immutable() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'daily reports are immutable; regenerate a new version instead';
        END $$
        """
    )
    op.execute(
        f"""
        CREATE TRIGGER daily_reports_no_update BEFORE UPDATE ON {SCHEMA}.daily_reports
        FOR EACH ROW EXECUTE FUNCTION {SCHEMA}.daily_reports_immutable()
        """
    )
    op.alter_column("outreach_events", "placement_id", nullable=True, schema=SCHEMA)
    op.add_column("outreach_events", sa.Column("report_day", sa.Date()), schema=SCHEMA)
    op.add_column("outreach_events", sa.Column("report_version", sa.Integer()), schema=SCHEMA)
    op.drop_constraint("ck_outreach_events_type", "outreach_events", schema=SCHEMA)
    op.create_check_constraint(
        "ck_outreach_events_type", "outreach_events", NEW_TYPES, schema=SCHEMA
    )
    op.create_check_constraint(
        "ck_outreach_events_subject",
        "outreach_events",
        "CASE WHEN type = 'report_ready'"
        " THEN placement_id IS NULL AND report_day IS NOT NULL AND report_version IS NOT NULL"
        " ELSE placement_id IS NOT NULL END",
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.execute(f"DELETE FROM {SCHEMA}.outreach_events WHERE type = 'report_ready'")
    op.drop_constraint("ck_outreach_events_subject", "outreach_events", schema=SCHEMA)
    op.drop_constraint("ck_outreach_events_type", "outreach_events", schema=SCHEMA)
    op.create_check_constraint(
        "ck_outreach_events_type", "outreach_events", OLD_TYPES, schema=SCHEMA
    )
    op.drop_column("outreach_events", "report_version", schema=SCHEMA)
    op.drop_column("outreach_events", "report_day", schema=SCHEMA)
    op.alter_column("outreach_events", "placement_id", nullable=False, schema=SCHEMA)
    op.drop_table("daily_reports", schema=SCHEMA)
    op.execute(f"DROP FUNCTION {SCHEMA}.daily_reports_immutable()")
    op.drop_table("tenant_report_settings", schema=SCHEMA)
