"""Known-answer vectors: fixed inputs and the exact digests every hash scheme gives them.

A hash recorded a year ago must be recomputable by today's code, so no scheme may change by one bit
(:mod:`ml_platform.lineage.schemes`). Each test below hashes fixed inputs and compares with digests
hard-coded here when the scheme was issued. If one fails, the change you made alters recorded
hashes: undo it, or (deliberately) add a new scheme version with its own vectors and keep these.
Never edit an expected digest of an issued scheme.

Vectors: the length-prefixed framing shared by all hashes; the code hash of a small package written
to disk (constants of every supported kind, helpers, a class, a partial, a lambda, a closure,
declared params with non-ASCII text); a fixed graph of ``GraphNode``; a fixed Arrow table with
nulls, strings, decimals, dates and nested types (whole and per column); a fixed environment lock;
a fixed manifest (its own hash over every field).
"""

from __future__ import annotations

import datetime as dt
import decimal
import hashlib
import json
import sys
import textwrap
from collections.abc import Iterator

import pyarrow as pa
import pytest

from ml_platform.environment.lock import LOCK_SCHEMA, EnvironmentLock
from ml_platform.io.manifest import Manifest, UpstreamRef, WriterVersions, manifest_digest
from ml_platform.lineage import (
    CODE_HASH_SCHEME,
    CODE_HASH_VERSION,
    DATA_HASH_SCHEME,
    DATA_HASH_VERSION,
    ENVIRONMENT_SCHEME,
    GRAPH_HASH_SCHEME,
    GRAPH_HASH_VERSION,
    GraphNode,
    code_hash,
    compute_graph_hashes,
    current_scheme,
    graph_hash,
    hash_table,
    verify_scheme,
)
from ml_platform.lineage.encoding import frame, length_prefixed, sha256_of_fields
from ml_platform.lineage.schemes import MANIFEST_HASH_SCHEME, RECORD_SCHEMES
from ml_platform.window import DataWindow
from ml_platform_tests.lineage.fixture_project import FixtureProject

# --- the schemes these vectors pin -----------------------------------------------------------------


def test_the_vectors_pin_the_current_schemes() -> None:
    """Each vector below belongs to one scheme; a new current scheme needs vectors of its own."""
    pinned = {
        "code": (CODE_HASH_SCHEME, CODE_HASH_VERSION),
        "graph": (GRAPH_HASH_SCHEME, GRAPH_HASH_VERSION),
        "data": (DATA_HASH_SCHEME, DATA_HASH_VERSION),
        "environment": (ENVIRONMENT_SCHEME, LOCK_SCHEMA),
    }
    for kind, (scheme_id, tag) in pinned.items():
        scheme = current_scheme(kind)
        assert (scheme.scheme_id, scheme.tag) == (scheme_id, tag), kind
        assert verify_scheme(kind, scheme_id) is scheme
    assert (CODE_HASH_SCHEME, GRAPH_HASH_SCHEME, DATA_HASH_SCHEME, ENVIRONMENT_SCHEME) == (
        "ml_platform.code_hash/v1",
        "ml_platform.graph_hash/v1",
        "ml_platform.data_hash/v1",
        "ml_platform.environment/v1",
    )


# --- framing -------------------------------------------------------------------------------------


def test_length_prefix_is_eight_bytes_little_endian() -> None:
    assert frame("") == bytes(8)
    assert frame("ab") == b"\x02\x00\x00\x00\x00\x00\x00\x00ab"
    assert frame("é") == b"\x02\x00\x00\x00\x00\x00\x00\x00\xc3\xa9"  # UTF-8 bytes are counted
    assert frame(b"\x00" * 258)[:8] == b"\x02\x01\x00\x00\x00\x00\x00\x00"  # byte order shows above 255
    assert length_prefixed(["a", b"bc"]) == b"\x01" + bytes(7) + b"a" + b"\x02" + bytes(7) + b"bc"
    assert sha256_of_fields([]) == "sha256:" + hashlib.sha256(b"").hexdigest()
    assert sha256_of_fields(["mlp", "", "x" * 300]) == EXPECTED_FIELDS_DIGEST


