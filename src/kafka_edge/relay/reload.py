"""Live configuration reload: on SIGHUP and when the configuration file changes.

The new file is validated in full first (the same loader as start-up, certificate files
included). If it is invalid, the running configuration stays, the errors are logged and
``kafka_edge_config_reloads_total{outcome="error"}`` counts it. If it is valid, new connections
use it at once:

* clusters added, changed (a new runtime; open connections keep the one they started with) and
  removed (their open connections drain: no request after the one in progress, then closed once
  answered; what is left after ``limits.drain_timeout_s`` is aborted);
* listeners opened and closed as the file says; a listener whose address is unchanged keeps its
  socket (no connection attempt is refused during the reload) and takes the new certificates,
  clusters, names and PROXY protocol settings; a port-routed cluster whose ports, TLS or PROXY
  protocol settings changed is bound again;
* limits, routing patterns, upstream settings, the readiness probe and the log level.

``observability.http_bind`` is the one setting that needs a restart (logged if it changed).
"""

from __future__ import annotations

import logging
import ssl
import time
from typing import TYPE_CHECKING

from kafka_edge.config import ConfigError, load_config
from kafka_edge.observability.logs import setup_logging
from kafka_edge.relay.bindings import Binding, binding_names, binding_spec, drain, file_stamp
from kafka_edge.relay.cluster import ClusterRuntime
from kafka_edge.routing.routes import Routes
from kafka_edge.tls.endpoint import TlsEndpoint

if TYPE_CHECKING:
    from kafka_edge.config import Config, Listener
    from kafka_edge.relay.server import Proxy

log = logging.getLogger("kafka_edge.reload")


async def reload(proxy: Proxy, why: str) -> bool:
    """Load ``proxy.config_path`` again and apply it if it is valid: True if applied."""
    path = proxy.config_path
    if path is None:
        proxy.reload_certificates()  # quick mode: no file, the certificates are all there is
        return False
    proxy.config_stamp = file_stamp(path)
    log.info("reloading the configuration (%s)", why, extra={"file": path})
    try:
        new = load_config(path)
    except ConfigError as exc:
        _failed(proxy, f"invalid configuration:\n{exc}")
        return False
    if new == proxy.config:
        log.info("configuration unchanged", extra={"generation": proxy.generation})
        proxy.reload_certificates()  # the same names may point at renewed files
        return True
    try:
        await apply(proxy, new)
    except (OSError, ssl.SSLError, ValueError) as exc:
        _failed(proxy, f"cannot apply it: {exc}")
        return False
    proxy.generation += 1
    proxy.loaded_at = time.time()
    proxy.last_reload = ("ok", "", time.time())
    proxy.metrics.config_reloads.labels("ok").inc()
    proxy.metrics.config_generation.set(proxy.generation)
    proxy.metrics.config_last_ok.set(1)
    log.info("configuration reloaded", extra={"generation": proxy.generation,
                                               "clusters": sorted(proxy.clusters)})
    return True


def _failed(proxy: Proxy, message: str) -> None:
    proxy.last_reload = ("error", message, time.time())
    proxy.metrics.config_reloads.labels("error").inc()
    proxy.metrics.config_last_ok.set(0)
    log.error("configuration reload failed, keeping the running configuration (generation "
              "%d): %s", proxy.generation, message)


async def apply(proxy: Proxy, new: Config) -> None:
    """Switch ``proxy`` to ``new``. Everything that can fail (certificate files, binding new
    addresses) happens before anything changes; then the switch is made in one step."""
    if new.observability.http_bind != proxy.config.observability.http_bind:
        log.warning("observability.http_bind changed: it takes effect at the next restart")
    routes = Routes(new)
    runtimes: dict[str, ClusterRuntime] = {}
    for cluster in new.clusters:
        kept = proxy.clusters.get(cluster.name)
        if kept is not None and kept.config == cluster:
            runtimes[cluster.name] = kept  # given the new routes at the switch
        else:
            runtimes[cluster.name] = ClusterRuntime(cluster, proxy.metrics, routes)
    wanted = binding_names(new)
    fresh, updates = await _bind_changes(proxy, new, wanted)

    # the switch
    removed_clusters = [c for name, c in proxy.clusters.items() if runtimes.get(name) is not c]
    for name in [n for n in proxy.bindings if n not in wanted]:
        proxy.bindings.pop(name).close()
    proxy.bindings.update(fresh)
    for binding, listener, endpoint in updates:
        assert binding.acceptor is not None
        binding.tls = binding.acceptor.endpoint = endpoint
        binding.acceptor.listener = listener
    proxy.config, proxy.routes = new, routes
    for runtime in runtimes.values():
        runtime.routes = routes
    proxy.clusters.clear()
    proxy.clusters.update(runtimes)  # the acceptors hold this same dict
    proxy.export_expiries()
    setup_logging(new.observability.log_level, new.observability.log_format)
    for runtime in removed_clusters:
        runtime.close()
    gone = [c for c in proxy.connections
            if c.cluster is not None and c.cluster.name not in runtimes]
    if gone:
        log.info("draining %d connection(s) of removed cluster(s)", len(gone))
        proxy.spawn(drain(gone, new.limits.drain_timeout_s))


async def _bind_changes(proxy: Proxy, new: Config, wanted: list[str]) -> tuple[
        dict[str, Binding], list[tuple[Binding, Listener, TlsEndpoint]]]:
    """Bind the listeners that are new or moved, and load the certificates of those that stay:
    (the new bindings, the kept SNI listeners with their new settings). On a failure nothing
    new stays bound and what was moved is bound again where it was."""
    fresh: dict[str, Binding] = {}
    replaced: list[Binding] = []
    updates: list[tuple[Binding, Listener, TlsEndpoint]] = []
    try:
        for name in wanted:
            current = proxy.bindings.get(name)
            if current is not None and current.spec == binding_spec(new, name):
                if current.acceptor is not None:  # an SNI listener: new TLS, names, clusters
                    listener = new.listener(name)
                    updates.append((current, listener, TlsEndpoint.loaded(listener.tls)))
                continue
            if current is not None:  # same name, new address or ports: free them first
                current.close()
                replaced.append(current)
            fresh[name] = await proxy.bind(new, name)
    except BaseException:
        for binding in fresh.values():
            binding.close()
        for binding in replaced:
            proxy.bindings[binding.name] = await proxy.bind(proxy.config, binding.name)
        raise
    return fresh, updates
