"""The Kubernetes side of a stack, as plain dicts: the model servers' objects (`workloads`), the
HAMi release values (`hami_values`), image references through the pull-through cache
(`registry_mirror`), the YAML files for kubectl users (`rendering`), and the monitoring stack
(`monitoring`: kube-prometheus-stack values, scrape and alerts; `monitoring_dashboards`; the
metric names in `monitoring_metrics`). The Pulumi components
create exactly these objects.

May import: top level, config.
"""
