"""Sans-I/O Kafka protocol code: wire primitives, the schema-driven codec, the address
rewriting of broker responses, the ApiVersions intersection and the request-header peeks the
relay needs. Nothing in this package does I/O (no asyncio, socket or ssl).

Modules: ``errors`` (ProtocolError / EncodeError), ``primitives`` (varints, lengths, tagged
sections), ``schema`` (shapes of message descriptions), ``messages`` (generated from Apache
Kafka's JSON definitions by scripts/gen_messages.py), ``codec`` (decode/encode), ``rewrite``
(the API the relay calls).
"""
