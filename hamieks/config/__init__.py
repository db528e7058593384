"""The stack's configuration: stack files read as the Pulumi CLI reads them, and the typed,
validated settings they hold.

- `stackfiles`: Pulumi.yaml and Pulumi.<stack>.yaml, strictly parsed.
- `values`: typed config values and the collected problems, each naming its key.
- `settings`: the one `Settings` model; `node_groups`, `services`, `vllm_args`, `zones`,
  `network`, `access_entries`: the parts it is made of.
- `quantity`: Kubernetes resource quantities; `conventions`: the labels and taint on our nodes.

May import: top level.
"""
