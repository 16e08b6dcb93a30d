"""The CloudFormation template of a cluster, built in Python as a dict and written as JSON.

JSON, not YAML: YAML's short forms (``!GetAtt [A, B]``) crash moto and are easy to get wrong.

What the template holds, and why it differs from the seed's:
- one security group: SSH only from ``ssh_cidr``; all traffic between members of the group;
- IAM roles with least privilege: the head node may launch instances only from the cluster's
  launch templates and only tagged with the cluster, terminate only instances tagged with the
  cluster, pass only the compute role, read its own stack and write its munge-key parameter;
  compute nodes may read that one parameter and nothing else;
- one launch template per partition (image, type, role, group, IMDSv2, encrypted disk, tags);
- the shared filesystem: an encrypted EBS volume on the head node, exported over NFS to the VPC;
- the head node, whose boot script installs Slurm from Ubuntu's packages and makes a fresh
  munge key (see :mod:`._userdata`).
"""

from __future__ import annotations

import json
import re
from typing import Any

from sweepherd.cloud.aws._config import (
    CLUSTER_TAG,
    ClusterConfig,
    PartitionConfig,
)
from sweepherd.cloud.aws._userdata import head_node_script

Json = dict[str, Any]

_SSM_IMAGE_TYPE = "AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>"


def build_template(config: ClusterConfig) -> Json:
    """The CloudFormation template for ``config``, as a JSON-ready dict."""
    resources: Json = {}
    resources.update(_security_group(config))
    resources.update(_compute_role(config))
    resources.update(_launch_templates(config))
    resources.update(_head_role(config))
    resources.update(_shared_volume(config))
    resources.update(_head_node(config))
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": (
            f"sweepherd burstable Slurm cluster {config.name}: a head node running slurmctld "
            "and NFS, and partitions of cloud nodes Slurm starts and stops on demand."
        ),
        "Parameters": _parameters(config),
        "Resources": resources,
        "Outputs": _outputs(config),
    }


def template_json(config: ClusterConfig, *, compact: bool = False) -> str:
    """The template as JSON text: indented to be read, or ``compact`` to be sent (CloudFormation
    takes at most 51,200 bytes inline, and the indentation alone is a third of that)."""
    if compact:
        return json.dumps(build_template(config), separators=(",", ":"))
    return json.dumps(build_template(config), indent=1, sort_keys=False) + "\n"


def launch_template_output(partition: PartitionConfig) -> str:
    """The name of the stack output holding ``partition``'s launch template id."""
    return f"LaunchTemplate{_logical(partition.name)}"


# --------------------------------------------------------------------------------------------


def _logical(name: str) -> str:
    """A CloudFormation logical-id fragment from a partition name (alphanumeric, capitalised)."""
    return re.sub(r"[^A-Za-z0-9]", "", name).capitalize()


def _image_parameter(partition: PartitionConfig) -> str:
    return f"ImageId{_logical(partition.name)}"


def _tags(config: ClusterConfig, name: str) -> list[Json]:
    tags = {"Name": name, **config.all_tags}
    return [{"Key": k, "Value": v} for k, v in tags.items()]


def _arn(service: str, resource: str) -> Json:
    return {
        "Fn::Sub": f"arn:${{AWS::Partition}}:{service}:${{AWS::Region}}:${{AWS::AccountId}}:"
        + resource
    }