EXPECTED_FIELDS_DIGEST = "sha256:cd745fcc1a61fd8181b780eda58e01ebd8f7f6166b4b577c057c12c1a6b7563a"

# --- code hash -----------------------------------------------------------------------------------

#: A fixed package name: qualified names are part of the code hash.
CODE_PACKAGE = "mlp_known_answers_v1"

CODE_SOURCES = {
    "constants": """
        import datetime as dt
        import decimal
        import enum
        import re
        from dataclasses import dataclass


        class Side(enum.Enum):
            BUY = "buy"
            SELL = "sell"


        @dataclass(frozen=True)
        class Costs:
            bps: float
            venue: str = "XNYS"


        NAME = "close"
        LABEL = "prix moyen é ✓"
        LOOKBACK = 21
        RATE = 0.1
        NEG_ZERO = -0.0
        TINY = 1e-300
        FLAG = True
        NOTHING = None
        RAW = b"\\x00\\xff"
        WINDOWS = (5, 21, 63)
        COLUMNS = ["open", "close"]
        RENAMES = {"close": "px_close", "open": "px_open", 1: "one"}
        UNIVERSE = frozenset({"AAPL", "MSFT", "GOOG", "AMZN", "META", "NVDA", "TSLA", "JPM"})
        BUCKETS = {3, 1, 2}
        START = dt.date(2012, 1, 3)
        TICK = decimal.Decimal("0.01")
        PATTERN = re.compile(r"^[A-Z]{1,5}$", re.IGNORECASE)
        SIDE = Side.SELL
        COSTS = Costs(bps=1.5)
    """,
    "helpers": '''
        import functools

        from . import constants
        from .constants import NAME


        def scaled(x, factor):
            return x * factor


        DOUBLE = functools.partial(scaled, factor=2)
        INC = lambda x: x + 1  # noqa: E731


        class Smoother:
            """Dropped from the hash."""

            span: int = 3

            def apply(self, xs):
                return sum(xs[-self.span :]) / self.span


        def pick(row):
            return row[NAME] * constants.RATE


        def make(window, name):
            def windowed(xs):
                return xs[name][-window:]

            return windowed
    ''',
    "features": '''
        from . import constants, helpers
        from .constants import (
            BUCKETS, COLUMNS, COSTS, FLAG, LABEL, NEG_ZERO, NOTHING, PATTERN, RAW, RENAMES, SIDE,
            START, TICK, TINY, UNIVERSE, WINDOWS,
        )


        def momentum(prices: dict, lookback: int = 21) -> float:
            """Momentum over a lookback (this docstring is not hashed)."""
            # neither is this comment
            base = helpers.pick(prices) + helpers.DOUBLE(helpers.INC(lookback))
            smooth = helpers.Smoother().apply([base, NEG_ZERO, TINY])
            keep = [c for c in COLUMNS if RENAMES.get(c) and c.upper() in UNIVERSE or FLAG]
            extra = (WINDOWS, BUCKETS, RAW, START, TICK, PATTERN, SIDE, COSTS, NOTHING, LABEL)
            return smooth * len(keep) * len(extra) * constants.LOOKBACK
    ''',
    "frames": """
        import numpy as np
        import polars as pl
        import pyarrow as pa

        HALF = np.float64(0.5)
        COUNT = np.int32(7)
        SCHEMA = pl.Schema({"date": pl.Date, "ts": pl.Datetime("us", "UTC"), "x": pl.Float64,
                            "tags": pl.List(pl.String), "px": pl.Decimal(10, 2)})
        ARROW = pa.schema([pa.field("date", pa.date32(), nullable=False), pa.field("px", pa.decimal128(12, 4))])


        def frame_feature(frame):
            return frame, HALF, COUNT, SCHEMA, ARROW
    """,
}

#: Declared params: nested, unordered keys and non-ASCII text (canonical JSON keeps it as UTF-8).
CODE_PARAMS = {"lookback": 21, "label": "é", "weights": [0.5, 0.25], "nested": {"b": None, "a": True}}

