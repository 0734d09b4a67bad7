"""A real PostgreSQL server (Debian's) in a temporary folder on a free loopback port, for
tests. `initdb` refuses to run as root: as root (CI) the cluster belongs to `postgres`."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import uuid
from pathlib import Path


def _bin_dir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    assert found, "PostgreSQL is missing: `make test` installs it (Debian postgresql)"
    return Path(found[-1]).parent


class PostgresServer:
    def __init__(self) -> None:
        self._bin = _bin_dir()
        # A folder of its own the cluster's owner can reach (pytest's tmp is root's only).
        self._folder = Path(f"/tmp/agw-pg-{uuid.uuid4().hex[:12]}")
        self._as_root = os.geteuid() == 0
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.url = f"postgresql://gateway@127.0.0.1:{self.port}/postgres"

    def _run(self, *argv: str) -> None:
        command = [str(self._bin / argv[0]), *argv[1:]]
        if self._as_root:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def start(self) -> PostgresServer:
        self._folder.mkdir(mode=0o700)
        if self._as_root:
            shutil.chown(self._folder, "postgres", "postgres")
        data = self._folder / "data"
        self._run("initdb", "-D", str(data), "-U", "gateway", "--auth=trust", "-E", "UTF8")
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={self.port} "
            f"-c unix_socket_directories={self._folder} -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=300"
        )
        self._run("pg_ctl", "-D", str(data), "-o", options, "-w", "-t", "30", "start")
        return self

    def new_database(self) -> str:
        """The URL of a new, empty database: each test gets its own."""
        import psycopg

        name = f"t{uuid.uuid4().hex}"
        with psycopg.connect(self.url, autocommit=True) as connection:
            connection.execute(f"CREATE DATABASE {name}")
        return self.url.rsplit("/", 1)[0] + f"/{name}"

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self._folder / "data"), "-m", "immediate", "stop")
        finally:
            shutil.rmtree(self._folder, ignore_errors=True)
