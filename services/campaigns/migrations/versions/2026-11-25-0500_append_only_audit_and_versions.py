"""append-only audit entries and immutable tier versions, enforced by the database

Revision ID: 7b3e9c2d4f10
Revises: d6a143005dda
Create Date: 2026-11-25 05:00:00
"""

from collections.abc import Sequence

from alembic import op


revision: str = '7b3e9c2d4f10'
down_revision: str | None = 'd6a143005dda'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# What the application never does, the database refuses too: an audit entry is never changed or removed,
# a tier version is never changed (a draft tier's versions go only when the tier is deleted).
SQLITE_UP = [
    "CREATE TRIGGER audit_entries_no_update BEFORE UPDATE ON audit_entries "
    "BEGIN SELECT RAISE(ABORT, 'audit_entries is append-only'); END",
    "CREATE TRIGGER audit_entries_no_delete BEFORE DELETE ON audit_entries "
    "BEGIN SELECT RAISE(ABORT, 'audit_entries is append-only'); END",
    "CREATE TRIGGER tier_versions_no_update BEFORE UPDATE ON tier_versions "
    "BEGIN SELECT RAISE(ABORT, 'tier_versions are immutable'); END",
]
SQLITE_DOWN = [
    "DROP TRIGGER IF EXISTS tier_versions_no_update",
    "DROP TRIGGER IF EXISTS audit_entries_no_delete",
    "DROP TRIGGER IF EXISTS audit_entries_no_update",
]
POSTGRESQL_UP = [
    """CREATE FUNCTION refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION '% is append-only', TG_TABLE_NAME;
    END
    $$""",
    "CREATE TRIGGER audit_entries_append_only BEFORE UPDATE OR DELETE ON audit_entries "
    "FOR EACH ROW EXECUTE FUNCTION refuse_change()",
    "CREATE TRIGGER tier_versions_immutable BEFORE UPDATE ON tier_versions "
    "FOR EACH ROW EXECUTE FUNCTION refuse_change()",
]
POSTGRESQL_DOWN = [
    "DROP TRIGGER IF EXISTS tier_versions_immutable ON tier_versions",
    "DROP TRIGGER IF EXISTS audit_entries_append_only ON audit_entries",
    "DROP FUNCTION IF EXISTS refuse_change()",
]


def _run(statements: list[str]) -> None:
    for statement in statements:
        op.execute(statement)


def upgrade() -> None:
    _run(POSTGRESQL_UP if op.get_bind().dialect.name == "postgresql" else SQLITE_UP)


def downgrade() -> None:
    _run(POSTGRESQL_DOWN if op.get_bind().dialect.name == "postgresql" else SQLITE_DOWN)