EXPECTED_CODE = {
    "momentum": "sha256:eec2743c36686632bdc9a288ddba73d2c1aaad0872eb23d9a9d069021e61e198",
    "momentum with params": "sha256:0121054a089c27af04cf1a62c08b8105de840439762f1539938ebfb46ea3baad",
    "closure": "sha256:4aa1648728c9eba2455c19e6192f19effb3e8a55f3f765bd11bd43e849968ecd",
    # numpy scalars, polars and Arrow schemas: their encodings are library reprs, pinned here too
    "frames": "sha256:a327f028a587cd437781d8cc2ea0f9588ffd519183d61953cc7465a240a74fdf",
}
EXPECTED_MOMENTUM_REFERENCES = tuple(
    f"{CODE_PACKAGE}.{name}"
    for name in (
        "constants.Costs",
        "constants.LOOKBACK",
        "constants.RATE",
        "constants.Side",
        "features.BUCKETS",
        "features.COLUMNS",
        "features.COSTS",
        "features.FLAG",
        "features.LABEL",
        "features.NEG_ZERO",
        "features.NOTHING",
        "features.PATTERN",
        "features.RAW",
        "features.RENAMES",
        "features.SIDE",
        "features.START",
        "features.TICK",
        "features.TINY",
        "features.UNIVERSE",
        "features.WINDOWS",
        "helpers.<lambda>",
        "helpers.DOUBLE",
        "helpers.NAME",
        "helpers.Smoother",
        "helpers.pick",
        "helpers.scaled",
    )
)


