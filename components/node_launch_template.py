"""The launch template every hami-eks node group starts its instances from."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

# AL2023 EKS AMIs boot from /dev/xvda; a mapping for that device replaces the AMI's root volume.
ROOT_DEVICE = "/dev/xvda"
# IMDSv2 only, and one network hop: the PUT that fetches a session token is answered only to the
# node itself. A pod's packets cross the pod's veth first (hop 2), so no pod - not even one that a
# model's remote code takes over - can read the node role's credentials. pulumi-eks's own
# `enableIMDSv2` sets hop limit 2, which pods can cross. hostNetwork pods (aws-node, kube-proxy,
# the EKS Pod Identity agent) share the node's stack and still reach IMDS.
METADATA_HOP_LIMIT = 1


def hardened_launch_template(name: str, disk_size_gib: int, tags: dict[str, str],
                             opts: pulumi.ResourceOptions) -> aws.ec2.LaunchTemplate:
    """A launch template with IMDSv2 required at hop limit 1 and an encrypted gp3 root volume.

    It names no AMI, instance type, key pair or security group: EKS fills in the AMI type's image
    and bootstrap user data and the cluster security group, and there is no SSH key to leak
    (operators reach a node with `kubectl debug node/<name>`). Encryption uses the account's EBS
    key (aws/ebs), which the Auto Scaling service-linked role can use without a key policy of ours.
    """
    return aws.ec2.LaunchTemplate(
        f"{name}-lt",
        description=f"hami-eks node group {name}: IMDSv2 hop 1, encrypted gp3 root volume, no SSH",
        block_device_mappings=[aws.ec2.LaunchTemplateBlockDeviceMappingArgs(
            device_name=ROOT_DEVICE,
            ebs=aws.ec2.LaunchTemplateBlockDeviceMappingEbsArgs(
                volume_size=disk_size_gib, volume_type="gp3", encrypted="true", delete_on_termination="true"),
        )],
        metadata_options=aws.ec2.LaunchTemplateMetadataOptionsArgs(
            http_endpoint="enabled", http_tokens="required", http_put_response_hop_limit=METADATA_HOP_LIMIT,
            instance_metadata_tags="disabled"),
        tag_specifications=[aws.ec2.LaunchTemplateTagSpecificationArgs(resource_type=kind, tags=tags)
                            for kind in ("instance", "volume")],
        # Node groups follow the template's latest version; a change rolls the nodes.
        update_default_version=True,
        tags=tags,
        opts=opts,
    )


def node_group_template(template: aws.ec2.LaunchTemplate) -> aws.eks.NodeGroupLaunchTemplateArgs:
    return aws.eks.NodeGroupLaunchTemplateArgs(id=template.id, version=template.latest_version.apply(str))
