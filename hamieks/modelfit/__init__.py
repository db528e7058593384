"""Will each model load in its HAMi slice? Model facts (facts.py, recorded.json, hub.py) and
vLLM's memory budget (budget.py). Pure: no Pulumi, no network unless hub.lookup is allowed it.

May import: top level, config.
"""
