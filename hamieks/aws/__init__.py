"""The AWS side of hami-eks, with boto3 and no Pulumi: account preflight, live prices, leak audit.

Every AWS client comes from `session.Aws`, so credentials, region, endpoint and retry behaviour are
decided in one place (see session.py).

May import: top level, config.
"""