def _parameters(config: ClusterConfig) -> Json:
    def image(value: str, description: str) -> Json:
        kind = _SSM_IMAGE_TYPE if value.startswith("/") else "AWS::EC2::Image::Id"
        return {"Type": kind, "Default": value, "Description": description}

    params: Json = {
        "VpcId": {"Type": "AWS::EC2::VPC::Id", "Description": "The VPC of the cluster."},
        "VpcCidr": {
            "Type": "String",
            "Description": "The VPC's CIDR: the shared filesystem is exported to it only.",
            "AllowedPattern": r"^(\d{1,3}\.){3}\d{1,3}/\d{1,2}$",
        },
        "HeadSubnetId": {
            "Type": "AWS::EC2::Subnet::Id",
            "Description": "A public subnet for the head node.",
        },
        "ComputeSubnetIds": {
            "Type": "List<AWS::EC2::Subnet::Id>",
            "Description": "The subnets compute nodes are started in (several AZs widen Spot).",
        },
        "HeadAvailabilityZone": {
            "Type": "AWS::EC2::AvailabilityZone::Name",
            "Description": "The head subnet's availability zone (for the shared volume).",
        },
        "KeyName": {
            "Type": "AWS::EC2::KeyPair::KeyName",
            "Default": config.key_name,
            "Description": "The EC2 key pair for SSH to the head node.",
        },
        "SshCidr": {
            "Type": "String",
            "Default": config.ssh_cidr,
            "Description": "The only network SSH to the head node is allowed from.",
        },
        "HeadImageId": image(config.head_image, "The head node's image (Ubuntu 24.04)."),
    }
    for partition in config.partitions:
        params[_image_parameter(partition)] = image(
            partition.image, f"The image of partition {partition.name}'s nodes."
        )
    return params


def _security_group(config: ClusterConfig) -> Json:
    is_v6 = ":" in config.ssh_cidr
    ssh_rule: Json = {
        "IpProtocol": "tcp",
        "FromPort": 22,
        "ToPort": 22,
        "Description": "SSH to the head node from the allowed network only",
        ("CidrIpv6" if is_v6 else "CidrIp"): {"Ref": "SshCidr"},
    }
    return {
        "ClusterSecurityGroup": {
            "Type": "AWS::EC2::SecurityGroup",
            "Properties": {
                "GroupDescription": f"sweepherd cluster {config.name}: SSH from the allowed "
                "network, all traffic between the cluster instances",
                "VpcId": {"Ref": "VpcId"},
                "SecurityGroupIngress": [ssh_rule],
                "Tags": _tags(config, f"{config.name}-cluster"),
            },
        },
        "ClusterSecurityGroupIntra": {
            "Type": "AWS::EC2::SecurityGroupIngress",
            "Properties": {
                "GroupId": {"Fn::GetAtt": ["ClusterSecurityGroup", "GroupId"]},
                "SourceSecurityGroupId": {"Fn::GetAtt": ["ClusterSecurityGroup", "GroupId"]},
                "IpProtocol": "-1",
                "Description": "Slurm, munge and NFS between the cluster's instances",
            },
        },
    }


def _assume_ec2() -> Json:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "ec2.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }


def _munge_parameter_arn(config: ClusterConfig) -> Json:
    return _arn("ssm", f"parameter{config.munge_key_parameter}")


def _compute_role(config: ClusterConfig) -> Json:
    return {
        "ComputeRole": {
            "Type": "AWS::IAM::Role",
            "Properties": {
                "Description": f"sweepherd {config.name} compute nodes: read the munge key only",
                "AssumeRolePolicyDocument": _assume_ec2(),
                "Policies": [
                    {
                        "PolicyName": "read-munge-key",
                        "PolicyDocument": {
                            "Version": "2012-10-17",
                            "Statement": [
                                {
                                    "Sid": "ReadMungeKey",
                                    "Effect": "Allow",
                                    "Action": "ssm:GetParameter",
                                    "Resource": _munge_parameter_arn(config),
                                }
                            ],
                        },
                    }
                ],
                "Tags": _tags(config, f"{config.name}-compute"),
            },
        },
        "ComputeInstanceProfile": {
            "Type": "AWS::IAM::InstanceProfile",
            "Properties": {"Roles": [{"Ref": "ComputeRole"}]},
        },
    }


