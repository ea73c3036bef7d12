"""Everything the local production stack wrote, as ``(where, bytes)``: to scan it for secrets.

* every file of the launcher's state folder (each service's log, each process's home, temporary folder and
  Dagster home, compute logs staged there), the state file without its ``env`` (the stack's secrets are kept
  there on purpose, readable by its owner only: it stands for the desk's secret store);
* every file of the PostgreSQL server's folder (its log, its configuration, its data files as they are);
* ``pg_dump --data-only`` of every database of the server (Dagster's runs, event logs and materialization
  metadata; MLflow's experiments, runs, tags, params and model versions; the ledger; the outboxes), one blob
  per table, so a leak is named by database, table and row;
* every object of every bucket of the S3 server (features, manifests, environment locks, MLflow's
  artefacts, compute logs);
* every key of every Redis database (the Celery broker's queues and the result backend).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

from prod_local.state import STATE_FILE

from ml_platform_tests.production.stack import ProductionStack

__all__ = ["stack_writes"]

#: The superuser of the harness's PostgreSQL server, trusted on the loopback (the stack's own role is not).
SUPERUSER = "postgres"


def stack_writes(stack: ProductionStack) -> Iterator[tuple[str, bytes]]:
    """Every place the stack wrote, one ``(where, bytes)`` at a time."""
    yield from _files(stack.layout.state, "state folder")
    if stack.state.postgres is not None:
        yield from _files(stack.state.postgres.directory, "PostgreSQL folder")
        yield from _databases(stack)
    yield from _objects(stack)
    yield from _redis(stack)


def _files(root: Path, what: str) -> Iterator[tuple[str, bytes]]:
    for path in sorted(root.rglob("*")):
        if not path.is_file() or path.is_symlink() and not path.exists():
            continue
        try:
            data = path.read_bytes()
        except (FileNotFoundError, PermissionError):  # a file removed while walking (a PostgreSQL temp file)
            continue
        if path.name == STATE_FILE and path.parent == root:
            recorded = json.loads(data)
            recorded.pop("env", None)  # the stack's secret store: its environment, on purpose
            data = json.dumps(recorded).encode()
        yield f"{what} file {path}", data


def _psql_bin(stack: ProductionStack, name: str) -> str:
    assert stack.state.postgres is not None
    return str(stack.state.postgres.bin_dir / name)


def _databases(stack: ProductionStack) -> Iterator[tuple[str, bytes]]:
    pg = stack.state.postgres
    assert pg is not None
    connection = ["-h", pg.host, "-p", str(pg.port), "-U", SUPERUSER]
    listed = subprocess.run([_psql_bin(stack, "psql"), *connection, "-d", "postgres", "-At", "-c",
                             "SELECT datname FROM pg_database WHERE NOT datistemplate ORDER BY 1"],
                            capture_output=True, text=True, check=True, timeout=120)
    for database in listed.stdout.split():
        dump = subprocess.run([_psql_bin(stack, "pg_dump"), *connection, "-d", database, "--data-only",
                               "--no-owner", "--no-privileges"], capture_output=True, check=True, timeout=600)
        yield from _tables(database, dump.stdout)
    roles = subprocess.run([_psql_bin(stack, "pg_dumpall"), *connection, "--roles-only"],
                           capture_output=True, check=True, timeout=120)
    yield "the server's roles (pg_dumpall --roles-only)", roles.stdout


def _tables(database: str, dump: bytes) -> Iterator[tuple[str, bytes]]:
    """One blob per row of each table's ``COPY`` block, named by table and row; the rest of the dump as one."""
    table, row, rest = None, 0, []
    for line in dump.split(b"\n"):
        if table is None:
            if line.startswith(b"COPY "):
                table, row = line.split(b" ")[1].decode(), 0
            else:
                rest.append(line)
        elif line == b"\\.":
            table = None
        else:
            row += 1
            yield f"database {database}, table {table}, row {row}", line
    yield f"database {database}: the dump outside the tables' rows", b"\n".join(rest)


def _objects(stack: ProductionStack) -> Iterator[tuple[str, bytes]]:
    s3 = stack.s3()
    for bucket in s3.list_buckets()["Buckets"]:
        name = bucket["Name"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=name):
            for found in page.get("Contents", []):
                yield f"S3 object s3://{name}/{found['Key']}", s3.get_object(Bucket=name, Key=found["Key"])["Body"].read()


def _redis(stack: ProductionStack) -> Iterator[tuple[str, bytes]]:
    import redis

    port = stack.state.service("redis").port
    for database in range(16):
        client = redis.Redis(host="127.0.0.1", port=port, db=database, socket_timeout=30)
        for key in client.scan_iter(count=1000):
            kind = client.type(key).decode()
            if kind == "string":
                values = [client.get(key) or b""]
            elif kind == "list":
                values = client.lrange(key, 0, -1)
            elif kind == "hash":
                values = [part for pair in client.hgetall(key).items() for part in pair]
            elif kind == "set":
                values = list(client.smembers(key))
            elif kind == "zset":
                values = client.zrange(key, 0, -1)
            else:
                values = [client.dump(key) or b""]
            yield f"Redis db {database} key {key!r} ({kind})", key + b"\n" + b"\n".join(values)
        client.close()
