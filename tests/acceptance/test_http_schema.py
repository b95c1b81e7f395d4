"""schemathesis against `livestreams serve`'s own /openapi.json: generated requests to every
operation, with a key holding every scope, on a fresh PostgreSQL database.

Every answer must be no 5xx, a status code, content type, headers and body the document
declares. Bounded (few examples per operation, a deadline), so it takes seconds, not minutes.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.schemas import APIOperation
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from models.db import get_sessionmaker
from tests.conftest import examples, fresh_pg_database
from tests.processes import Celery, free_port
from tests.webhook_signing import public_pem, signing_key
from worker.crypto import new_key
from worker.http import apikeys

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

MAX_EXAMPLES = 25  # per operation: enough to cross each parameter's edges, done in seconds

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, Path]]:
    """(base URL, a key with every scope, the serve log) of a `livestreams serve` process."""
    with fresh_pg_database("livestreams_schema") as url:
        env = {
            "LIVESTREAMS_DATABASE_URL": url,
            "LIVESTREAMS_SECRET_KEY": new_key(),
            "CLOUDFLARE_ACCOUNT_ID": "acct-schema",
            "REALTIMEKIT_APP_ID": "app-schema",
            # Configured, so that the webhook route never needs the provider's origin (this
            # test has no internet): its generated signatures are checked, and refused.
            "LIVESTREAMS_RTK_WEBHOOK_PUBLIC_KEY": public_pem(signing_key()),
        }
        with get_sessionmaker(url).begin() as session:
            _, key = apikeys.create(session, name="schemathesis", scopes=apikeys.SCOPES)
        port = free_port()
        with Celery(env, tmp_path_factory.mktemp("schema")) as procs:
            procs.serve("serve", port)
            yield f"http://127.0.0.1:{port}", key, procs.log("serve")


def _check(operation: APIOperation, key: str) -> None:
    """Generated cases for one operation (valid ones and invalid ones), each sent and checked;
    raises the first failure hypothesis keeps after shrinking."""
    headers = {"Authorization": f"Bearer {key}"}
    # /v1/status answers 503 by design while no dispatcher ticks (none runs here); it is
    # declared, so the conformance checks still hold it to its document.
    checks = CHECKS[1:] if operation.path == "/v1/status" else CHECKS
    strategy = st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE),
        operation.as_strategy(GenerationMode.NEGATIVE),
    )

    @given(case=strategy)
    @settings(
        max_examples=examples(MAX_EXAMPLES),
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def sent(case: schemathesis.Case) -> None:
        case.call_and_validate(headers=headers, checks=checks, timeout=10)

    sent()


def test_every_answer_is_declared_and_none_is_a_server_error(
    served: tuple[str, str, Path],
) -> None:
    base, key, log = served
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
    failures = []
    checked = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        checked += 1
        try:
            _check(operation, key)
        except (AssertionError, FailureGroup) as exc:
            failures.append(f"{operation.label}: {exc}"[:2000])
    assert checked >= 9  # every route of the app, not an empty document
    assert not failures, "\n\n".join(failures) + "\n--- serve log\n" + log.read_text()[-3000:]