def _launch_templates(config: ClusterConfig) -> Json:
    out: Json = {}
    for partition in config.partitions:
        tags = _tags(config, f"{config.name}-{partition.name}")
        out[launch_template_output(partition)] = {
            "Type": "AWS::EC2::LaunchTemplate",
            "Properties": {
                "LaunchTemplateData": {
                    "ImageId": {"Ref": _image_parameter(partition)},
                    "InstanceType": partition.instance_type,
                    "KeyName": {"Ref": "KeyName"},
                    "IamInstanceProfile": {
                        "Arn": {"Fn::GetAtt": ["ComputeInstanceProfile", "Arn"]}
                    },
                    "SecurityGroupIds": [{"Fn::GetAtt": ["ClusterSecurityGroup", "GroupId"]}],
                    # IMDSv2 only, one hop: a container on the node gets no token.
                    "MetadataOptions": {
                        "HttpTokens": "required",
                        "HttpEndpoint": "enabled",
                        "HttpPutResponseHopLimit": 1,
                    },
                    "BlockDeviceMappings": [_root_volume(config)],
                    "TagSpecifications": [
                        {"ResourceType": "instance", "Tags": tags},
                        {"ResourceType": "volume", "Tags": tags},
                    ],
                },
                "TagSpecifications": [{"ResourceType": "launch-template", "Tags": tags}],
            },
        }
    return out


def _root_volume(config: ClusterConfig) -> Json:
    return {
        "DeviceName": "/dev/sda1",
        "Ebs": {
            "VolumeSize": config.root_volume_gb,
            "VolumeType": "gp3",
            "Encrypted": True,
            "DeleteOnTermination": True,
        },
    }


def _head_role(config: ClusterConfig) -> Json:
    launch_template_arns = [
        {
            "Fn::Sub": [
                "arn:${AWS::Partition}:ec2:${AWS::Region}:${AWS::AccountId}:launch-template/${Id}",
                {"Id": {"Ref": launch_template_output(p)}},
            ]
        }
        for p in config.partitions
    ]
    cluster = config.name
    statements: list[Json] = [
        {
            "Sid": "LaunchFromClusterTemplates",
            "Effect": "Allow",
            "Action": "ec2:RunInstances",
            "Resource": "*",
            "Condition": {"ArnLike": {"ec2:LaunchTemplate": launch_template_arns}},
        },
        {
            "Sid": "OnlyTaggedInstances",
            "Effect": "Deny",
            "Action": "ec2:RunInstances",
            "Resource": _arn("ec2", "instance/*"),
            "Condition": {"StringNotEquals": {f"aws:RequestTag/{CLUSTER_TAG}": cluster}},
        },
        {
            "Sid": "TagAtLaunchOnly",
            "Effect": "Allow",
            "Action": "ec2:CreateTags",
            "Resource": "*",
            "Condition": {"StringEquals": {"ec2:CreateAction": "RunInstances"}},
        },
        {
            "Sid": "TerminateClusterInstances",
            "Effect": "Allow",
            "Action": "ec2:TerminateInstances",
            "Resource": _arn("ec2", "instance/*"),
            "Condition": {"StringEquals": {f"aws:ResourceTag/{CLUSTER_TAG}": cluster}},
        },
        {
            "Sid": "Describe",
            "Effect": "Allow",
            "Action": ["ec2:DescribeInstances", "ec2:DescribeInstanceStatus"],
            "Resource": "*",
        },
        {
            "Sid": "PassComputeRoleOnly",
            "Effect": "Allow",
            "Action": "iam:PassRole",
            "Resource": {"Fn::GetAtt": ["ComputeRole", "Arn"]},
            "Condition": {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}},
        },
        {
            "Sid": "SpotServiceLinkedRole",
            "Effect": "Allow",
            "Action": "iam:CreateServiceLinkedRole",
            "Resource": {
                "Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/aws-service-role/"
                "spot.amazonaws.com/AWSServiceRoleForEC2Spot"
            },
            "Condition": {"StringEquals": {"iam:AWSServiceName": "spot.amazonaws.com"}},
        },
        {
            "Sid": "OwnStack",
            "Effect": "Allow",
            "Action": ["cloudformation:DescribeStacks", "cloudformation:SignalResource"],
            "Resource": {"Ref": "AWS::StackId"},
        },
        {
            "Sid": "WriteMungeKey",
            "Effect": "Allow",
            "Action": ["ssm:PutParameter", "ssm:GetParameter", "ssm:AddTagsToResource"],
            "Resource": _munge_parameter_arn(config),
        },
    ]
    return {
        "HeadNodeRole": {
            "Type": "AWS::IAM::Role",
            "Properties": {
                "Description": f"sweepherd {cluster} head node: start and stop its own nodes",
                "AssumeRolePolicyDocument": _assume_ec2(),
                "Policies": [
                    {
                        "PolicyName": "power-save-cluster-nodes",
                        "PolicyDocument": {"Version": "2012-10-17", "Statement": statements},
                    }
                ],
                "Tags": _tags(config, f"{cluster}-head"),
            },
        },
        "HeadNodeInstanceProfile": {
            "Type": "AWS::IAM::InstanceProfile",
            "Properties": {"Roles": [{"Ref": "HeadNodeRole"}]},
        },
    }


