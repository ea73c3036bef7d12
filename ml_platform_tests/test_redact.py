"""The redaction of credentials in URLs and messages: every URL shape masked, nothing else changed."""

from __future__ import annotations

import base64
import json
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ml_platform.redact import MASK, has_secret, redacted_url, secret_name, secret_values
from ml_platform_tests.harness.secrets import Secrets

SETTINGS = settings(max_examples=300, deadline=None, database=None)
#: the distinctive mark every generated secret carries; the plain parts of a URL never hold a capital letter
MARK = "QZ"
SCHEMES = ["postgresql", "postgresql+psycopg", "postgresql+psycopg2", "mysql+pymysql", "redis", "rediss", "amqp",
           "s3", "https", "http", "mlflow-artifacts", "sqlite"]
SECRET_PARAMS = ["password", "sslpassword", "X-Amz-Signature", "X-Amz-Credential", "X-Amz-Security-Token", "token",
                 "access_token", "api_key", "sig", "client_secret", "AWSAccessKeyId", "routing_key"]
PLAIN_PARAMS = ["sslmode", "connect_timeout", "X-Amz-Algorithm", "X-Amz-Date", "versionId", "region", "db",
                "application_name"]

plain = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=12)
host = st.builds(lambda labels: ".".join(labels), st.lists(plain, min_size=1, max_size=3)) | st.just("127.0.0.1")
port = st.none() | st.integers(1, 65535)
path = st.lists(plain, max_size=3).map(lambda parts: "".join(f"/{part}" for part in parts))
#: what a password may hold raw: any printable character but whitespace and the URL delimiters
raw_secret = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Zs", "Zl", "Zp"),
                                            exclude_characters="@/?#"), max_size=20)


@st.composite
def secret(draw: st.DrawFn) -> str:
    """A secret as it would be written into a URL: percent-encoded, or raw, always holding :data:`MARK`."""
    body = draw(raw_secret)
    cut = draw(st.integers(0, len(body)))
    text = body[:cut] + MARK + body[cut:]
    return draw(st.sampled_from([quote(text, safe=""), quote(text, safe="!$&'()*+,;=:"), text.replace("&", "")]))


@st.composite
def credential_url(draw: st.DrawFn) -> tuple[str, list[str]]:
    """A URL holding at least one secret (a userinfo password, a secret query parameter), and those secrets."""
    secrets: list[str] = []
    user = draw(st.sampled_from(["", "alice", "postgres", "svc-ml"]))
    userinfo = ""
    if draw(st.booleans()):
        password = draw(secret())
        secrets.append(password)
        userinfo = f"{user}:{password}@"
    elif draw(st.booleans()):
        userinfo = f"{user}@" if user else ""
    query = []
    for name in draw(st.lists(st.sampled_from(SECRET_PARAMS + PLAIN_PARAMS), max_size=4)):
        if name in SECRET_PARAMS:
            value = draw(secret()).replace("&", "%26").replace("#", "%23")
            secrets.append(value)
        else:
            value = draw(plain)
        query.append(f"{name}={value}")
    if not secrets:
        value = draw(secret()).replace("&", "%26").replace("#", "%23")
        secrets.append(value)
        query.append(f"{draw(st.sampled_from(SECRET_PARAMS))}={value}")
    at_port = "" if (p := draw(port)) is None else f":{p}"
    query_text = ("?" + "&".join(query)) if query else ""
    url = f"{draw(st.sampled_from(SCHEMES))}://{userinfo}{draw(host)}{at_port}{draw(path)}{query_text}"
    return url, secrets


@st.composite
def plain_url(draw: st.DrawFn) -> str:
    """A URL without any credential: a user alone at most, plain query parameters."""
    user = draw(st.sampled_from(["", "alice@", "postgres@"]))
    query = [f"{name}={draw(plain)}" for name in draw(st.lists(st.sampled_from(PLAIN_PARAMS), max_size=3))]
    at_port = "" if (p := draw(port)) is None else f":{p}"
    query_text = ("?" + "&".join(query)) if query else ""
    return f"{draw(st.sampled_from(SCHEMES))}://{user}{draw(host)}{at_port}{draw(path)}{query_text}"


around = st.sampled_from(["{}", "could not connect to {}: timeout", "url={} failed", "'{}'", '{{"url": "{}"}}',
                          "store {} (postgres) and user@example.com", "[{}, {}]"])


@SETTINGS
@given(credential_url(), around)
def test_every_credential_of_a_url_is_masked_wherever_it_is_written(case: tuple[str, list[str]], frame: str) -> None:
    url, secrets = case
    text = frame.format(url, url)
    shown = redacted_url(text)
    assert MARK not in shown and not any(secret in shown for secret in secrets), (text, shown)
    assert MASK in shown and has_secret(text)
    assert redacted_url(shown) == shown  # masking twice changes nothing


