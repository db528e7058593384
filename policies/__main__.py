"""The hami-eks policy pack: `pulumi preview --policy-pack policies` from the project root.

The rules live in hami_eks_rules.py (importable without starting the analyzer server, which
PolicyPack does on construction), so tests/test_policy_pack.py can run them in-process.
"""

from hami_eks_rules import POLICIES
from pulumi_policy import EnforcementLevel, PolicyPack

PolicyPack(
    name="hami-eks-baseline",
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=POLICIES,
)
