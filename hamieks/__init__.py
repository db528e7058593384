"""hami-eks domain logic: what a stack is, where HAMi puts it, what it costs, and the CLI.

Nothing in this package imports Pulumi, so the CLI and the tests can use it without a cloud,
a cluster or the Pulumi CLI (`components/` and `__main__.py` are the Pulumi program).

The layers, lowest first; a layer imports only layers below it (tests/test_layout.py holds each
sub-package to the `May import:` line of its docstring, and finds no import circle):

- top level: facts every layer shares: `errors`, `versions` (pins), `hami` (HAMi's interface
  and rules), `catalog` (instance types and GPUs), `check` (a live check's record), `terminal`
  (printing), and `cost` (a stack's $/hour, which reads the settings); `cli` and `__main__`
  dispatch to `commands`.
- `config`: stack files and the settings they hold, parsed and checked.
- `kube`: the Kubernetes objects and Helm values built from the settings.
- `scheduling`: hami-scheduler and kube-scheduler simulated: the plan.
- `modelfit`: will each model load in its slice (vLLM's memory budget).
- `sizing`: rightsize, the cheapest node groups that still serve the plan.
- `report`: the plan for people and CI (text, SVG, warnings, stack outputs).
- `aws`, `verify`: the account before `up` and the cluster after it (boto3, kubernetes).
- `commands`: one module per CLI command.
"""

__version__ = "0.2.0"
