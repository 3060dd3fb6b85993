"""Plaintext keys this installation must show again: files with mode 0600 in its state dir.

API keys are stored hashed, so a key can only be printed again if its plaintext is kept
somewhere. `appointments run` keeps its service key and `seed-demo` the demo tenant's admin
key here (by default next to the SQLite database, else ./var), and reuses a kept key for as
long as it verifies against the database; only then is a new one issued.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

from shared.config import Settings
from shared.db.engine import Database
from shared.db.tenancy import SYSTEM
from shared.security.api_keys import VerifiedKey, issue_key, verify_key

DEFAULT_STATE_DIR = Path("var")
SERVICE_KEY_FILE = "service-key"
SERVICE_KEY_NAME = "services (appointments run)"


def state_dir(settings: Settings) -> Path:
    """The directory of the SQLite database file, else ./var."""
    url = make_url(settings.database_url)
    database = url.database or ""
    in_a_file = database not in ("", ":memory:") and not database.startswith("file:")
    if url.get_backend_name() == "sqlite" and in_a_file:
        return Path(database).parent
    return DEFAULT_STATE_DIR


def demo_key_file(directory: Path, company_id: str) -> Path:
    return directory / f"demo-key.{company_id}"


def read_key(path: Path) -> str | None:
    """The key kept in `path`, or None when there is none (or it is unreadable)."""
    try:
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeError):
        return None
    return text or None


def write_key(path: Path, plaintext: str) -> None:
    """Keep `plaintext` in `path`, readable by this user only (written atomically)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        temporary.unlink()
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(plaintext + "\n")
    os.replace(temporary, path)


async def kept_key(
    session: AsyncSession, path: Path, *, company_id: str | None, scope: str
) -> str | None:
    """The key kept in `path` if it still verifies, belongs to `company_id` (None: a platform
    key) and holds `scope`; else None."""
    plaintext = read_key(path)
    if plaintext is None:
        return None
    found: VerifiedKey | None = await verify_key(session, plaintext)
    if found is None or found.company_id != company_id or scope not in found.scopes:
        return None
    return plaintext


async def service_key(db: Database, directory: Path) -> tuple[str, bool]:
    """(the platform "service" key for `appointments run`, whether it was reused).

    The kept key while it verifies; else a new one, kept for the next start."""
    path = directory / SERVICE_KEY_FILE
    async with db.transaction(SYSTEM) as session:
        reused = await kept_key(session, path, company_id=None, scope="service")
        if reused is not None:
            return reused, True
        issued = issue_key(session, company_id=None, name=SERVICE_KEY_NAME, scopes=["service"])
    write_key(path, issued.plaintext)  # only once the key has committed
    return issued.plaintext, False
