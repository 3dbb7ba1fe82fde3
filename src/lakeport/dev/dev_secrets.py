"""The one-machine platform's own secrets: made once, kept in the data directory (0600).

The PostgreSQL cluster under the data directory is initialised with this password, so
it must survive restarts together with the cluster. It is handed to the services only as
LAKEPORT_POSTGRES_PASSWORD, the variable the chart sets from its Secret.
"""

import os
import secrets
from pathlib import Path

from lakeport.dev.postgres import ServiceError

POSTGRES_PASSWORD_FILE = "secrets/postgres-password"


def postgres_password(data_dir: Path, cluster: Path) -> str:
    """The password of the PostgreSQL cluster `cluster` (its PGDATA), made on first use."""
    path = data_dir / POSTGRES_PASSWORD_FILE
    if path.exists():
        if path.stat().st_mode & 0o077:
            path.chmod(0o600)
        value = path.read_text().strip()
        if not value:
            raise ServiceError(f"{path} is empty; delete it together with {cluster}")
        return value
    if (cluster / "PG_VERSION").exists():
        raise ServiceError(
            f"{path} is missing but the PostgreSQL cluster in {cluster} was initialised "
            f"with the password it held; restore the file, or delete {cluster} to start "
            "with empty Dagster storage"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.parent.chmod(0o700)
    value = secrets.token_urlsafe(24)
    # Created 0600 from the start: the value is never readable by others, not even briefly.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    return value
