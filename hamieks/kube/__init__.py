"""The Kubernetes side of a stack, as plain dicts: the model servers' objects (`workloads`), the
HAMi release values (`hami_values`), image references through the pull-through cache
(`registry_mirror`) and the YAML files for kubectl users (`rendering`). The Pulumi components
create exactly these objects.

May import: top level, config.
"""
