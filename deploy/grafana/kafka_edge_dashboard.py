"""The Grafana dashboard deploy/grafana/kafka-edge.json, built with Grafana's own typed builders
(grafana-foundation-sdk), so its structure is the one Grafana's dashboard schema defines.

    python deploy/grafana/kafka_edge_dashboard.py --write   # (make deploy-files)
    python deploy/grafana/kafka_edge_dashboard.py --check   # exit 1 if the file is stale

Every query reads the metrics of docs/operations.md ("Metrics"); a test
(tests/deploy/test_grafana_dashboard.py) checks each metric a panel names exists in a live
scrape. Variables: the Prometheus data source, the scraped instances, the clusters.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import prometheus, stat, timeseries
from grafana_foundation_sdk.cog import variants
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as dm

OUT = Path(__file__).resolve().with_name("kafka-edge.json")
UID = "kafka-edge"
DATASOURCE = dm.DataSourceRef(type_val="prometheus", uid="${datasource}")
# label matchers of every query
EDGE = 'instance=~"$instance"'
CLUSTER = f'{EDGE}, cluster=~"$cluster"'
RATE = "[$__rate_interval]"


def query(expr: str, legend: str) -> prometheus.Dataquery:
    return prometheus.Dataquery().expr(expr).legend_format(legend).datasource(DATASOURCE)


def refs(targets: tuple[prometheus.Dataquery, ...]) -> list[Builder[variants.Dataquery]]:
    """The queries of a panel, named A, B, ... (Grafana's refId)."""
    return [t.ref_id(chr(ord("A") + i)) for i, t in enumerate(targets)]


def graph(title: str, unit: str, description: str, *targets: prometheus.Dataquery,
          width: int = 8) -> timeseries.Panel:
    return (timeseries.Panel().title(title).description(description).unit(unit)
            .datasource(DATASOURCE).targets(refs(targets)).span(width).height(8)
            .fill_opacity(10).legend(cb.VizLegendOptions().display_mode(
                common.LegendDisplayMode.LIST).placement(common.LegendPlacement.BOTTOM)
                .show_legend(True)))


def rate(metric: str, by: str, labels: str = CLUSTER) -> str:
    return f"sum by ({by}) (rate({metric}{{{labels}}}{RATE}))"


def quantile(q: float, histogram: str, by: str) -> str:
    return (f"histogram_quantile({q}, sum by (le, {by}) "
            f"(rate({histogram}_bucket{{{CLUSTER}}}{RATE})))")


def traffic() -> list[timeseries.Panel]:
    return [
        graph("Open connections", "short", "kafka_edge_active_connections: connections open "
              "now, by cluster",
              query(f"sum by (cluster) (kafka_edge_active_connections{{{CLUSTER}}})",
                    "{{cluster}}")),
        graph("New connections", "cps", "kafka_edge_connections_total: accepted and routed, "
              "by cluster and target (bootstrap or broker)",
              query(rate("kafka_edge_connections_total", "cluster, target"),
                    "{{cluster}} {{target}}")),
        graph("Throughput", "Bps", "kafka_edge_relayed_bytes_total: bytes relayed, by "
              "cluster and direction",
              query(rate("kafka_edge_relayed_bytes_total", "cluster, direction"),
                    "{{cluster}} {{direction}}")),
        graph("Requests by API", "reqps", "kafka_edge_requests_total: requests relayed",
              query(rate("kafka_edge_requests_total", "api"), "{{api}}"), width=12),
        graph("Request latency by API (p99)", "s", "kafka_edge_request_latency_seconds: from "
              "a request passing the edge to the first bytes of its answer (Fetch includes "
              "the broker's wait for data)",
              query(quantile(0.99, "kafka_edge_request_latency_seconds", "api"), "{{api}}"),
              width=12),
    ]


def upstream() -> list[timeseries.Panel]:
    return [
        graph("Upstream connect time", "s", "kafka_edge_upstream_connect_seconds: TCP and TLS "
              "to a broker, p50 and p99 by cluster",
              query(quantile(0.5, "kafka_edge_upstream_connect_seconds", "cluster"),
                    "p50 {{cluster}}"),
              query(quantile(0.99, "kafka_edge_upstream_connect_seconds", "cluster"),
                    "p99 {{cluster}}")),
        graph("Upstream connect failures", "cps", "kafka_edge_upstream_connect_failures_total"
              " by cluster and reason",
              query(rate("kafka_edge_upstream_connect_failures_total", "cluster, reason"),
                    "{{cluster}} {{reason}}")),
        graph("Clusters reachable", "short", "kafka_edge_cluster_reachable: 1 when the "
              "readiness probe reached the cluster within its window (lowest instance)",
              query(f"min by (cluster) (kafka_edge_cluster_reachable{{{CLUSTER}}})",
                    "{{cluster}}")),
    ]


def refusals() -> list[timeseries.Panel]:
    return [
        graph("Refused connections by reason", "cps", "kafka_edge_refused_connections_total: "
              "refused before relaying (no_sni, unknown_sni, not_tls, tls_handshake, "
              "max_connections, proxy_header)",
              query(rate("kafka_edge_refused_connections_total", "reason", EDGE),
                    "{{reason}}")),
        graph("TLS handshake failures", "cps", "kafka_edge_tls_handshake_failures_total by "
              "reason",
              query(rate("kafka_edge_tls_handshake_failures_total", "reason", EDGE),
                    "{{reason}}")),
        graph("Connection errors", "cps", "kafka_edge_connection_errors_total: connections "
              "closed on an error, by kind",
              query(rate("kafka_edge_connection_errors_total", "cluster, kind"),
                    "{{cluster}} {{kind}}")),
    ]


def lifecycle() -> list[timeseries.Panel | stat.Panel]:
    expiry = (stat.Panel().title("Certificate expiry").unit("s").datasource(DATASOURCE)
              .description("kafka_edge_certificate_expiry_seconds: time until each served "
                           "certificate expires (soonest instance)")
              .targets(refs((query(f"min by (listener, certificate) "
                                   f"(kafka_edge_certificate_expiry_seconds{{{EDGE}}})",
                                   "{{listener}} {{certificate}}"),)))
              .thresholds(db.ThresholdsConfig().mode(dm.ThresholdsMode.ABSOLUTE).steps([
                  dm.Threshold(value=None, color="red"),
                  dm.Threshold(value=7 * 86400, color="orange"),
                  dm.Threshold(value=21 * 86400, color="green")]))
              .reduce_options(cb.ReduceDataOptions().calcs(["lastNotNull"]))
              .span(8).height(8))
    return [
        graph("Reloads", "short", "kafka_edge_config_reloads_total and "
              "kafka_edge_certificate_reloads_total by outcome (SIGHUP or changed files)",
              query("sum by (outcome) (increase(kafka_edge_config_reloads_total"
                    f"{{{EDGE}}}{RATE}))", "configuration {{outcome}}"),
              query("sum by (outcome) (increase(kafka_edge_certificate_reloads_total"
                    f"{{{EDGE}}}{RATE}))", "certificates {{outcome}}")),
        expiry,
        graph("Workers and restarts", "short", "kafka_edge_workers: worker processes running "
              "(--workers); kafka_edge_worker_restarts_total: workers started again after "
              "exiting, by reason",
              query(f"sum by (instance) (kafka_edge_workers{{{EDGE}}})",
                    "running {{instance}}"),
              query("sum by (instance, reason) (increase(kafka_edge_worker_restarts_total"
                    f"{{{EDGE}}}{RATE}))", "restarted {{instance}} {{reason}}")),
        graph("Ready instances", "short", "kafka_edge_ready: 1 when /readyz answers 200",
              query(f"sum(kafka_edge_ready{{{EDGE}}})", "ready"),
              query(f"count(kafka_edge_build_info{{{EDGE}}})", "running"), width=12),
        graph("Version", "short", "kafka_edge_build_info: the versions running",
              query(f"count by (version) (kafka_edge_build_info{{{EDGE}}})", "{{version}}"),
              width=12),
    ]


def variable(name: str, label: str, query_text: str) -> db.QueryVariable:
    return (db.QueryVariable(name).label(label).datasource(DATASOURCE)
            .query({"query": query_text, "refId": name}).multi(True).include_all(True)
            .all_value(".*").refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(dm.VariableSort.ALPHABETICAL_ASC)
            .current(dm.VariableOption(text="All", value="$__all", selected=True)))


def build() -> dm.Dashboard:
    board = (db.Dashboard("kafka-edge").uid(UID).tags(["kafka", "kafka-edge"])
             .description("kafka-edge, the Kafka-protocol-aware edge proxy: connections, "
                          "traffic, latency, upstream, refusals, reloads, certificates, "
                          "workers (docs/operations.md)")
             .refresh("30s").time("now-3h", "now").timezone("browser").editable()
             .tooltip(dm.DashboardCursorSync.CROSSHAIR)
             .with_variable(db.DatasourceVariable("datasource").label("Data source")
                            .type("prometheus"))
             .with_variable(variable("instance", "Instance",
                                     "label_values(kafka_edge_build_info, instance)"))
             .with_variable(variable("cluster", "Cluster",
                                     "label_values(kafka_edge_connections_total, cluster)")))
    ids = iter(range(1, 100))
    for title, panels in (("Traffic", traffic()), ("Upstream", upstream()),
                          ("Refusals and errors", refusals()),
                          ("Reloads, certificates, workers", lifecycle())):
        board = board.with_row(db.Row(title).id(next(ids)))
        for panel in panels:
            board = board.with_panel(panel.id(next(ids)))
    return board.build()


def render() -> str:
    return json.dumps(build(), cls=JSONEncoder, indent=2, sort_keys=True) + "\n"


def main(argv: list[str]) -> int:
    if argv == ["--write"]:
        OUT.write_text(render())
        return 0
    if argv == ["--check"]:
        if OUT.is_file() and OUT.read_text() == render():
            return 0
        print(f"{OUT.name} is stale: run `make deploy-files`", file=sys.stderr)
        return 1
    print("usage: kafka_edge_dashboard.py --write | --check", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
