"""Property-based fuzz of the API from its own OpenAPI schema: no input gives a 5xx."""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from service_helpers import FakePredictor

from cityseg.service.app import create_app
from cityseg.service.settings import Settings

# Built at collection: schemathesis parametrises one test per operation of this schema and
# runs the app's lifespan itself (the fake predictor is ready at once).
schema = schemathesis.openapi.from_asgi(
    "/openapi.json", create_app(Settings(max_pixels=1_000_000), predictor=FakePredictor())
)


@schema.parametrize()
@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_no_server_errors(case: schemathesis.Case) -> None:
    case.call_and_validate(checks=[not_a_server_error])
