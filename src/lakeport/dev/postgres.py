"""A PostgreSQL server run as a child process, for `make dev` and the tests.

The server binaries come from the system (Debian's `postgresql` package). PostgreSQL
refuses to run as root, so when we are root the server runs as the `postgres` user
and owns its data directory. The server is a direct child (no pg_ctl daemon), so
stopping the parent's supervisor stops it and leaves no orphan behind.
"""

import glob
import os
import pwd
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

import psycopg

from lakeport.dev.processes import ServerProcess, ServiceError, ServiceProcess, wait_until_ready

_SEARCH = ["/usr/lib/postgresql/*/bin", "/usr/local/pgsql/bin", "/opt/homebrew/bin", "/usr/bin"]


def find_postgres_bin() -> Path:
    on_path = shutil.which("initdb")
    candidates = ([str(Path(on_path).parent)] if on_path else []) + sorted(
        (d for pattern in _SEARCH for d in glob.glob(pattern)), reverse=True
    )
    for directory in candidates:
        if (Path(directory) / "initdb").exists() and (Path(directory) / "postgres").exists():
            return Path(directory)
    raise ServiceError(
        "PostgreSQL server binaries (initdb, postgres) not found in "
        + ", ".join(_SEARCH)
        + ": install them (Debian/Ubuntu: apt-get install postgresql; macOS: brew install "
        "postgresql@15)"
    )


def _run_as() -> str | None:
    """The user the server runs as: `postgres` when we are root, else ourselves."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise ServiceError(
            "running as root, but there is no 'postgres' user to run PostgreSQL as "
            "(apt-get install postgresql creates it)"
        ) from None
    return "postgres"


@dataclass
class PostgresServer(ServerProcess):
    """One PostgreSQL cluster in `data_dir`, served on `host:port` (password auth)."""

    data_dir: Path
    port: int
    password: str
    user: str = "lakeport"
    host: str = "127.0.0.1"
    log_file: Path | None = None
    # Tests trade crash safety for speed; `make dev` keeps fsync on.
    durable: bool = True

    @property
    def pgdata(self) -> Path:
        return self.data_dir / "pgdata"

    def url(self, database: str = "postgres") -> str:
        """SQLAlchemy URL (psycopg 3), with the password: never log it."""
        return f"postgresql+psycopg://{self.user}:{self.password}@{self.host}:{self.port}/{database}"

    def connect(self, database: str = "postgres", **kwargs) -> psycopg.Connection:
        return psycopg.connect(
            host=self.host, port=self.port, user=self.user, password=self.password,
            dbname=database, **kwargs,
        )

    def initialize(self) -> bool:
        """Create the cluster if there is none yet; True when it was created now."""
        if (self.pgdata / "PG_VERSION").exists():
            return False
        bin_dir = find_postgres_bin()
        run_as = _run_as()
        self.pgdata.mkdir(parents=True, exist_ok=True)
        pwfile = self.data_dir / ".initdb-pw"
        pwfile.write_text(self.password + "\n")
        pwfile.chmod(0o600)
        self._own(self.data_dir, run_as)
        try:
            subprocess.run(
                [
                    bin_dir / "initdb", "-D", self.pgdata, "-U", self.user,
                    "--pwfile", pwfile, "--auth=scram-sha-256", "-E", "UTF8",
                    "--locale=C", "--no-sync",
                ],
                user=run_as, check=True, capture_output=True, text=True,
            )
        except subprocess.CalledProcessError as exc:
            raise ServiceError(f"initdb failed for {self.pgdata}: {exc.stderr.strip()}") from None
        finally:
            pwfile.unlink(missing_ok=True)
        return True

    def start(self, timeout: float = 30) -> None:
        self.initialize()
        bin_dir = find_postgres_bin()
        run_as = _run_as()
        socket_dir = self.data_dir / "sockets"
        socket_dir.mkdir(exist_ok=True)
        self._own(socket_dir, run_as)
        self._service = ServiceProcess(
            f"PostgreSQL on {self.host}:{self.port}",
            [
                str(bin_dir / "postgres"), "-D", str(self.pgdata), "-p", str(self.port),
                "-c", f"listen_addresses={self.host}",
                "-c", f"unix_socket_directories={socket_dir}",
                "-c", f"fsync={'on' if self.durable else 'off'}",
            ],
            self.log_file or self.data_dir / "postgres.log",
            user=run_as,
            # Fast shutdown: open transactions roll back, the cluster stays consistent.
            stop_signal=signal.SIGINT,
            # Tests start it from fixtures on any thread; the server must outlive those.
            die_with_parent=False,
        )
        self._service.start()
        wait_until_ready(self._service, self._accepts_connections, timeout,
                         hint="is the port taken?")

    def _accepts_connections(self) -> bool:
        try:
            with self.connect(connect_timeout=2):
                return True
        except psycopg.OperationalError as exc:
            # Only our own server saying no is a verdict on the password: another server on
            # the port would refuse it too, and then ours exits, which the wait reports.
            if "password authentication failed" in str(exc) and self._serving_this_cluster():
                raise ServiceError(
                    f"PostgreSQL on {self.host}:{self.port} refuses user {self.user!r}'s "
                    f"password: the cluster in {self.pgdata} was initialized with another "
                    f"one; start it with that password, or delete {self.data_dir} to begin "
                    "afresh"
                ) from None
            return False

    def _serving_this_cluster(self) -> bool:
        """True once our postmaster has written "ready" into its lock file.

        PostgreSQL's postmaster.pid holds the postmaster's pid on line 1 and its status on
        line 8 (src/include/utils/pidfile.h: LOCK_FILE_LINE_PID, LOCK_FILE_LINE_PM_STATUS,
        PM_STATUS_READY)."""
        try:
            lines = (self.pgdata / "postmaster.pid").read_text().splitlines()
        except OSError:
            return False
        return (len(lines) >= 8 and lines[0].strip() == str(self.pid)
                and lines[7].strip() == "ready")

    def ensure_database(self, name: str) -> None:
        with self.connect(autocommit=True) as conn:
            query = "SELECT 1 FROM pg_database WHERE datname = %s"
            exists = conn.execute(query, (name,)).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{name}"')

    @staticmethod
    def _own(path: Path, run_as: str | None) -> None:
        path.chmod(0o700)
        if run_as:
            entry = pwd.getpwnam(run_as)
            for root, dirs, files in os.walk(path):
                os.chown(root, entry.pw_uid, entry.pw_gid)
                for name in dirs + files:
                    os.chown(os.path.join(root, name), entry.pw_uid, entry.pw_gid)
