"""SCRAM-SHA-256/512 client (RFC 5802 / RFC 7677), sans-I/O.

Used only by the proxy's own discovery connection (to learn broker addresses from a cluster that
requires SASL); client connections' SASL exchanges pass through untouched. Written here because
no well-kept small Python library offers just the client side of SCRAM; it is ~40 lines on
hashlib/hmac.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from kafka_edge.protocol.errors import ProtocolError


class ScramClient:
    def __init__(self, mechanism: str, username: str, password: str) -> None:
        if mechanism not in ("SCRAM-SHA-256", "SCRAM-SHA-512"):
            raise ValueError(f"unsupported SCRAM mechanism {mechanism!r}")
        self._hash = "sha256" if mechanism.endswith("256") else "sha512"
        self._password = password.encode()
        name = username.replace("=", "=3D").replace(",", "=2C")
        self._nonce = base64.b64encode(secrets.token_bytes(18)).decode()
        self._first_bare = f"n={name},r={self._nonce}"
        self._server_signature = b""

    def first_message(self) -> bytes:
        return ("n,," + self._first_bare).encode()

    def final_message(self, server_first: bytes) -> bytes:
        text = server_first.decode()
        attrs = dict(item.split("=", 1) for item in text.split(",") if "=" in item)
        nonce, salt, iterations = attrs.get("r", ""), attrs.get("s", ""), attrs.get("i", "0")
        if not nonce.startswith(self._nonce) or not salt or int(iterations) < 1:
            raise ProtocolError("SCRAM: invalid server-first message")
        salted = hashlib.pbkdf2_hmac(self._hash, self._password, base64.b64decode(salt),
                                     int(iterations))
        client_key = hmac.digest(salted, b"Client Key", self._hash)
        stored_key = hashlib.new(self._hash, client_key).digest()
        without_proof = f"c=biws,r={nonce}"
        auth_message = f"{self._first_bare},{text},{without_proof}".encode()
        signature = hmac.digest(stored_key, auth_message, self._hash)
        proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
        server_key = hmac.digest(salted, b"Server Key", self._hash)
        self._server_signature = hmac.digest(server_key, auth_message, self._hash)
        return f"{without_proof},p={base64.b64encode(proof).decode()}".encode()

    def verify_server_final(self, server_final: bytes) -> None:
        text = server_final.decode()
        if text.startswith("e="):
            raise ProtocolError(f"SCRAM: server refused: {text[2:]}")
        if not text.startswith("v=") or not hmac.compare_digest(
            base64.b64decode(text[2:]), self._server_signature
        ):
            raise ProtocolError("SCRAM: server signature does not verify")
