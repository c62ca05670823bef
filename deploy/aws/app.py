"""The kafka-edge CDK app: ``cdk synth`` / ``cdk deploy`` from deploy/aws (cdk.json runs it).

    cdk deploy KafkaEdge -c settings=my-settings.yaml --parameters VpcId=vpc-... ...
    cdk deploy KafkaEdgeClient -c settings=my-settings.yaml --parameters ...

Without ``-c settings=FILE`` the stacks are the parameterised ones shipped as
edge.template.json and client.template.json. See docs/deployment.md.
"""

from __future__ import annotations

from pathlib import Path

from aws_cdk import App, CliCredentialsStackSynthesizer
from kafka_edge_cdk.client_stack import ClientStack
from kafka_edge_cdk.edge_stack import EdgeStack
from kafka_edge_cdk.settings import load_settings


def main() -> None:
    app = App()
    settings = app.node.try_get_context("settings")
    deployment = None if settings is None else load_settings(Path(str(settings)))
    synthesizer = CliCredentialsStackSynthesizer()
    EdgeStack(app, "KafkaEdge", deployment, synthesizer=synthesizer)
    ClientStack(app, "KafkaEdgeClient", deployment, synthesizer=synthesizer)
    app.synth()


if __name__ == "__main__":
    main()
