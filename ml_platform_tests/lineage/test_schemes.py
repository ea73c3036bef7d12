"""Hash scheme ids: every recorded hash names its scheme; unknown and retired schemes are refused clearly."""

from __future__ import annotations

import pyarrow as pa
import pytest

from ml_platform.environment.lock import LOCK_SCHEMA, EnvironmentLock
from ml_platform.errors import MLPlatformError
from ml_platform.lineage import graph_hash, hash_table
from ml_platform.lineage.schemes import (
    CODE_HASH_SCHEME,
    DATA_HASH_SCHEME,
    ENVIRONMENT_SCHEME,
    GRAPH_HASH_SCHEME,
    HASH_KINDS,
    SCHEMES,
    HashScheme,
    HashSchemeError,
    SchemeRegistry,
    check_digest,
    current_scheme,
    recorded_scheme,
    verify_scheme,
)
from ml_platform_tests.lineage.test_known_answers import ENVIRONMENT_RECORD


def test_every_kind_has_one_current_v1_scheme() -> None:
    assert HASH_KINDS == ("code", "graph", "data", "environment")
    assert {kind: current_scheme(kind).scheme_id for kind in HASH_KINDS} == {
        "code": CODE_HASH_SCHEME,
        "graph": GRAPH_HASH_SCHEME,
        "data": DATA_HASH_SCHEME,
        "environment": ENVIRONMENT_SCHEME,
    }
    assert all(scheme.version == 1 and scheme.retired is None for scheme in SCHEMES.values())
    assert ENVIRONMENT_SCHEME == LOCK_SCHEMA  # the lock's JSON schema tag is its hash scheme


def test_verify_scheme_returns_how_to_recompute() -> None:
    scheme = verify_scheme("data", "ml_platform.data_hash/v1")
    assert (scheme.algorithm, scheme.prefix, scheme.hex_digits, scheme.tag) == (
        "xxh3_128",
        "xxh3_128:",
        32,
        "mlp-data-v1",
    )
    assert scheme.definition == "ml_platform.lineage.data_hash"
    assert recorded_scheme("code", None) is verify_scheme("code", CODE_HASH_SCHEME)


@pytest.mark.parametrize(
    ("kind", "scheme_id", "match"),
    [
        (
            "code",
            "ml_platform.code_hash/v2",
            r"unknown code hash scheme 'ml_platform.code_hash/v2'.*can verify ml_platform.code_hash/v1",
        ),
        ("code", "mlp-code-v1", r"unknown code hash scheme 'mlp-code-v1'"),
        ("graph", CODE_HASH_SCHEME, r"'ml_platform.code_hash/v1' is a code hash scheme.*graph"),
        ("data", None, r"must be a scheme id string such as 'ml_platform.data_hash/v1', got None"),
        (
            "contract",
            CODE_HASH_SCHEME,
            r"unknown kind of hash 'contract'.*'code', 'graph', 'data', 'environment'",
        ),
    ],
)
def test_unknown_schemes_are_refused_clearly(kind: str, scheme_id: object, match: str) -> None:
    with pytest.raises(HashSchemeError, match=match) as caught:
        verify_scheme(kind, scheme_id)  # type: ignore[arg-type]
    assert isinstance(caught.value, MLPlatformError) and caught.value.code == "HASH_SCHEME_ERROR"


def test_real_digests_have_their_schemes_form() -> None:
    table_digest = hash_table(pa.table({"x": [1, None]}))
    assert check_digest("data", DATA_HASH_SCHEME, table_digest) == table_digest
    assert check_digest("graph", GRAPH_HASH_SCHEME, graph_hash("sha256:" + "0" * 64, {}))
    assert check_digest("environment", ENVIRONMENT_SCHEME, EnvironmentLock.from_dict(ENVIRONMENT_RECORD).hash)
    for bad in ("sha256:" + "0" * 64, table_digest.upper(), table_digest[:-1], None):
        with pytest.raises(HashSchemeError, match="is not a data hash of scheme"):
            check_digest("data", DATA_HASH_SCHEME, bad)


def _scheme(version: int, retired: str | None = None) -> HashScheme:
    return HashScheme(
        f"ml_platform.code_hash/v{version}",
        "code",
        "sha256",
        f"mlp-code-v{version}",
        "ml_platform.lineage.code_hash",
        retired,
    )


def test_a_new_version_keeps_the_old_verifiable_and_a_retired_one_is_refused_with_its_reason() -> None:
    registry = SchemeRegistry(
        [
            _scheme(1, retired="it hashed set constants in iteration order; recompute with v2"),
            _scheme(2),
            _scheme(3),
        ],
        current={"code": "ml_platform.code_hash/v3"},
        unversioned={"code": "ml_platform.code_hash/v1"},
    )
    assert registry.current("code").version == 3
    assert (
        registry.verify("code", "ml_platform.code_hash/v2").tag == "mlp-code-v2"
    )  # superseded, still verifiable
    with pytest.raises(
        HashSchemeError, match=r"'ml_platform.code_hash/v1' is retired.*iteration order; recompute"
    ):
        registry.verify("code", "ml_platform.code_hash/v1")
    with pytest.raises(HashSchemeError, match="is retired"):
        registry.recorded("code", None)  # records older than scheme ids were v1


def test_malformed_registries_are_refused() -> None:
    with pytest.raises(ValueError, match="listed twice"):
        SchemeRegistry(
            [_scheme(1), _scheme(1)],
            current={"code": "ml_platform.code_hash/v1"},
            unversioned={"code": "ml_platform.code_hash/v1"},
        )
    with pytest.raises(ValueError, match="is retired"):
        SchemeRegistry(
            [_scheme(1, retired="gone")],
            current={"code": "ml_platform.code_hash/v1"},
            unversioned={"code": "ml_platform.code_hash/v1"},
        )
    with pytest.raises(ValueError, match="current scheme of 'code'"):
        SchemeRegistry([_scheme(1)], current={}, unversioned={"code": "ml_platform.code_hash/v1"})
    with pytest.raises(ValueError, match="malformed hash scheme id"):
        HashScheme("code_hash_v1", "code", "sha256", "t", "m")
    with pytest.raises(ValueError, match="unknown digest algorithm"):
        HashScheme("ml_platform.code_hash/v1", "code", "md5", "t", "m")


def test_scheme_ids_never_reuse_a_tag() -> None:
    """Two schemes with one in-digest tag could give equal digests for different algorithms."""
    tags = [scheme.tag for scheme in SCHEMES.values()]
    assert len(tags) == len(set(tags))
