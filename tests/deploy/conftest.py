"""Fixtures of the deployment tests (container image, systemd unit, Helm chart).

- ``image``: the kafka-edge image, built once per session by :func:`testbed.image.build_image`,
  the code path of ``make image`` (the local base and the layers stay cached in podman's store).
- ``helm``: the helm binary, installed once into ``.cache/go-bin`` (:mod:`testbed.gotools`).
- ``deploy_net``: client / edge / cluster network namespaces with a 1-broker cluster in the
  cluster namespace; containers join the edge namespace (``podman run --network ns:PATH``), so
  they use the image's own ports (9098, 9180) and the client reaches the cluster only through
  them. Shared by the module's tests, removed at its end.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from testbed import gobuild, gotools, netns
from testbed import image as images
from testbed.cluster import KafkaCluster

from . import containers
from .containers import DeployNet


@pytest.fixture(scope="session")
def image() -> str:
    """The kafka-edge image's tag, built (or found current) through ``make image``'s code."""
    reason = images.missing_tools()
    if reason is not None:
        pytest.skip(reason)
    containers.sweep_stale()
    images.build_image(images.IMAGE_TAG)
    return images.IMAGE_TAG


@pytest.fixture(scope="session")
def helm() -> Path:
    try:
        return gotools.install("helm")
    except gobuild.GoMissing as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def deploy_net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DeployNet]:
    reason = netns.unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    with netns.topology("deploy") as topo:
        cluster = KafkaCluster.start(tmp_path_factory.mktemp("deploy-kafka"), brokers=1,
                                     security=["PLAINTEXT"], host=topo.cluster_ip,
                                     netns=topo.cluster)
        try:
            yield DeployNet(topo=topo, cluster=cluster)
        finally:
            cluster.stop(timeout=20.0)
