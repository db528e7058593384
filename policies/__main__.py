"""The hami-eks policy pack: `pulumi preview --policy-pack policies` from the project root.

The rules live in hami_eks_rules.py (nodes, secrets, logs, images, GPU pods through HAMi) and
hardening_rules.py (disks, API endpoint, IAM, Pod Security, privileged pods, network isolation,
HAMi's webhook failing closed), importable without starting the analyzer server, which PolicyPack
does on construction.
"""

import hami_eks_rules
import hardening_rules
from pulumi_policy import EnforcementLevel, PolicyPack

PolicyPack(
    name="hami-eks-baseline",
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=[*hami_eks_rules.POLICIES, *hardening_rules.POLICIES],
)