@pytest.fixture(scope="module")
def known_package(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    project = FixtureProject(tmp_path_factory.mktemp("known_answers"))
    project.package = CODE_PACKAGE
    project.unload()
    try:
        yield project.load({name: textwrap.dedent(source) for name, source in CODE_SOURCES.items()})
    finally:
        project.unload()


def code_digests(modules: dict) -> dict[str, str]:
    packages = [CODE_PACKAGE]
    features, helpers, frames = modules["features"], modules["helpers"], modules["frames"]
    return {
        "momentum": code_hash(features.momentum, project_packages=packages).digest,
        "momentum with params": code_hash(
            features.momentum, project_packages=packages, params=CODE_PARAMS
        ).digest,
        "closure": code_hash(helpers.make(20, "close"), project_packages=packages).digest,
        "frames": code_hash(frames.frame_feature, project_packages=packages).digest,
    }


def test_code_hash_known_answers(known_package: dict) -> None:
    assert sys.version_info[:2] == (3, 11), (
        "the code hash v1 is defined over Python 3.11's ast.dump; another Python changes every code hash, "
        "so it needs a new code hash scheme version with its own vectors"
    )
    result = code_hash(known_package["features"].momentum, project_packages=[CODE_PACKAGE])
    assert result.references == EXPECTED_MOMENTUM_REFERENCES
    assert code_digests(known_package) == EXPECTED_CODE


# --- graph hash ----------------------------------------------------------------------------------


def fixed_code(label: str) -> str:
    return "sha256:" + hashlib.sha256(label.encode()).hexdigest()


#: A diamond with a side branch, an isolated node and a node with a non-ASCII key.
GRAPH = (
    GraphNode("prices", fixed_code("prices")),
    GraphNode("returns", fixed_code("returns"), ("prices",)),
    GraphNode("volume", fixed_code("volume"), ("prices",)),
    GraphNode("momentum", fixed_code("momentum"), ("volume", "returns")),
    GraphNode("label", fixed_code("label"), ("returns",)),
    GraphNode("calendar", fixed_code("calendar")),
    GraphNode("signal_é", fixed_code("signal"), ("momentum", "label", "calendar")),
)
EXPECTED_GRAPH = {
    "prices": "sha256:4feaf324f49994b6deeb8815eb4c504515f7ac715b41b5f5398b6982f7aed9cf",
    "returns": "sha256:f1116219822b3ed1a67a8f9aa4018871ce032ce62a6ea2259a7952751bb8196b",
    "volume": "sha256:b4feb72d0956677a5b8ba2baae02e2fc731a96303cbc57035210002db4632d1e",
    "momentum": "sha256:45fce5337f937b010ff939f5eee8e18f00f32c8da5a4b62bf6dea5747bc4b190",
    "label": "sha256:3b4394a293fde0b5a7abac4513fa3895094d5f2f46016d614ce625bb81afd357",
    "calendar": "sha256:f2c977d55543fd37d6d7d840d24d9226abe4112510015b89fb179ad4c927ba03",
    "signal_é": "sha256:264b311de111cebbf1d29452f300938dbdae5ea0e0caca7e7516acdeda81acd7",
}
EXPECTED_SINGLE_NODE = "sha256:c492bfba3f3c6c4957bd88656eb39a20fed43f8b3de181ed88b548556f2c58d6"


def test_graph_hash_known_answers() -> None:
    assert graph_hash("sha256:" + "0" * 64, {}) == EXPECTED_SINGLE_NODE
    assert compute_graph_hashes(GRAPH) == EXPECTED_GRAPH
    assert compute_graph_hashes(reversed(GRAPH)) == EXPECTED_GRAPH


# --- data hash -----------------------------------------------------------------------------------


def known_table() -> pa.Table:
    """Seven rows over every logical type the data hash supports, nulls in every column but one."""
    utc = dt.UTC
    return pa.table(
        {
            "id": pa.array([1, 2, 3, 4, 5, 6, 7], pa.int64()),
            "int32": pa.array([-1, None, 2**31 - 1, 0, None, -(2**31), 5], pa.int32()),
            "uint8": pa.array([0, 255, None, 1, 2, 3, 4], pa.uint8()),
            "float64": pa.array([0.1, -0.0, None, float("nan"), float("inf"), 1e-300, 0.0], pa.float64()),
            "float32": pa.array([1.5, None, -2.25, 0.0, 3.0, None, 7.0], pa.float32()),
            "bool": pa.array([True, False, None, True, None, False, True], pa.bool_()),
            "utf8": pa.array(["close", "", None, "é", "日本", "🙂", "a\x00b"], pa.string()),
            "large_utf8": pa.array([None, "x", "yy", None, "zzz", "", "é"], pa.large_string()),
            "binary": pa.array([b"\x00", b"", None, b"\xff\xfe", b"abc", None, b"z"], pa.binary()),
            "fixed_binary": pa.array([b"ab", b"cd", None, b"ef", b"\x00\x00", b"gh", None], pa.binary(2)),
            "decimal": pa.array(
                [
                    decimal.Decimal("1.25"),
                    None,
                    decimal.Decimal("-0.01"),
                    decimal.Decimal("99999999.99"),
                    decimal.Decimal(0),
                    None,
                    decimal.Decimal("3.10"),
                ],
                pa.decimal128(10, 2),
            ),
            "decimal_wide": pa.array(
                [
                    decimal.Decimal("1" * 35 + ".12345"),
                    None,
                    decimal.Decimal("-1.00000"),
                    None,
                    decimal.Decimal("0.00001"),
                    decimal.Decimal("2.5"),
                    decimal.Decimal(0),
                ],
                pa.decimal256(40, 5),
            ),
            "date": pa.array(
                [
                    dt.date(2012, 1, 3),
                    None,
                    dt.date(1970, 1, 1),
                    dt.date(1900, 2, 28),
                    dt.date(2038, 1, 19),
                    None,
                    dt.date(2024, 2, 29),
                ],
                pa.date32(),
            ),
            "timestamp_utc": pa.array(
                [
                    dt.datetime(2012, 1, 3, 16, tzinfo=utc),
                    None,
                    dt.datetime(1970, 1, 1, tzinfo=utc),
                    dt.datetime(2024, 2, 29, 9, 30, 0, 123456, tzinfo=utc),
                    None,
                    dt.datetime(1999, 12, 31, 23, 59, 59, tzinfo=utc),
                    dt.datetime(2000, 1, 1, tzinfo=utc),
                ],
                pa.timestamp("us", "UTC"),
            ),
            "timestamp_ns": pa.array([0, 1, None, -1, 10**18, None, 5], pa.timestamp("ns")),
            "time": pa.array([0, None, 3_600_000_000, 1, None, 2, 86_399_999_999], pa.time64("us")),
            "duration": pa.array([1, -1, None, 0, 2, 3, None], pa.duration("ms")),
            "list": pa.array([[1, 2], [], None, [None, 3], [4], None, [5, 6, 7]], pa.list_(pa.int32())),
            "fixed_list": pa.array(
                [[1.0, 2.0], None, [3.0, None], [0.0, -0.0], None, [5.0, 6.0], [7.0, 8.0]],
                pa.list_(pa.float64(), 2),
            ),
            "struct": pa.array(
                [
                    {"x": 1, "y": "a"},
                    None,
                    {"x": None, "y": "b"},
                    {"x": 3, "y": None},
                    {"x": 4, "y": "é"},
                    None,
                    {"x": 6, "y": ""},
                ],
                pa.struct([("x", pa.int64()), ("y", pa.string())]),
            ),
            "dictionary": pa.array(["buy", "sell", None, "buy", "hold", "sell", None]).dictionary_encode(),
            "null": pa.nulls(7),
        }
    )


EXPECTED_TABLE = "xxh3_128:610cf16ad8311c5a727d1d44f04d672b"
#: Each column alone, so a failure points at the type whose encoding changed.
EXPECTED_COLUMNS = {
    "id": "xxh3_128:0b58ff33f883cc6d2537b1cd3ccb9c6a",
    "int32": "xxh3_128:7fcd5fa742eef9fd76c451d0b4197409",
    "uint8": "xxh3_128:bfdd8f8a6166f89c707b6b501e6ced45",
    "float64": "xxh3_128:5eecbb9393c3eb06be6d6d6067421f75",
    "float32": "xxh3_128:5d982965b2da1e487bdaf9a704d212f8",
    "bool": "xxh3_128:aee06d499aa0cfcb88148a8a2da54e43",
    "utf8": "xxh3_128:fe6fd7e20412c90ae8af437761f7f1ae",
    "large_utf8": "xxh3_128:ae138953738f958b42c3191fc994d0d4",
    "binary": "xxh3_128:02bee67e07dbb22e3fc5699d9b115682",
    "fixed_binary": "xxh3_128:f997e96a1f6c8c2505153d439e08d350",
    "decimal": "xxh3_128:054260536dfb5795b2885a4f81182b16",
    "decimal_wide": "xxh3_128:308e18c0e0f3e0e37ac9e1e7ce397c36",
    "date": "xxh3_128:92a5658c807691205a78c3329451aee2",
    "timestamp_utc": "xxh3_128:4ae7b9d9cbd97252737070ef7509078c",
    "timestamp_ns": "xxh3_128:f136eb0984a268cd88f2f4dd4cd22e86",
    "time": "xxh3_128:94cbd20b63d663c3f5f8e1ec32b33e3a",
    "duration": "xxh3_128:12e0112a089007951601e940ba63d685",
    "list": "xxh3_128:92d36367a56f36497894b83875bd111d",
    "fixed_list": "xxh3_128:7f418cad50c14f357eae11ef30edb306",
    "struct": "xxh3_128:40cee8944d7d3754d0a59ffe8b287dee",
    "dictionary": "xxh3_128:d04df4a3f8b567b33b76aa96ac383ffa",
    "null": "xxh3_128:f47bf6aead24d5d16da9611606b00e55",
}
EXPECTED_EMPTY = {
    "no rows": "xxh3_128:572548e14da896edbe519fa0b17b0bb4",
    "no columns": "xxh3_128:bc9d3d5be0e8b82046f9ee744ef6d175",
}


def test_data_hash_known_answers() -> None:
    table = known_table()
    assert hash_table(table) == EXPECTED_TABLE
    assert {name: hash_table(table.select([name])) for name in table.column_names} == EXPECTED_COLUMNS
    assert {
        "no rows": hash_table(table.slice(0, 0)),
        "no columns": hash_table(pa.table({})),
    } == EXPECTED_EMPTY


def test_data_hash_known_answer_does_not_depend_on_storage() -> None:
    table = known_table()
    pieces = pa.concat_tables([table.slice(0, 2), table.slice(2, 1), table.slice(3)])
    assert hash_table(pieces) == EXPECTED_TABLE
    assert hash_table(table.to_batches()[0]) == EXPECTED_TABLE


# --- environment lock ----------------------------------------------------------------------------

ENVIRONMENT_RECORD = {
    "schema": "ml_platform.environment/v1",
    "python": {"implementation": "cpython", "version": "3.11.7"},
    "platform": "linux-x86_64-glibc2.36",
    "packages": {"ml-platform": "0.1.0", "numpy": "2.1.3", "polars": "1.17.1", "pyarrow": "18.1.0"},
    "uv_lock_hash": "sha256:" + "ab" * 32,
    "blas": [
        {
            "internal_api": "openblas",
            "version": "0.3.27",
            "threading_layer": "pthreads",
            "architecture": "SkylakeX",
            "num_threads": 1,
        }
    ],
    "env_vars": {"OMP_NUM_THREADS": "1", "PYTHONHASHSEED": None, "TZ": "UTC"},
}
EXPECTED_ENVIRONMENT = "sha256:1879f1022d4db10ad296365356c135ef2ca86ada3a9e4a351151eec52ebb6c15"


def test_environment_hash_known_answer() -> None:
    lock = EnvironmentLock.from_dict(ENVIRONMENT_RECORD)
    assert lock.to_dict() == ENVIRONMENT_RECORD
    assert lock.hash == EXPECTED_ENVIRONMENT


# --- manifest hash -------------------------------------------------------------------------------


def known_manifest() -> Manifest:
    """A fixed manifest over the fixed environment lock above, chained to a fixed previous version."""
    lock = EnvironmentLock.from_dict(ENVIRONMENT_RECORD)
    return Manifest(
        asset_key="features/momentum", partition="2012-01-03", data_hash="xxh3_128:" + "a" * 32,
        code_hash="sha256:" + "b" * 64, graph_hash="sha256:" + "c" * 64,
        upstream=(UpstreamRef("market/prices", "2012-01-02", "xxh3_128:" + "d" * 32),),
        environment=lock, environment_hash=lock.hash, seeds={"default": 42, "bootstrap": 7},
        window=DataWindow.parse("2012-01-03"), git_commit="0" * 40, git_dirty=False, run_id="run-1",
        written_at="2024-05-01T12:00:00.000001+00:00",
        writer=WriterVersions(ml_platform="0.1.0", pyarrow="18.1.0", polars="1.17.1"), rows=500,
        data_file="xxh3_128-" + "a" * 32 + ".parquet", params={"lookback": 20, "name": "é"},
        file_hash="xxh3_128:" + "e" * 32, file_size=1234, previous="sha256:" + "f" * 64,
    )


EXPECTED_MANIFEST = "sha256:3cbdbe431644d516958859ebb35cdca141c57b848c97784e0871b577f3103dfc"


def test_manifest_hash_known_answer() -> None:
    """``ml_platform.manifest_hash/v1``: tag and canonical JSON of every field but the hash itself."""
    manifest = known_manifest()
    assert RECORD_SCHEMES.current("manifest").scheme_id == MANIFEST_HASH_SCHEME == "ml_platform.manifest_hash/v1"
    assert RECORD_SCHEMES.current("manifest").tag == "mlp-manifest-v1"
    record = manifest.to_dict()
    covered = {name: value for name, value in record.items() if name != "manifest_hash"}
    canonical = json.dumps(covered, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    assert sha256_of_fields(["mlp-manifest-v1", canonical]) == EXPECTED_MANIFEST
    assert manifest.manifest_hash == record["manifest_hash"] == manifest_digest(record) == EXPECTED_MANIFEST
    assert Manifest.from_json(manifest.to_json(), source="vector").manifest_hash == EXPECTED_MANIFEST
