"""What the status page shows, as plain data: one process's snapshot, and several merged.

A :class:`StatusSnapshot` is built from a running proxy (``relay/status_snapshot.py``), rendered
by ``observability/status_page.py`` and served as JSON at ``/status.json``. With several worker
processes each worker's snapshot travels as JSON (``to_json`` / ``from_json``) and ``merge``
makes the instance's one: connections add up, brokers are united, refusals interleave newest
first.

The JSON codec is written here rather than taken from a library (cattrs, pydantic): seven small
frozen dataclasses of str/int/float/bool, tuples and optionals need about forty lines, and a
runtime dependency for them would outweigh the code. ``from_json`` checks every value's type and
refuses unknown or missing keys, naming the path (``clusters[0].brokers[2].node_id``).

Times are wall-clock seconds since the epoch (``time.time()``).
"""

from __future__ import annotations

import dataclasses
import json
import types
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

RoutingMode = Literal["sni", "port"]
MAX_REFUSALS = 50  # refusals a merged snapshot keeps (each process keeps as many of its own)
_K = TypeVar("_K")
_V = TypeVar("_V")


@dataclass(frozen=True, slots=True, kw_only=True)
class InstanceStatus:
    version: str
    pids: tuple[int, ...]
    workers: int = 1  # processes this snapshot covers
    started_at: float
    uptime_s: float
    draining: bool
    ready: bool
    ready_reason: str = ""  # why not ready; "" when ready


@dataclass(frozen=True, slots=True, kw_only=True)
class ReloadResult:
    ok: bool
    message: str
    at: float


@dataclass(frozen=True, slots=True, kw_only=True)
class ConfigurationStatus:
    generation: int = 1  # 1 for the configuration read at start, + 1 per applied reload
    loaded_at: float
    last_reload: ReloadResult | None = None  # None: never reloaded


@dataclass(frozen=True, slots=True, kw_only=True)
class BrokerStatus:
    node_id: int
    edge_address: str  # what clients are told for this node; "" when it has none
    upstream_address: str  # where the edge dials it; "" when not learned yet
    connections: int = 0  # client connections open to this broker


@dataclass(frozen=True, slots=True, kw_only=True)
class ClusterStatus:
    name: str
    routing: RoutingMode
    listener: str  # the listener its connections arrive on (see ListenerStatus.name)
    bootstrap_edge: str  # the bootstrap address clients use
    upstream_bootstrap: tuple[str, ...]  # upstream.bootstrap_servers
    bootstrap_connections: int = 0  # client connections open to the bootstrap
    brokers: tuple[BrokerStatus, ...] = ()  # by node id

    @property
    def connections(self) -> int:
        return self.bootstrap_connections + sum(b.connections for b in self.brokers)


@dataclass(frozen=True, slots=True, kw_only=True)
class ListenerStatus:
    name: str  # a configured listener, or "<cluster>.port_routing" for a cluster's own ports
    routing: RoutingMode
    bind: str
    connections: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class CertificateStatus:
    listener: str
    file: str
    names: tuple[str, ...]  # the DNS names it is valid for (subject alternative names, or CN)
    not_after: float | None  # None when the file could not be read (``error`` says why)
    days_left: float | None
    error: str = ""  # why the file could not be read


@dataclass(frozen=True, slots=True, kw_only=True)
class RefusalStatus:
    at: float
    listener: str
    reason: str
    peer: str
    detail: str


@dataclass(frozen=True, slots=True, kw_only=True)
class StatusSnapshot:
    generated_at: float
    instance: InstanceStatus
    configuration: ConfigurationStatus
    clusters: tuple[ClusterStatus, ...] = ()
    listeners: tuple[ListenerStatus, ...] = ()
    certificates: tuple[CertificateStatus, ...] = ()
    refusals: tuple[RefusalStatus, ...] = ()  # newest first

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), allow_nan=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> StatusSnapshot:
        """The snapshot ``to_json`` wrote; ValueError naming the first wrong value's path."""
        snapshot = _decode(cls, json.loads(text), "")
        assert isinstance(snapshot, cls)
        return snapshot


# -- merging -------------------------------------------------------------------------------------


