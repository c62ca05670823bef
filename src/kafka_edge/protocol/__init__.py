"""Sans-I/O Kafka protocol code: wire primitives, the schema-driven codec, the address
rewriting of broker responses, the ApiVersions intersection and the request-header peeks the
relay needs. Nothing in this package does I/O (no asyncio, socket or ssl).

Modules: ``errors`` (ProtocolError / EncodeError), ``primitives`` (varints, lengths, tagged
sections), ``schema`` (shapes of message descriptions), ``messages`` (generated from Apache
Kafka's JSON definitions by scripts/gen_messages.py), ``codec`` (decode/encode), ``addresses``
(broker addresses in responses rewritten), ``api_versions`` (the ApiVersions editor), ``peeks``
(request header, Produce acks, SaslHandshake v0 answer), ``sasl_v0`` (the SaslHandshake v0
raw-token phase), ``stream`` and ``fetch_stream`` (the frame streams the relay feeds).
"""
