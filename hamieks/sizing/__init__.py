"""Rightsizing: the cheapest node groups that still serve every replica (`rightsize`), the
system node group's cheapest type (`system_nodes`) and the stack file a proposal writes
(`stackfile`).

May import: top level, config, kube, scheduling, modelfit.
"""
