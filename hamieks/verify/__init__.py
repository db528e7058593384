"""Prove a deploy worked: checks of a live cluster against the stack's settings and plan.

- `annotations`: HAMi's node and pod annotations, parsed (both node formats).
- `checks`: the checks, pure functions over API objects (plain dicts, as `kubectl get -o json`
  shows them) that return `Check` records.
- `cluster`: the thin reading layer on the official `kubernetes` client (lists, exec, service
  proxy), the only module here that does I/O.
- `scrapes`: whether Prometheus scrapes HAMi and every model server (hami-eks:monitoring).
- `runner`: one round of every check against a cluster, and the `--wait` polling loop.

No Pulumi import: CI runs this after `pulumi up` with the kubeconfig the stack exports.

May import: top level, config, kube, scheduling.
"""
