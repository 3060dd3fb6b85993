"""tenant secrets encrypted at rest

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 07:00:00+00:00

The three company secrets become Fernet tokens under SECRET_KEY (read from the environment
as the services read it; SECRET_KEY_FALLBACKS also decrypt on downgrade), in columns wide
enough for the ciphertext. SQLite cannot change a column's type in place, and recreating
`companies` would cascade-delete every child row (foreign keys are on): there each column is
replaced by a new one (add, copy, drop, rename: native since SQLite 3.35).
"""

from collections.abc import Callable, Sequence

import sqlalchemy as sa
from alembic import op

import shared.db.types  # noqa: F401
from shared.config import Settings
from shared.security.secrets_at_rest import CIPHERTEXT_LENGTH, decrypt, encrypt, split_fallbacks, use_keys

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ("retell_api_key", "calcom_webhook_secret", "calcom_api_key")
PLAIN_LENGTH = 255


def _convert(convert: Callable[[str], str]) -> None:
    """Rewrite every non-null secret of every company with `convert` (under the env's keys)."""
    settings = Settings()
    bind = op.get_bind()
    companies = sa.table("companies", sa.column("id", sa.String), *map(sa.column, COLUMNS))
    rows = bind.execute(sa.select(companies.c.id, *(companies.c[c] for c in COLUMNS))).all()
    with use_keys(settings.secret_key, split_fallbacks(settings.secret_key_fallbacks)):
        for row in rows:
            values = {
                column: convert(value)
                for column, value in zip(COLUMNS, row[1:], strict=True)
                if value is not None
            }
            if values:
                bind.execute(companies.update().where(companies.c.id == row[0]).values(**values))


def _retype(old: int, new: int) -> None:
    if op.get_bind().dialect.name != "sqlite":
        with op.batch_alter_table("companies") as batch:
            for column in COLUMNS:
                batch.alter_column(
                    column,
                    existing_type=sa.String(old),
                    type_=sa.String(new),
                    existing_nullable=True,
                )
        return
    for column in COLUMNS:
        op.execute(f"ALTER TABLE companies ADD COLUMN {column}__new VARCHAR({new})")
        op.execute(f"UPDATE companies SET {column}__new = {column}")  # noqa: S608 (constants)
        op.execute(f"ALTER TABLE companies DROP COLUMN {column}")
        op.execute(f"ALTER TABLE companies RENAME COLUMN {column}__new TO {column}")


def upgrade() -> None:
    _retype(PLAIN_LENGTH, CIPHERTEXT_LENGTH)
    _convert(encrypt)


def downgrade() -> None:
    # Decrypt first: a value no key decrypts stops the downgrade (SecretKeyError) before the
    # columns narrow, instead of being lost.
    _convert(decrypt)
    _retype(CIPHERTEXT_LENGTH, PLAIN_LENGTH)