def _shared_volume(config: ClusterConfig) -> Json:
    policy = config.shared_fs_deletion
    return {
        "SharedVolume": {
            "Type": "AWS::EC2::Volume",
            "DeletionPolicy": policy,
            "UpdateReplacePolicy": policy,
            "Properties": {
                "AvailabilityZone": {"Ref": "HeadAvailabilityZone"},
                "Size": config.shared_fs_size_gb,
                "VolumeType": "gp3",
                "Encrypted": True,
                "Tags": _tags(config, f"{config.name}-shared"),
            },
        },
    }


def _head_node(config: ClusterConfig) -> Json:
    return {
        "HeadNode": {
            "Type": "AWS::EC2::Instance",
            # The boot script signals when Slurm is up (or failed): deploy waits for it.
            "CreationPolicy": {"ResourceSignal": {"Count": 1, "Timeout": "PT40M"}},
            "Properties": {
                "ImageId": {"Ref": "HeadImageId"},
                "InstanceType": config.head_instance_type,
                "KeyName": {"Ref": "KeyName"},
                "IamInstanceProfile": {"Ref": "HeadNodeInstanceProfile"},
                "NetworkInterfaces": [
                    {
                        "DeviceIndex": "0",
                        "AssociatePublicIpAddress": True,
                        "SubnetId": {"Ref": "HeadSubnetId"},
                        "GroupSet": [{"Fn::GetAtt": ["ClusterSecurityGroup", "GroupId"]}],
                    }
                ],
                "BlockDeviceMappings": [_root_volume(config)],
                # Attached as the instance is made: its boot script waits for this device
                # before it signals, so an AWS::EC2::VolumeAttachment (which waits for the
                # instance to be CREATE_COMPLETE, i.e. to have signalled) would never come.
                "Volumes": [{"Device": "/dev/sdf", "VolumeId": {"Ref": "SharedVolume"}}],
                "UserData": {"Fn::Base64": {"Fn::Join": ["", head_node_script(config)]}},
                "Tags": _tags(config, config.head_hostname),
            },
        }
    }


def _outputs(config: ClusterConfig) -> Json:
    outputs: Json = {
        "ClusterName": {"Value": config.name, "Description": "The cluster's name (its tag)."},
        "HeadNodeInstanceId": {"Value": {"Ref": "HeadNode"}},
        "HeadNodePublicIp": {
            "Value": {"Fn::GetAtt": ["HeadNode", "PublicIp"]},
            "Description": "SSH here: ssh -i KEY ubuntu@ADDRESS",
        },
        "HeadNodePrivateIp": {"Value": {"Fn::GetAtt": ["HeadNode", "PrivateIp"]}},
        "SecurityGroupId": {"Value": {"Fn::GetAtt": ["ClusterSecurityGroup", "GroupId"]}},
        "ComputeSubnetIds": {"Value": {"Fn::Join": [",", {"Ref": "ComputeSubnetIds"}]}},
        "SharedVolumeId": {"Value": {"Ref": "SharedVolume"}},
        "MungeKeyParameter": {"Value": config.munge_key_parameter},
    }
    for partition in config.partitions:
        outputs[launch_template_output(partition)] = {
            "Value": {"Ref": launch_template_output(partition)},
            "Description": f"The launch template of partition {partition.name}.",
        }
    return outputs