def merge(snapshots: Sequence[StatusSnapshot]) -> StatusSnapshot:
    """One instance's snapshot from its workers': connections summed, brokers and certificates
    united (a certificate's earliest expiry kept), refusals newest first (``MAX_REFUSALS``).
    The configuration shown is the oldest generation a worker still runs, with the latest
    reload result; the instance is ready only if every worker is."""
    if not snapshots:
        raise ValueError("nothing to merge")
    refusals = sorted((r for s in snapshots for r in s.refusals), key=lambda r: -r.at)
    return StatusSnapshot(
        generated_at=max(s.generated_at for s in snapshots),
        instance=_merge_instances([s.instance for s in snapshots]),
        configuration=_merge_configurations([s.configuration for s in snapshots]),
        clusters=tuple(_merge_clusters(group)
                       for group in _grouped((c.name, c) for s in snapshots for c in s.clusters)),
        listeners=tuple(
            dataclasses.replace(group[0], connections=sum(x.connections for x in group))
            for group in _grouped((x.name, x) for s in snapshots for x in s.listeners)),
        certificates=tuple(
            min(group, key=_expiry)
            for group in _grouped(((c.listener, c.file), c)
                                  for s in snapshots for c in s.certificates)),
        refusals=tuple(refusals[:MAX_REFUSALS]),
    )


def _grouped(pairs: Iterable[tuple[_K, _V]]) -> list[list[_V]]:
    """Values with equal keys together, in the order their keys first appear."""
    groups: dict[_K, list[_V]] = {}
    for key, value in pairs:
        groups.setdefault(key, []).append(value)
    return list(groups.values())


def _expiry(cert: CertificateStatus) -> tuple[bool, float]:
    # unreadable first (it is what needs attention), then the earliest to expire
    return cert.not_after is not None, cert.not_after or 0.0


def _merge_instances(items: list[InstanceStatus]) -> InstanceStatus:
    reasons = [i.ready_reason for i in items if not i.ready and i.ready_reason]
    return InstanceStatus(
        version=", ".join(dict.fromkeys(i.version for i in items)),
        pids=tuple(sorted(p for i in items for p in i.pids)),
        workers=sum(i.workers for i in items),
        started_at=min(i.started_at for i in items),
        uptime_s=max(i.uptime_s for i in items),
        draining=any(i.draining for i in items),
        ready=all(i.ready for i in items),
        ready_reason="; ".join(dict.fromkeys(reasons)),
    )


def _merge_configurations(items: list[ConfigurationStatus]) -> ConfigurationStatus:
    oldest = min(items, key=lambda c: (c.generation, c.loaded_at))
    reloads = [c.last_reload for c in items if c.last_reload is not None]
    return dataclasses.replace(
        oldest, last_reload=max(reloads, key=lambda r: r.at) if reloads else None)


def _merge_clusters(group: list[ClusterStatus]) -> ClusterStatus:
    brokers = [
        dataclasses.replace(
            same[0], connections=sum(b.connections for b in same),
            upstream_address=next((b.upstream_address for b in same if b.upstream_address), ""))
        for same in _grouped((b.node_id, b) for c in group for b in c.brokers)]
    return dataclasses.replace(
        group[0], bootstrap_connections=sum(c.bootstrap_connections for c in group),
        brokers=tuple(sorted(brokers, key=lambda b: b.node_id)))


# -- JSON decoding ---------------------------------------------------------------------------------


def _decode(kind: Any, value: object, path: str) -> object:
    """``value`` (parsed JSON) as ``kind``: a dataclass, tuple[X, ...], X | None, a Literal,
    str, int, float or bool."""
    origin = get_origin(kind)
    if dataclasses.is_dataclass(kind):
        return _decode_dataclass(kind, value, path)
    if origin is tuple:
        if not isinstance(value, list):
            raise ValueError(f"{path or 'value'}: expected a list, got {type(value).__name__}")
        item = get_args(kind)[0]
        return tuple(_decode(item, v, f"{path}[{i}]") for i, v in enumerate(value))
    if origin in (Union, types.UnionType):
        if value is None and type(None) in get_args(kind):
            return None
        inner = [a for a in get_args(kind) if a is not type(None)]
        return _decode(inner[0], value, path)
    if origin is Literal:
        if value not in get_args(kind):
            raise ValueError(f"{path}: {value!r} is not one of {list(get_args(kind))}")
        return value
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind in (str, int, float, bool) and type(value) is kind:
        return value
    raise ValueError(f"{path}: expected {getattr(kind, '__name__', kind)}, "
                     f"got {type(value).__name__}")


def _decode_dataclass(kind: Any, value: object, path: str) -> object:
    if not isinstance(value, dict):
        raise ValueError(f"{path or 'value'}: expected an object, got {type(value).__name__}")
    hints = get_type_hints(kind)
    names = {f.name for f in dataclasses.fields(kind)}
    unknown = sorted(set(value) - names)
    if unknown:
        raise ValueError(f"{path or 'value'}: unknown key {unknown[0]!r}")
    args: dict[str, object] = {}
    for field in dataclasses.fields(kind):
        where = f"{path}.{field.name}" if path else field.name
        if field.name in value:
            args[field.name] = _decode(hints[field.name], value[field.name], where)
        elif (field.default is dataclasses.MISSING
              and field.default_factory is dataclasses.MISSING):
            raise ValueError(f"{where}: missing")
    return kind(**args)
