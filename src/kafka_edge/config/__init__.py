"""Configuration: YAML -> a validated, frozen model.

Every error names its key path and what was expected, and all of them are reported at once
(:class:`ConfigError`). The keys are documented in docs/configuration.md.

    config = load_config("kafka-edge.yaml")
    config = quick_config(upstream="127.0.0.1:9092", listen="127.0.0.1:19092")
"""

from kafka_edge.config.errors import ConfigError
from kafka_edge.config.load import load_config
from kafka_edge.config.model import (
    CertificatePair,
    ClusterConfig,
    Config,
    Discovery,
    Limits,
    Listener,
    LogFormat,
    LogLevel,
    Observability,
    PortRouting,
    ProxyProtocol,
    SaslCredentials,
    SaslMechanism,
    SniRouting,
    TlsServerConfig,
    TlsVersion,
    Upstream,
    UpstreamTls,
)
from kafka_edge.config.names import HostPort
from kafka_edge.config.parse import DEFAULT_HTTP_BIND, parse_config
from kafka_edge.config.quick import quick_config
from kafka_edge.config.secret import Secret

__all__ = [
    "DEFAULT_HTTP_BIND",
    "CertificatePair",
    "ClusterConfig",
    "Config",
    "ConfigError",
    "Discovery",
    "HostPort",
    "Limits",
    "Listener",
    "LogFormat",
    "LogLevel",
    "Observability",
    "PortRouting",
    "ProxyProtocol",
    "SaslCredentials",
    "SaslMechanism",
    "Secret",
    "SniRouting",
    "TlsServerConfig",
    "TlsVersion",
    "Upstream",
    "UpstreamTls",
    "load_config",
    "parse_config",
    "quick_config",
]
