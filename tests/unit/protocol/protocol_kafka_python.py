"""kafka-python 3.x protocol classes, the independent implementation the differential tests
compare against. Importing kafka-python warns (DeprecationWarning from
importlib.resources.read_text while it loads its JSON schemas) and pytest turns warnings into
errors, so the import happens here, once, with that warning silenced."""

from __future__ import annotations

import warnings

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import kafka.protocol.old.api_versions as old_api_versions
    import kafka.protocol.old.fetch as old_fetch
    import kafka.protocol.old.find_coordinator as old_find_coordinator
    import kafka.protocol.old.metadata as old_metadata
    import kafka.protocol.old.produce as old_produce
    from kafka.protocol.admin import DescribeClusterResponse, DescribeQuorumResponse
    from kafka.protocol.consumer import FetchResponse
    from kafka.protocol.metadata import (
        ApiVersionsResponse,
        FindCoordinatorResponse,
        MetadataRequest,
        MetadataResponse,
    )
    from kafka.protocol.old.types import BitField as OldBitField
    from kafka.protocol.producer import ProduceRequest, ProduceResponse
    from kafka.protocol.schemas.fields.codecs import BitField

__all__ = [
    "ApiVersionsResponse",
    "BitField",
    "DescribeClusterResponse",
    "DescribeQuorumResponse",
    "FetchResponse",
    "FindCoordinatorResponse",
    "MetadataRequest",
    "MetadataResponse",
    "OldBitField",
    "ProduceRequest",
    "ProduceResponse",
    "old_api_versions",
    "old_fetch",
    "old_find_coordinator",
    "old_metadata",
    "old_produce",
]
