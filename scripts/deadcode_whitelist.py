"""Names the dead-code check (scripts/deadcode.py) must not report: uses vulture cannot see.

A vulture whitelist: each line marks a name as used wherever it is defined, so keep every entry
to a name that is used in a way vulture cannot follow, with the reason. An entry vulture would
no longer flag fails the check (remove it then). Not meant to be run.
"""

# ruff: noqa: B018, F821 (bare attribute expressions on an undefined `_`: vulture's format)

# asyncio calls these protocol callbacks (relay/connection.py, relay/read_buffer.py:
# asyncio.BufferedProtocol)
_.get_buffer
_.sizehint  # get_buffer(sizehint): the callback's signature, the hint is not needed
_.connection_made
_.buffer_updated
_.eof_received
_.connection_lost
_.pause_writing
_.resume_writing

# generated from Kafka's message definitions (scripts/gen_messages.py): the definitions say all
# of it, and the tests check it against the jar and against the rest of the definitions
_.KAFKA_VERSION  # protocol/messages.py
_.response_flexible_from  # protocol/schema.py ApiSpec
