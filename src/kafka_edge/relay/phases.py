"""The phases of one proxied connection and every transition between them (``TRANSITIONS``; a
test checks this list against the table); ``ProxyConnection`` (relay/connection.py) moves
through them::

    accepted  --routed-->              dialling
    accepted  --close-->               closed
    dialling  --upstream_connected-->  relaying
    dialling  --close-->               closed
    relaying  --drain-->               draining
    relaying  --close-->               closed
    draining  --drained-->             finishing
    draining  --close-->               closed
    finishing --close-->               closed
    closed    --upstream_connected-->  closed

``accepted``: the client's transport is up (after the TLS handshake on TLS ports; on SNI listeners
``relay/accept.py`` has already read the ClientHello, routed the name and chosen the certificate).
``dialling``: the client's socket is not read (the kernel buffers what it sends) while
``ClusterRuntime.dial`` connects to the broker, checking the address policy first. ``relaying``:
bytes flow through a ``RequestStream`` (client -> broker) and a ``ResponseStream`` (broker ->
client); when one side's write buffer is full the other side's reads pause, so memory stays bounded
when a peer reads slowly. ``draining`` (the proxy is shutting down): no request is taken after the
frame in progress (later ones are read and dropped: never forwarded, so the client resends them
elsewhere), until every answer to what reached the broker has been written whole and has left the
proxy's buffers. ``finishing``: on TCP the client's side is half-closed (FIN after the last byte)
and the proxy reads on until the client closes, so no unread input turns the close into a reset
that would discard answers still in the kernel's send buffer; on TLS the transport's own shutdown
(close_notify) does the same. The drain deadline aborts whatever is left. ``closed``: both
transports closed (what was queued is flushed first); an upstream connection that completes after
the client left is closed at once.
"""

from __future__ import annotations

import enum


class Phase(enum.Enum):
    ACCEPTED = "accepted"
    DIALLING = "dialling"
    RELAYING = "relaying"
    DRAINING = "draining"
    FINISHING = "finishing"
    CLOSED = "closed"


_A, _D, _R, _DR, _C = Phase.ACCEPTED, Phase.DIALLING, Phase.RELAYING, Phase.DRAINING, Phase.CLOSED
_F = Phase.FINISHING

# (phase, event) -> the next phase: every change of phase, in one table.
TRANSITIONS: dict[tuple[Phase, str], Phase] = {
    (_A, "routed"): _D,
    (_A, "close"): _C,
    (_D, "upstream_connected"): _R,
    (_D, "close"): _C,
    (_R, "drain"): _DR,
    (_R, "close"): _C,
    (_DR, "drained"): _F,
    (_DR, "close"): _C,
    (_F, "close"): _C,
    (_C, "upstream_connected"): _C,
}
