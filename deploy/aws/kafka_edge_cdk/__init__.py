"""The kafka-edge CDK app's stacks (deploy/aws): see app.py and docs/deployment.md."""
