"""Property-based fuzzing of every public route through the gateway, from the merged OpenAPI document,
with a valid token of each role and both valid and invalid inputs: never a 5xx, every error a problem
document. One test walks all operations (the schema exists only once the stack runs) and reports every
failure at once."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from shared.testing import auth_headers
from tools.stack import Stack

pytestmark = pytest.mark.e2e

ROLES = {
    "anonymous": {},
    "backer": auth_headers("fuzz-backer", "backer"),
    "creator": auth_headers("fuzz-creator", "creator"),
    "operator": auth_headers("fuzz-operator", "operator"),
}
EXAMPLES_PER_OPERATION = 10


CALLS: list[int] = []


def _problems_in(case: schemathesis.Case) -> list[str]:
    problems = []
    for role, credentials in ROLES.items():
        CALLS.append(1)
        response = case.call(headers={**(case.headers or {}), **credentials}, timeout=15)
        where = f"{case.method} {case.formatted_path} as {role} -> {response.status_code}"
        if response.status_code >= 500:
            problems.append(f"{where}: {response.text[:300]}")
        elif response.status_code >= 400:
            content_type = (response.headers.get("content-type") or [""])[0]  # schemathesis: header -> values
            if not content_type.startswith("application/problem+json"):
                problems.append(f"{where}: not a problem document: {response.text[:200]}")
            elif response.json().get("status") != response.status_code:
                problems.append(f"{where}: problem status differs")
    return problems


def test_no_route_answers_5xx_or_a_non_problem_error(stack: Stack) -> None:
    schema = schemathesis.openapi.from_url(stack.config.url("gateway") + "/openapi.json")
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=EXAMPLES_PER_OPERATION,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            def explore(case: schemathesis.Case) -> None:
                found = _problems_in(case)
                failures.extend(found)
                assert not found  # lets Hypothesis shrink to the smallest failing input

            try:
                explore()
            except AssertionError:
                pass  # recorded in `failures`; keep exploring the other operations
            except Unsatisfiable:
                pass  # nothing to make invalid (no parameters, no body): no negative case exists
    assert operations > 20, "the merged document lost its operations"
    assert len(CALLS) > operations * len(ROLES) * 3, f"only {len(CALLS)} requests were made"
    assert not failures, f"{len(failures)} failures:\n" + "\n".join(sorted(set(failures))[:40])
