"""Server-side TLS of one bound socket: its certificates, chosen by SNI, reloadable from disk."""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from kafka_edge.tls.context import Certificate, certificate_not_after, load_certificates

if TYPE_CHECKING:
    from kafka_edge.config import TlsServerConfig


@dataclass
class TlsEndpoint:
    """Server-side TLS of one bound socket: certificates chosen by SNI, hot-reloadable."""

    config: TlsServerConfig
    certificates: list[Certificate] = field(default_factory=list)
    base: ssl.SSLContext | None = None
    mtimes: tuple[float, ...] = ()

    @classmethod
    def loaded(cls, config: TlsServerConfig) -> TlsEndpoint:
        """An endpoint with ``config``'s certificate files loaded (errors raised: refused)."""
        endpoint = cls(config)
        endpoint.load()
        return endpoint

    def files(self) -> list[Path]:
        return [Path(p) for c in self.config.certificates for p in (c.cert_file, c.key_file)]

    def load(self) -> None:
        pairs = [(c.cert_file, c.key_file) for c in self.config.certificates]
        certs = load_certificates(pairs, min_version=self.config.min_version,
                                  ciphers=self.config.ciphers)
        if self.base is None:
            self.base = load_certificates(pairs[:1], min_version=self.config.min_version,
                                          ciphers=self.config.ciphers)[0].context
        else:  # new handshakes on the base context (no SNI) pick up the new chain too
            self.base.load_cert_chain(str(pairs[0][0]), str(pairs[0][1]))
        self.certificates = certs
        self.remember_files()

    def remember_files(self) -> None:
        """Note the files' modification times: ``changed`` is true again only when they
        change (after a failed load too, so a broken file is not retried every second)."""
        self.mtimes = self._file_mtimes()

    def _file_mtimes(self) -> tuple[float, ...]:
        """Each file's modification time; -1.0 for one that cannot be read (gone)."""
        mtimes = []
        for f in self.files():
            try:
                mtimes.append(f.stat().st_mtime)
            except OSError:
                mtimes.append(-1.0)
        return tuple(mtimes)

    def expiries(self) -> list[tuple[str, float]]:
        """(certificate file, when it expires as a POSIX timestamp) of each served pair."""
        return [(str(pair.cert_file), certificate_not_after(pair.cert_file))
                for pair in self.config.certificates]

    def changed(self) -> bool:
        return self._file_mtimes() != self.mtimes

    def context_for(self, server_name: str) -> ssl.SSLContext | None:
        for cert in self.certificates:
            if cert.covers(server_name):
                return cert.context
        return None