@SETTINGS
@given(credential_url())
def test_a_masked_url_still_names_its_server(case: tuple[str, list[str]]) -> None:
    url, _ = case
    scheme, _, rest = url.partition("://")
    server = rest.rpartition("@")[2].partition("/")[0].partition("?")[0]
    shown = redacted_url(url)
    assert shown.startswith(f"{scheme}://") and server in shown


@SETTINGS
@given(plain_url(), around)
def test_text_without_credentials_is_left_as_it_is(url: str, frame: str) -> None:
    text = frame.format(url, url)
    assert redacted_url(text) == text and not has_secret(text)


@pytest.mark.parametrize(("text", "shown"), [
    ("postgresql+psycopg://u:p%40ss@h:5432/db", "postgresql+psycopg://u:***@h:5432/db"),
    ("postgresql://u:p@ss@h/db?sslmode=require", "postgresql://u:***@h/db?sslmode=require"),  # SQLAlchemy's raw @
    ("redis://:pw@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
    ("sqlite:////tmp/a:b/mlflow.db", "sqlite:////tmp/a:b/mlflow.db"),
    ("host=db port=5432 password=hunter2 dbname=x", "host=db port=5432 password=*** dbname=x"),
    ("{'username': 'u', 'password': 'it\\'s'}", "{'username': 'u', 'password': '***'}"),
    ('{"routing_key": "R0UT1NG", "events_url": "https://events.pagerduty.com/v2/enqueue"}',
     '{"routing_key": "***", "events_url": "https://events.pagerduty.com/v2/enqueue"}'),
    ("https://hooks.slack.com/services/T0/B0/XYZ", "https://hooks.slack.com/services/***"),
    ("Authorization: Bearer abc.def", "Authorization: Bearer ***"),
    ("https://b.s3.amazonaws.com/k?X-Amz-Algorithm=AWS4&X-Amz-Signature=abc123",
     "https://b.s3.amazonaws.com/k?X-Amz-Algorithm=AWS4&X-Amz-Signature=***"),
])
def test_known_shapes(text: str, shown: str) -> None:
    assert redacted_url(text) == shown


@pytest.mark.parametrize("name", ["ML_PLATFORM_PAGERDUTY_ROUTING_KEY", "ML_PLATFORM_SLACK_WEBHOOK_URL",
                                  "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "PGPASSWORD", "ML_PLATFORM_LEDGER_URL",
                                  "ML_PLATFORM_OUTBOX_URL", "MLFLOW_TRACKING_URI", "DATABASE_URL", "DAGSTER_PG_DSN",
                                  "MLFLOW_TRACKING_TOKEN", "GITHUB_TOKEN", "password"])
def test_secret_names(name: str) -> None:
    assert secret_name(name)


@pytest.mark.parametrize("name", ["OMP_NUM_THREADS", "TZ", "PYTHONHASHSEED", "MKL_CBWR", "CUBLAS_WORKSPACE_CONFIG",
                                  "OPENBLAS_CORETYPE", "POLARS_MAX_THREADS", "sslmode"])
def test_plain_names(name: str) -> None:
    assert not secret_name(name)


@pytest.mark.parametrize("prefix", [b"", b"x", b"xy", b"header: "])
def test_the_leak_finder_finds_a_secret_in_every_form_it_may_be_written_in(prefix: bytes) -> None:
    value = "s3cr3t-" + "0123456789abcdef" * 2 + "/+="
    finder = Secrets({"pg": value})
    blobs = {"plain": value.encode(), "url-encoded": quote(value, safe="").encode(),
             "json-escaped": json.dumps(value)[1:-1].encode(), "utf-16": value.encode("utf-16-le"),
             "base64": base64.b64encode(prefix + value.encode() + b"tail"),
             "urlsafe base64": base64.urlsafe_b64encode(prefix + value.encode())}
    for form, blob in blobs.items():
        assert [leak.where for leak in finder.find(b"<" + blob + b">", form)] != [], form
    assert list(finder.find(b"s3cr3t-0123456789abcdef", "a prefix of it")) == []


def test_the_secrets_of_an_environment_are_its_secret_named_values_and_credential_urls() -> None:
    env = {"PGPASSWORD": "hunter2-hunter2", "ML_PLATFORM_PAGERDUTY_ROUTING_KEY": "R0UT1NGKEY0000",
           "ML_PLATFORM_SLACK_WEBHOOK_URL": "http://127.0.0.1:9/services/T0/B0/t0k3n-t0k3n",
           "ML_PLATFORM_LEDGER_URL": "postgresql+psycopg://ml@127.0.0.1:5432/mlflow",  # no credential in it
           "ML_PLATFORM_MLFLOW_TRACKING_URI": "postgresql://ml:pw-pw-pw@db/mlflow",
           "OMP_NUM_THREADS": "1", "HOME": "/home/someone/with/a/long/path", "AWS_SESSION_TOKEN": "short"}
    assert secret_values(env) == ("R0UT1NGKEY0000", "http://127.0.0.1:9/services/T0/B0/t0k3n-t0k3n", "hunter2-hunter2",
                                  "postgresql://ml:pw-pw-pw@db/mlflow")
