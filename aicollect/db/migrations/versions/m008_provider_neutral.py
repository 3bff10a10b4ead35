"""Matching: a provider-neutral schema. Placements and payments seen carry the accounting
platform they come from (``provider``: ``qbo``, ``xero``) and the provider's company
(``company_id``: the QBO realm id, the Xero tenant id) instead of ``realm_id``; the
QBO-named columns get neutral names (``qbo_invoice_id`` -> ``invoice_id``,
``qbo_payment_id`` -> ``payment_id``, ``sync_token`` -> ``version``...), a version's order
is stored beside it (``version_sequence``: the QBO SyncToken as an integer), table
``qbo_payments`` becomes ``payments``, and the matching settings lose their ``qbo_``
prefix (``oob_amount_tolerance_cents``, ``oob_match_window_minutes``).

Every existing row is QBO's: ``provider`` becomes ``qbo``, the sequences are the digits of
the stored sync tokens. Downgrade refuses to run while a non-QBO row exists (the old schema
cannot hold it) and otherwise restores the old names exactly. Stored daily reports need
nothing: their protobuf field numbers did not change.

Revision ID: m008_provider_neutral
Revises: m007_outreach_pauses
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "m008_provider_neutral"
down_revision: str | None = "m007_outreach_pauses"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "matching"
PROVIDERS = "provider IN ('qbo', 'xero')"
UNAPPLIED = sa.text("unapplied_minor_units > 0 AND state = 'active'")

# (table, old column, new column), applied in this order on upgrade, reversed on downgrade.
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("placements", "realm_id", "company_id"),
    ("placements", "qbo_invoice_id", "invoice_id"),
    ("placements", "qbo_customer_id", "customer_id"),
    ("placements", "resolving_qbo_payment_id", "resolving_payment_id"),
    ("placements", "cause_qbo_payment_id", "cause_payment_id"),
    ("placements", "cause_sync_token", "cause_version"),
    ("placements", "qbo_invoice_sync_token", "invoice_version"),
    ("placements", "qbo_invoice_state", "invoice_state"),
    ("placements", "qbo_invoice_updated_at", "invoice_updated_at"),
    ("placements", "qbo_total_minor_units", "invoice_total_minor_units"),
    ("placements", "qbo_balance_minor_units", "invoice_balance_minor_units"),
    ("placements", "qbo_linked_payment_ids", "invoice_linked_payment_ids"),
    ("qbo_payments", "realm_id", "company_id"),
    ("qbo_payments", "qbo_payment_id", "payment_id"),
    ("qbo_payments", "sync_token", "version"),
    ("qbo_payments", "qbo_customer_id", "customer_id"),
    ("qbo_payments", "qbo_created_at", "provider_created_at"),
    ("qbo_payments", "qbo_updated_at", "provider_updated_at"),
    ("payment_applications", "qbo_payment_id", "payment_id"),
    ("payment_exclusions", "qbo_payment_id", "payment_id"),
    ("payment_exclusions", "sync_token", "version"),
    ("portal_payments", "mirrored_by_qbo_payment_id", "mirrored_by_payment_id"),
    ("oob_resolutions", "qbo_payment_id", "payment_id"),
    ("double_payments", "qbo_payment_id", "payment_id"),
)
SETTINGS = (
    ("qbo_oob_amount_tolerance_cents", "oob_amount_tolerance_cents"),
    ("qbo_oob_match_window_minutes", "oob_match_window_minutes"),
)


def _sequence_of(column: str) -> str:
    """SQL: the digits of a stored QBO sync token as its order, else 0."""
    return f"CASE WHEN {column} ~ '^[0-9]{{1,18}}$' THEN {column}::bigint ELSE 0 END"


def _rename_settings(pairs: Sequence[tuple[str, str]]) -> None:
    for old, new in pairs:
        op.execute(
            sa.text(f"UPDATE {SCHEMA}.settings SET key = :new WHERE key = :old").bindparams(
                old=old, new=new
            )
        )


def upgrade() -> None:
    # Old keys and indexes first: they name the old columns.
    op.drop_constraint("uq_placements_invoice", "placements", schema=SCHEMA)
    op.drop_index("ix_placements_customer", "placements", schema=SCHEMA)
    op.drop_index("ix_qbo_payments_unapplied", "qbo_payments", schema=SCHEMA)
    op.drop_constraint("qbo_payments_pkey", "qbo_payments", schema=SCHEMA)
    op.drop_constraint("uq_double_payments_payment", "double_payments", schema=SCHEMA)

    for table, old, new in COLUMNS:
        op.alter_column(table, old, new_column_name=new, schema=SCHEMA)
    op.rename_table("qbo_payments", "payments", schema=SCHEMA)

    for table in ("placements", "payments"):
        op.add_column(
            table,
            sa.Column("provider", sa.Text(), server_default="qbo", nullable=False),
            schema=SCHEMA,
        )
        # Every writer names the provider; the default only fills the existing rows.
        op.alter_column(table, "provider", server_default=None, schema=SCHEMA)
        op.create_check_constraint(f"ck_{table}_provider", table, PROVIDERS, schema=SCHEMA)
    op.add_column(
        "placements",
        sa.Column("invoice_version_sequence", sa.BigInteger(), server_default="0", nullable=False),
        schema=SCHEMA,
    )
    op.add_column(
        "payments",
        sa.Column("version_sequence", sa.BigInteger(), server_default="0", nullable=False),
        schema=SCHEMA,
    )
    op.execute(
        f"UPDATE {SCHEMA}.placements"
        f" SET invoice_version_sequence = {_sequence_of('invoice_version')}"
    )
    op.execute(f"UPDATE {SCHEMA}.payments SET version_sequence = {_sequence_of('version')}")

    op.create_unique_constraint(
        "uq_placements_invoice",
        "placements",
        ["tenant_id", "provider", "company_id", "invoice_id"],
        schema=SCHEMA,
    )
    op.create_index(
        "ix_placements_customer",
        "placements",
        ["tenant_id", "provider", "company_id", "customer_id"],
        schema=SCHEMA,
    )
    op.create_primary_key(
        "payments_pkey",
        "payments",
        ["tenant_id", "provider", "company_id", "payment_id"],
        schema=SCHEMA,
    )
    op.create_index(
        "ix_payments_unapplied",
        "payments",
        ["tenant_id", "provider", "company_id", "customer_id"],
        schema=SCHEMA,
        postgresql_where=UNAPPLIED,
    )
    op.create_unique_constraint(
        "uq_double_payments_payment",
        "double_payments",
        ["placement_id", "payment_id"],
        schema=SCHEMA,
    )
    _rename_settings(SETTINGS)


def downgrade() -> None:
    bind = op.get_bind()
    others = bind.execute(
        sa.text(
            f"SELECT (SELECT count(*) FROM {SCHEMA}.placements WHERE provider <> 'qbo')"
            f" + (SELECT count(*) FROM {SCHEMA}.payments WHERE provider <> 'qbo')"
        )
    ).scalar_one()
    if others:
        raise RuntimeError(
            f"{others} placements or payments come from a provider other than QBO; the "
            "schema before m008_provider_neutral cannot hold them (nothing was changed)"
        )
    _rename_settings([(new, old) for old, new in SETTINGS])
    op.drop_constraint("uq_double_payments_payment", "double_payments", schema=SCHEMA)
    op.drop_index("ix_payments_unapplied", "payments", schema=SCHEMA)
    op.drop_constraint("payments_pkey", "payments", schema=SCHEMA)
    op.drop_index("ix_placements_customer", "placements", schema=SCHEMA)
    op.drop_constraint("uq_placements_invoice", "placements", schema=SCHEMA)

    op.drop_column("payments", "version_sequence", schema=SCHEMA)
    op.drop_column("placements", "invoice_version_sequence", schema=SCHEMA)
    for table in ("placements", "payments"):
        op.drop_constraint(f"ck_{table}_provider", table, schema=SCHEMA)
        op.drop_column(table, "provider", schema=SCHEMA)
    op.rename_table("payments", "qbo_payments", schema=SCHEMA)
    for table, old, new in reversed(COLUMNS):
        op.alter_column(table, new, new_column_name=old, schema=SCHEMA)

    op.create_unique_constraint(
        "uq_double_payments_payment",
        "double_payments",
        ["placement_id", "qbo_payment_id"],
        schema=SCHEMA,
    )
    op.create_primary_key(
        "qbo_payments_pkey",
        "qbo_payments",
        ["tenant_id", "realm_id", "qbo_payment_id"],
        schema=SCHEMA,
    )
    op.create_index(
        "ix_qbo_payments_unapplied",
        "qbo_payments",
        ["tenant_id", "realm_id", "qbo_customer_id"],
        schema=SCHEMA,
        postgresql_where=UNAPPLIED,
    )
    op.create_index(
        "ix_placements_customer",
        "placements",
        ["tenant_id", "realm_id", "qbo_customer_id"],
        schema=SCHEMA,
    )
    op.create_unique_constraint(
        "uq_placements_invoice",
        "placements",
        ["tenant_id", "realm_id", "qbo_invoice_id"],
        schema=SCHEMA,
    )
