"""The checks of ``kafka-edge doctor``, cluster by cluster, in the order a client meets them.

For each cluster: every bootstrap server reachable (TLS verified as configured); the cluster's
metadata read as the proxy's discovery reads it (with ``upstream.discovery.sasl`` when set);
without discovery credentials, whether the cluster answers Metadata unauthenticated (else a
fresh instance cannot find a broker it has not relayed metadata for, unless
``upstream.broker_address_pattern`` is set); every broker the metadata names reachable; the
pattern, when set, agreeing with the metadata; the clock offset to the active controller; and
every edge name clients will use (the bootstrap name and each broker's, from ``routing.routes``)
resolving on this host and covered by a served certificate. Then each served certificate's days
left. A check that needs something that failed is a SKIP; the failure is its own row.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Mapping

from kafka_edge.config import Config, TlsServerConfig
from kafka_edge.config.advice import DISCOVERY_FIX
from kafka_edge.config.names import is_ip
from kafka_edge.doctor.certs import CertInfo, coverage_finding, expiry_finding, read_certificate
from kafka_edge.doctor.clock import ClockUnavailable, clock_finding
from kafka_edge.doctor.probes import (
    MetadataResult,
    describe_error,
    measure_clock,
    probe_upstream,
    read_metadata,
    resolve,
)
from kafka_edge.doctor.report import Finding, Status
from kafka_edge.observability.metrics import Metrics
from kafka_edge.relay.cluster import ClusterRuntime
from kafka_edge.relay.discovery import closed_without_answer
from kafka_edge.routing.routes import Routes


async def diagnose(config: Config, *, timeout: float) -> list[Finding]:
    """Every finding, clusters first (in configuration order), served certificates last."""
    routes, metrics = Routes(config), Metrics()
    served = _ServedCertificates(config)
    findings: list[Finding] = []
    for cluster in config.clusters:
        runtime = ClusterRuntime(cluster, metrics, routes)
        findings += await _cluster(runtime, served.for_cluster(runtime), timeout)
    return findings + served.expiry(dt.datetime.now(dt.UTC))


class _ServedCertificates:
    """The certificates of each SNI listener and port-routing TLS block, each file read once."""

    def __init__(self, config: Config) -> None:
        self._config = config
        self._read: dict[str, CertInfo | Finding] = {}
        self._scopes: dict[str, str] = {}  # file -> the first scope that serves it
        for listener in config.listeners:
            self._load(f"listener {listener.name}", listener.tls)
        for cluster in config.clusters:
            pr = cluster.port_routing
            if pr is not None and pr.tls is not None:
                self._load(f"cluster {cluster.name}", pr.tls)

    def _load(self, scope: str, tls: TlsServerConfig) -> None:
        for pair in tls.certificates:
            path = str(pair.cert_file)
            if path in self._read:
                continue
            self._scopes[path] = scope
            try:
                self._read[path] = read_certificate(path)
            except (OSError, ValueError) as exc:
                self._read[path] = Finding(check="cert-expiry", scope=scope, subject=path,
                                           status=Status.FAIL, detail=f"cannot read: {exc}")

    def for_cluster(self, runtime: ClusterRuntime) -> list[CertInfo] | None:
        """The certificates clients of the cluster are served, in the edge's order of choice;
        None: the cluster's edge ports are plaintext."""
        cluster = runtime.config
        if cluster.sni_routing is not None:
            tls: TlsServerConfig | None = self._config.listener(cluster.sni_routing.listener).tls
        else:
            assert cluster.port_routing is not None
            tls = cluster.port_routing.tls
        if tls is None:
            return None
        infos = (self._read[str(p.cert_file)] for p in tls.certificates)
        return [info for info in infos if isinstance(info, CertInfo)]

    def expiry(self, now: dt.datetime) -> list[Finding]:
        return [info if isinstance(info, Finding) else expiry_finding(self._scopes[path], info, now)
                for path, info in self._read.items()]


async def _cluster(rt: ClusterRuntime, certs: list[CertInfo] | None,
                   timeout: float) -> list[Finding]:
    boot = rt.directory.bootstrap
    findings = list(await asyncio.gather(*(
        probe_upstream(rt, a, subject=f"{a[0]}:{a[1]} (bootstrap)", timeout=timeout)
        for a in boot)))
    if all(f.status is Status.FAIL for f in findings):
        meta = MetadataResult(via=None, brokers={}, error=None)
        findings.append(_row(rt, "metadata", "cluster", Status.SKIP,
                             "no bootstrap server is reachable"))
    else:
        meta = await read_metadata(rt, credentials=rt.credentials, timeout=timeout)
        findings += _metadata_findings(rt, meta)
    if meta.via is not None:
        findings += await asyncio.gather(*(
            probe_upstream(rt, a, subject=f"{a[0]}:{a[1]} (broker {n})", timeout=timeout)
            for n, a in sorted(meta.brokers.items()) if a not in boot))
        findings += _pattern_findings(rt, meta)
        findings.append(await _clock(rt, meta, timeout))
    return findings + await _edge_names(rt, meta, certs, timeout)


