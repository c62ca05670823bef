"""kafka-edge: a stateless, Kafka-protocol-aware edge proxy."""

__version__ = "0.1.0"
