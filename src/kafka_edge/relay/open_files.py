"""The open-file limit (RLIMIT_NOFILE) at start-up.

Every client connection holds two descriptors, the client's socket and the one to its broker,
and the soft limit a process inherits is often 1024 while the hard limit is far higher. So each
proxy process (the single one, and each supervised worker) raises its soft limit to its hard
limit before binding, as Go's runtime and many servers do, logs the limit it ended up with, and
warns when that is below what its configuration may use. Only the hard limit is a ceiling the
operator sets (``LimitNOFILE=`` in a systemd unit, ``ulimit -Hn``, a container runtime's
``--ulimit nofile``).
"""

from __future__ import annotations

import logging
import resource

from kafka_edge.config import Config

log = logging.getLogger("kafka_edge.cli")

# Descriptors a process holds besides the relayed connections and the listening sockets: the
# event loop's own, the admin HTTP server and its clients, readiness probes and broker
# metadata connections, a worker's socket to its supervisor, files read at reload. An estimate.
OWN_DESCRIPTORS = 100


def accepting_listeners(config: Config) -> int:
    """The listeners ``limits.max_connections`` applies to, each on its own: every SNI listener,
    and every port-routed cluster's ports together."""
    return len(config.listeners) + sum(1 for c in config.clusters if c.port_routing is not None)


def descriptors_needed(config: Config) -> int:
    """How many descriptors one proxy process may hold under ``config`` (an estimate): two per
    client connection, ``limits.max_connections`` on each accepting listener, plus one per
    listening port, plus :data:`OWN_DESCRIPTORS`."""
    listening = len(config.listeners) + sum(
        1 + c.port_routing.node_count for c in config.clusters if c.port_routing is not None)
    return (2 * config.limits.max_connections * accepting_listeners(config) + listening
            + OWN_DESCRIPTORS)


def wanted_soft_limit(soft: int, hard: int) -> int:
    """The soft limit to set: the hard limit, unless that is unlimited (a kernel refuses an
    unlimited number of open files; its real ceiling is not portably known) or lower."""
    if hard == resource.RLIM_INFINITY or (soft != resource.RLIM_INFINITY and soft >= hard):
        return soft
    return hard


def too_low(limit: int, config: Config) -> str | None:
    """Why ``limit`` (the soft limit in force) is too low for ``config``; None if it is not."""
    needed = descriptors_needed(config)
    if limit == resource.RLIM_INFINITY or limit >= needed:
        return None
    max_connections = config.limits.max_connections
    listeners = accepting_listeners(config)
    return (f"open files limit (RLIMIT_NOFILE) {limit} is below the {needed} descriptors this "
            f"configuration may use (2 per client connection x limits.max_connections "
            f"{max_connections} x {listeners} listener(s) accepting clients, plus "
            f"{needed - 2 * max_connections * listeners} for listening sockets and the process "
            "itself): past it, connections can be neither accepted nor dialled; raise the hard "
            "limit (LimitNOFILE= in the systemd unit, ulimit -n, a container's --ulimit nofile) "
            "or lower limits.max_connections")


def raise_open_files_limit(config: Config) -> None:
    """Raise this process's soft RLIMIT_NOFILE to its hard limit; log the limit in force, once,
    and a warning if ``config`` may need more."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = wanted_soft_limit(soft, hard)
    raised_from = None
    if wanted != soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        except (OSError, ValueError) as exc:
            log.warning("could not raise the open files limit (RLIMIT_NOFILE) from %d to %d: %s",
                        soft, wanted, exc)
        else:
            raised_from, soft = soft, wanted
    if raised_from is not None:
        log.info("open files limit (RLIMIT_NOFILE) %d: the soft limit raised from %d to the "
                 "hard limit", soft, raised_from)
    else:
        log.info("open files limit (RLIMIT_NOFILE) %s (hard limit %s)", _shown(soft),
                 _shown(hard))
    problem = too_low(soft, config)
    if problem is not None:
        log.warning("%s", problem)


def _shown(limit: int) -> str:
    return "unlimited" if limit == resource.RLIM_INFINITY else str(limit)