def _row(rt: ClusterRuntime, check: str, subject: str, status: Status, detail: str) -> Finding:
    return Finding(check=check, scope=rt.name, subject=subject, status=status, detail=detail)


def _metadata_findings(rt: ClusterRuntime, meta: MetadataResult) -> list[Finding]:
    creds = rt.credentials
    auth = f" (authenticated as {creds.username}, {creds.mechanism})" if creds else ""
    refused = meta.error is not None and closed_without_answer(meta.error)
    if meta.via is not None:
        names = ", ".join(f"{n} {h}:{p}" for n, (h, p) in sorted(meta.brokers.items()))
        rows = [_row(rt, "metadata", "cluster", Status.PASS,
                     f"{len(meta.brokers)} broker(s) via {meta.via[0]}:{meta.via[1]}{auth}: "
                     f"{names}")]
    elif refused and creds is None:
        rows = [_row(rt, "metadata", "cluster", Status.SKIP,
                     "the cluster answers Metadata only after authentication and "
                     "upstream.discovery.sasl is not set: the brokers, their names and the clock "
                     "are not checked")]
    elif meta.refused:
        named = ", ".join(f"{h}:{p} (node {n})" for n, h, p in meta.refused)
        rows = [_row(rt, "metadata", "cluster", Status.FAIL,
                     f"the metadata names broker addresses outside the upstream address policy "
                     f"({rt.directory.policy.description}): {named}; the proxy learns nothing "
                     "from such an answer. If they are right, add them to upstream.allowed_hosts")]
    else:
        assert meta.error is not None
        rows = [_row(rt, "metadata", "cluster", Status.FAIL,
                     f"discovery as the proxy does it{auth} failed: "
                     f"{describe_error(meta.error)}")]
    if creds is None:
        rows.append(_discovery_finding(rt, meta, refused=refused))
    return rows


def _discovery_finding(rt: ClusterRuntime, meta: MetadataResult, *, refused: bool) -> Finding:
    """Without discovery credentials: can a fresh instance find a broker it has not seen?"""
    if meta.via is not None or meta.refused:
        return _row(rt, "discovery", "unauthenticated Metadata", Status.PASS,
                    "the cluster answers Metadata without authentication: a freshly started "
                    "instance can look up any broker")
    if not refused:
        return _row(rt, "discovery", "unauthenticated Metadata", Status.SKIP,
                    "the cluster did not answer (see metadata)")
    for key in ("broker_address_pattern", "broker_name_pattern"):
        if getattr(rt.config.upstream, key) is not None:
            return _row(rt, "discovery", "unauthenticated Metadata", Status.PASS,
                        "refused (the listener requires SASL); a fresh instance needs no "
                        f"metadata: upstream.{key} gives each broker's address")
    return _row(rt, "discovery", "unauthenticated Metadata", Status.WARN,
                "the cluster closed the connection (its listener requires SASL): a freshly "
                "started instance refuses a client's first connection to a broker it has not "
                f"seen in relayed metadata; {DISCOVERY_FIX}")


def _pattern_findings(rt: ClusterRuntime, meta: MetadataResult) -> list[Finding]:
    if rt.config.upstream.maps_names:
        return _name_pattern_findings(rt, meta)
    pattern = rt.config.upstream.broker_address_pattern
    if pattern is None:
        return []
    differ = [f"node {n}: pattern {_hostport(by_pattern)}, metadata {_hostport(a)}"
              for n, a in sorted(meta.brokers.items())
              if (by_pattern := rt.routes.upstream_by_pattern(rt.name, n)) != a]
    if differ:
        return [_row(rt, "address-pattern", pattern, Status.WARN,
                     "differs from the metadata (a fresh instance dials the pattern's address): "
                     + "; ".join(differ))]
    return [_row(rt, "address-pattern", pattern, Status.PASS,
                 f"agrees with the metadata for all {len(meta.brokers)} broker(s)")]


