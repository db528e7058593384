"""VPC for an EKS cluster: public subnets for load balancers and NAT, private ones for nodes."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from hamieks.config.network import ZoneSubnets


@dataclass(frozen=True)
class NetworkArgs:
    cidr: str
    subnets: tuple[ZoneSubnets, ...]  # one public and one private subnet per zone
    nat_gateway_per_az: bool
    tags: dict[str, str]


class Network(pulumi.ComponentResource):
    """Creates: a VPC with DNS support and hostnames (EKS node registration and private endpoint
    resolution need both), an internet gateway, per zone a public and a private subnet with
    the EKS load-balancer role tags, one NAT gateway (or one per zone) with its Elastic IP,
    a public route table and one private route table per zone."""

    vpc_id: pulumi.Output[str]
    public_subnet_ids: pulumi.Output[list[str]]
    private_subnet_ids: pulumi.Output[list[str]]

    def __init__(self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("hami-eks:network:Network", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        def tags(role: str, **extra: str) -> dict[str, str]:
            return {**args.tags, "Name": f"{name}-{role}", **extra}

        vpc = aws.ec2.Vpc(f"{name}-vpc", cidr_block=args.cidr, enable_dns_support=True,
                          enable_dns_hostnames=True, tags=tags("vpc"), opts=child)
        igw = aws.ec2.InternetGateway(f"{name}-igw", vpc_id=vpc.id, tags=tags("igw"), opts=child)
        public_rt = aws.ec2.RouteTable(
            f"{name}-public-rt", vpc_id=vpc.id,
            routes=[aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", gateway_id=igw.id)],
            tags=tags("public-rt"), opts=child)

        public, private, nats = [], [], []
        for subnet in args.subnets:
            zone = subnet.zone
            # Subnets are keyed by zone name, never by list position, so changing the zone
            # count later does not renumber (and replace) the existing ones.
            pub = aws.ec2.Subnet(
                f"{name}-public-{zone}", vpc_id=vpc.id, cidr_block=subnet.public_cidr, availability_zone=zone,
                map_public_ip_on_launch=True,
                tags=tags(f"public-{zone}", **{"kubernetes.io/role/elb": "1"}), opts=child)
            aws.ec2.RouteTableAssociation(f"{name}-public-{zone}", subnet_id=pub.id,
                                          route_table_id=public_rt.id, opts=child)
            priv = aws.ec2.Subnet(
                f"{name}-private-{zone}", vpc_id=vpc.id, cidr_block=subnet.private_cidr, availability_zone=zone,
                tags=tags(f"private-{zone}", **{"kubernetes.io/role/internal-elb": "1"}), opts=child)
            if args.nat_gateway_per_az or not nats:
                eip = aws.ec2.Eip(f"{name}-nat-{zone}", domain="vpc", tags=tags(f"nat-{zone}"), opts=child)
                nats.append(aws.ec2.NatGateway(
                    f"{name}-nat-{zone}", subnet_id=pub.id, allocation_id=eip.id, tags=tags(f"nat-{zone}"),
                    opts=pulumi.ResourceOptions(parent=self, depends_on=[igw])))
            private_rt = aws.ec2.RouteTable(
                f"{name}-private-rt-{zone}", vpc_id=vpc.id,
                routes=[aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", nat_gateway_id=nats[-1].id)],
                tags=tags(f"private-rt-{zone}"), opts=child)
            aws.ec2.RouteTableAssociation(f"{name}-private-{zone}", subnet_id=priv.id,
                                          route_table_id=private_rt.id, opts=child)
            public.append(pub)
            private.append(priv)

        self.vpc_id = vpc.id
        self.public_subnet_ids = pulumi.Output.all(*[s.id for s in public])
        self.private_subnet_ids = pulumi.Output.all(*[s.id for s in private])
        self.register_outputs({
            "vpcId": self.vpc_id,
            "publicSubnetIds": self.public_subnet_ids,
            "privateSubnetIds": self.private_subnet_ids,
        })
