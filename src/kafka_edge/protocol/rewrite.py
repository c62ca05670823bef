"""Re-exports only, for the importers not moved yet: what used to be defined here now lives in
``addresses`` (address rewriting of responses), ``api_versions`` (the ApiVersions editor) and
``peeks`` (request header, Produce acks, SaslHandshake v0 answer).

Only the names still imported from here are kept: by ``stream.py``, ``relay/discovery.py``,
tests/e2e/test_port_mode.py and tests/e2e/test_security_desync.py. New code imports from the
modules above; remove this module once those do too.
"""

from __future__ import annotations

from kafka_edge.protocol.addresses import (
    FIRST_ADDRESS_VERSION,
    MAX_PARSED_VERSION,
    REWRITTEN_APIS,
    AddressMapper,
    produce_has_no_endpoints,
    rewrite_response,
)
from kafka_edge.protocol.api_versions import (
    api_versions_unsupported_response,
    rewrite_api_versions,
)
from kafka_edge.protocol.peeks import (
    produce_acks,
    produce_acks_fast,
    sasl_handshake_v0_succeeded,
)

__all__ = [
    "FIRST_ADDRESS_VERSION",
    "MAX_PARSED_VERSION",
    "REWRITTEN_APIS",
    "AddressMapper",
    "api_versions_unsupported_response",
    "produce_acks",
    "produce_acks_fast",
    "produce_has_no_endpoints",
    "rewrite_api_versions",
    "rewrite_response",
    "sasl_handshake_v0_succeeded",
]
