"""Plain data (as ``yaml.safe_load`` returns it) -> a validated :class:`Config`.

Two passes. First each section is read on its own (types, ranges, required keys, files, secrets)
into model objects; a section with an error yields nothing, but its siblings are still read. Then
the cross-section rules (``_crosscheck.py``: unique names, names that refer to other entries, SNI
names shared by clusters on one listener, ports bound twice) run on everything that was read.
Every error is collected; if there is any, :class:`ConfigError` lists them all.

The first pass is split by section: ``_listeners.py`` (listeners and TLS blocks),
``_clusters.py`` (upstream and routing), ``_limits.py`` (limits and observability), over the
shared converters of ``_scalars.py`` and ``_reader.py``.

The defaults and the rules are documented key by key in docs/configuration.md.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from kafka_edge.config._clusters import cluster_conv, sni_routing_conv
from kafka_edge.config._crosscheck import check_cross_section
from kafka_edge.config._limits import DEFAULT_HTTP_BIND, LIMITS, OBSERVABILITY
from kafka_edge.config._listeners import LISTENER
from kafka_edge.config._reader import At, Context, Invalid, Section
from kafka_edge.config.errors import ConfigError
from kafka_edge.config.model import Config, Listener

__all__ = ["DEFAULT_HTTP_BIND", "parse_config"]

# -- the whole file --------------------------------------------------------------------------------

_TOP_KEYS = ("listeners", "clusters", "limits", "observability")


def parse_config(
    data: object, *, base_dir: Path | None = None, env: Mapping[str, str] | None = None,
    names_only: bool = False,
) -> Config:
    """Validate ``data`` (what ``yaml.safe_load`` returned) into a :class:`Config`.

    Relative file paths are resolved against ``base_dir`` (default: the current folder);
    ``password_env`` names are looked up in ``env`` (default: ``os.environ``, read now).
    ``names_only``: check everything but the files and secrets, which are neither opened nor
    read (the model then holds the paths and empty passwords): for commands such as
    ``kafka-edge dns`` that need names alone. Raises :class:`ConfigError` listing every problem.
    """
    ctx = Context(base_dir=(base_dir or Path.cwd()).absolute(),
                  env=os.environ if env is None else env, names_only=names_only)
    at = At(ctx)
    try:
        s = Section(data, at, _TOP_KEYS)
    except Invalid as exc:
        raise ConfigError([f"top level: {exc}"]) from None

    listeners = s.items("listeners", LISTENER, required=False)
    listeners_by_name: dict[str, Listener] = {}
    for _, listener in listeners:
        listeners_by_name.setdefault(listener.name, listener)
    some_listener_broken = _some_broken(s.data.get("listeners"), listeners, required=False)

    cluster = cluster_conv(sni_routing_conv(listeners_by_name, some_listener_broken))
    clusters = s.items("clusters", cluster, required=True)
    some_cluster_broken = _some_broken(s.data.get("clusters"), clusters, required=True)
    limits = s.section("limits", LIMITS)
    observability = s.section("observability", OBSERVABILITY)

    check_cross_section(at, listeners, clusters, observability,
                        some_cluster_broken=some_cluster_broken)

    if ctx.errors:
        raise ConfigError(ctx.errors)
    return Config(
        listeners=tuple(listener for _, listener in listeners),
        clusters=tuple(cluster for _, cluster in clusters),
        limits=limits,
        observability=observability,
    )


def _some_broken(raw: object, read: Sequence[object], *, required: bool) -> bool:
    """Did some entry of a list fail to read (so a name not found may well be in it)?"""
    if raw is None or raw == []:
        return required
    return not isinstance(raw, list) or len(read) < len(raw)
