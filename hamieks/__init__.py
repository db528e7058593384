"""hami-eks domain logic: settings, GPU catalog, Kubernetes object builders, placement.

Nothing in this package imports Pulumi, so the CLI and the tests can use it without a cloud,
a cluster or the Pulumi CLI.
"""

__version__ = "0.2.0"
