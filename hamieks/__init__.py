"""hami-eks domain logic: settings, GPU catalog, Kubernetes object builders, placement.

Nothing in this package imports Pulumi, so the CLI and the tests can use it without a cloud,
a cluster or the Pulumi CLI.
"""
