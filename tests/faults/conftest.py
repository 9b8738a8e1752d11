"""Private services for the fault-injection suite: a PostgreSQL cluster and a Mosquitto of its
own, on free ports, created once per session, which the tests restart at will. The system
services (5432, 1883) are never touched: other people's tests use them.

The product runs in subprocesses pointed at the private cluster (the bridge, the booking
writers of `tests/faults/agent.py`); this process only reads the outcome with plain SQL. The
database is migrated and seeded once as a template; each test gets a fresh copy of it.
"""

import glob
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import psycopg
import pytest
from django.conf import settings
from django.db import connection

from tests.access.broker import PrivateMosquitto, free_port
from tests.conftest import _missing

TEMPLATE = "faults_template"


def postgres_bin() -> Path | None:
    """The newest server binaries installed (Debian keeps them off the PATH)."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4])
    )
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb else None


class PrivatePostgres:
    """One cluster in a temporary directory owned by `postgres` (the server refuses root)."""

    def __init__(self, bindir: Path):
        self.bindir = bindir
        self.dir = Path(tempfile.mkdtemp(prefix="faults-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        if os.getuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")

    def _run(self, *argv, check=True):
        prefix = ["runuser", "-u", "postgres", "--"] if os.getuid() == 0 else []
        return subprocess.run(  # noqa: S603
            prefix + [str(self.bindir / argv[0]), *argv[1:]],
            check=check,
            capture_output=True,
            text=True,
            timeout=120,
        )

    def init(self):
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync")
        self.start()

    def start(self):
        options = (
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off"
        )
        log = str(self.dir / "server.log")
        self._run("pg_ctl", "-D", str(self.data), "-l", log, "-o", options, "-w", "start")

    def restart(self):
        """A fast shutdown (every connection cut) and a start on the same port."""
        log = str(self.dir / "server.log")
        self._run("pg_ctl", "-D", str(self.data), "-l", log, "-m", "fast", "-w", "restart")

    def destroy(self):
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop", check=False)
        shutil.rmtree(self.dir, ignore_errors=True)

    def url(self, name: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{name}"

    def connect(self, name: str = "postgres") -> psycopg.Connection:
        return psycopg.connect(
            host="127.0.0.1", port=self.port, user="postgres", dbname=name, autocommit=True
        )

    def query(self, name: str, sql: str, *params) -> list[tuple]:
        with self.connect(name) as conn:
            return conn.execute(sql, params).fetchall()


def run_agent(database: str, *args, timeout=180) -> str:
    """`python -m tests.faults.agent <args>` on that database; its standard output."""
    done = subprocess.run(  # noqa: S603
        [sys.executable, "-m", "tests.faults.agent", *args],
        env={**os.environ, **agent_env(database)},
        cwd=settings.BASE_DIR,
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def agent_env(database: str) -> dict:
    return {
        "DATABASE_URL": database,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "CREDENTIAL_KEY": settings.CREDENTIAL_KEY,
        "SECRET_KEY": settings.SECRET_KEY,
        "LOG_LEVEL": "ERROR",
    }


@pytest.fixture(scope="session")
def private_postgres():
    """The cluster, with a migrated and seeded template database (about 15 s, once)."""
    if connection.vendor != "postgresql":
        _missing("postgres", f"the database is {connection.vendor}")
    bindir = postgres_bin()
    if bindir is None or not (bindir / "pg_ctl").exists():
        _missing("postgres", "no initdb/pg_ctl binaries (apt-get install postgresql)")
    cluster = PrivatePostgres(bindir)
    try:
        cluster.init()
        with cluster.connect() as conn:
            conn.execute(f"CREATE DATABASE {TEMPLATE}")
        url = cluster.url(TEMPLATE)
        migrate = subprocess.run(  # noqa: S603
            [sys.executable, "manage.py", "migrate", "--no-input", "-v", "0"],
            env={**os.environ, **agent_env(url)},
            cwd=settings.BASE_DIR,
            check=False,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert migrate.returncode == 0, migrate.stderr[-3000:]
        run_agent(url, "seed")
        yield cluster
    finally:
        cluster.destroy()


@pytest.fixture
def database(private_postgres):
    """A fresh copy of the seeded template for this test: (url, name)."""
    name = f"faults_{uuid.uuid4().hex[:10]}"
    with private_postgres.connect() as conn:
        conn.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
    yield private_postgres.url(name), name
    with private_postgres.connect() as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(scope="session")
def private_mosquitto():
    directory = Path(tempfile.mkdtemp(prefix="faults-mqtt-"))
    try:
        broker = PrivateMosquitto(directory)
    except FileNotFoundError as e:
        _missing("mqtt", str(e))
    broker.start()
    yield broker
    broker.stop()
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def mosquitto(private_mosquitto):
    """The private broker, running (a test before may have stopped it)."""
    if private_mosquitto.process is None or private_mosquitto.process.poll() is not None:
        private_mosquitto.start()
    return private_mosquitto