def _name_pattern_findings(rt: ClusterRuntime, meta: MetadataResult) -> list[Finding]:
    """Name mapping: every broker the metadata names must be one the pattern produces, at the
    address the pattern gives for the number in its name (what a fresh instance dials)."""
    up = rt.config.upstream
    pattern = up.broker_name_pattern
    assert pattern is not None
    differ = []
    for node, (host, port) in sorted(meta.brokers.items()):
        number = up.number_in_name(host)
        by_name = None if number is None else rt.routes.upstream_by_name(rt.name, number)
        if by_name != (host, port):
            differ.append(f"node {node}: metadata {host}:{port}, pattern {_hostport(by_name)}")
    if differ:
        return [_row(rt, "name-pattern", pattern, Status.FAIL,
                     "the metadata names brokers the pattern does not map (clients are given "
                     "no usable address for them): " + "; ".join(differ))]
    return [_row(rt, "name-pattern", pattern, Status.PASS,
                 f"maps all {len(meta.brokers)} broker name(s) of the metadata")]


def _hostport(address: tuple[str, int] | None) -> str:
    return "none" if address is None else f"{address[0]}:{address[1]}"


async def _clock(rt: ClusterRuntime, meta: MetadataResult, timeout: float) -> Finding:
    assert meta.via is not None
    subject = f"{meta.via[0]}:{meta.via[1]}"
    try:
        return clock_finding(rt.name, subject, await measure_clock(rt, meta.via,
                                                                   timeout=timeout))
    except ClockUnavailable as exc:
        return _row(rt, "clock", subject, Status.SKIP, f"not measurable: {exc}")
    except Exception as exc:
        return _row(rt, "clock", subject, Status.WARN,
                    f"DescribeQuorum failed: {describe_error(exc)}")


def _edge_hosts(rt: ClusterRuntime, brokers: Mapping[int, tuple[str, int]]
                ) -> tuple[dict[str, list[str]], int, list[Finding]]:
    """Each edge host clients are given -> its roles; the port; nodes without an edge address."""
    cluster, routes = rt.config, rt.routes
    if cluster.sni_routing is not None:
        host, port = cluster.sni_routing.bootstrap_host, cluster.sni_routing.advertised_port
    else:
        assert cluster.port_routing is not None
        host, port = cluster.port_routing.advertised_host, cluster.port_routing.bootstrap_port
    hosts: dict[str, list[str]] = {host: ["bootstrap"]}
    unrouted = []
    for node, (upstream_host, _) in sorted(brokers.items()):
        address = (routes.edge_address_for_host(rt.name, upstream_host)
                   if cluster.upstream.maps_names else routes.edge_address(rt.name, node))
        if address is None and cluster.upstream.maps_names:
            unrouted.append(_row(rt, "edge-route", f"broker {node}", Status.FAIL,
                                 f"no edge address: its name {upstream_host} does not match "
                                 "upstream.broker_name_pattern"))
            continue
        if address is None:
            pr = cluster.port_routing
            span = f"{pr.node_id_min}..{pr.node_id_max}" if pr is not None else "n/a"
            unrouted.append(_row(rt, "edge-route", f"broker {node}", Status.FAIL,
                                 f"no edge address: outside port_routing node_id_min.."
                                 f"node_id_max ({span}); clients cannot reach it"))
            continue
        hosts.setdefault(address[0], []).append(f"broker {node}")
    return hosts, port, unrouted


async def _edge_names(rt: ClusterRuntime, meta: MetadataResult, certs: list[CertInfo] | None,
                      timeout: float) -> list[Finding]:
    hosts, port, findings = _edge_hosts(rt, meta.brokers)

    async def dns(host: str, role: str) -> Finding:
        if is_ip(host):
            return _row(rt, "edge-dns", host, Status.PASS, f"{role}: an IP address, no look-up")
        try:
            addresses = await resolve(host, port, timeout=timeout)
        except TimeoutError:
            return _row(rt, "edge-dns", host, Status.FAIL, f"{role}: no answer within {timeout} s")
        except OSError as exc:
            return _row(rt, "edge-dns", host, Status.FAIL, f"{role}: {describe_error(exc)}")
        return _row(rt, "edge-dns", host, Status.PASS, f"{role}: resolves to "
                    f"{', '.join(addresses)}")

    roles = {host: ", ".join(r) for host, r in hosts.items()}
    for finding in await asyncio.gather(*(dns(h, r) for h, r in roles.items())):
        findings.append(finding)
        if certs is not None:
            findings.append(coverage_finding(rt.name, finding.subject, certs,
                                             role=roles[finding.subject]))
    if meta.via is None and rt.config.sni_routing is not None:
        findings.append(_row(rt, "edge-dns", rt.config.sni_routing.broker_host_pattern,
                             Status.SKIP, "no metadata: broker names not checked"))
    return findings
