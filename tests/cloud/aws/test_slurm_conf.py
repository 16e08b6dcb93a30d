"""The head node's slurm.conf and gres.conf (a real slurmctld runs them in test_power_slurm)."""

from __future__ import annotations

from sweepherd.cloud.aws import parse_cluster_config, render_gres_conf, render_slurm_conf

from .conftest import raw_config


def settings(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        if line and not line.startswith(("#", "NodeName=", "PartitionName=")):
            key, _, value = line.partition("=")
            out[key] = value
    return out


def test_power_saving_over_cloud_nodes() -> None:
    config = parse_cluster_config(raw_config())
    text = render_slurm_conf(config, head_addr="10.0.0.5")
    s = settings(text)
    assert s["SlurmctldHost"] == "demo-head(10.0.0.5)"
    assert s["ResumeProgram"] == "/etc/sweepherd/resume"
    assert s["SuspendProgram"] == "/etc/sweepherd/suspend"
    assert (s["ResumeTimeout"], s["SuspendTime"], s["SuspendTimeout"]) == ("60", "5", "5")
    assert "enable_configless" in s["SlurmctldParameters"]
    assert s["PrivateData"] == "cloud" and s["GresTypes"] == "gpu"
    nodes = [line for line in text.splitlines() if line.startswith("NodeName=")]
    assert nodes == [
        "NodeName=cpu-[1-2] CPUs=2 RealMemory=3686 Features=cpu,spot State=CLOUD",
        "NodeName=gpu-1 CPUs=4 RealMemory=14745 Gres=gpu:t4:1 Features=gpu,ondemand State=CLOUD",
    ]
    partitions = [line for line in text.splitlines() if line.startswith("PartitionName=")]
    assert partitions[0].startswith("PartitionName=cpu Nodes=cpu-[1-2] Default=YES")
    assert partitions[1].startswith("PartitionName=gpu Nodes=gpu-1 Default=NO")


def test_the_default_timers_fit_a_real_boot() -> None:
    raw = raw_config()
    del raw["slurm"]
    s = settings(render_slurm_conf(parse_cluster_config(raw)))
    assert (s["ResumeTimeout"], s["SuspendTime"]) == ("900", "300")
    assert s["SlurmctldHost"] == "demo-head(@HEAD_ADDR@)"  # filled in at boot


def test_overrides_replace_add_and_drop_settings() -> None:
    config = parse_cluster_config(raw_config())
    text = render_slurm_conf(
        config,
        overrides={"SlurmUser": "root", "SlurmctldPort": "7000", "MailProg": ""},
        node_params={"gpu": {"Port": "17300"}},
    )
    s = settings(text)
    assert s["SlurmUser"] == "root" and s["SlurmctldPort"] == "7000" and "MailProg" not in s
    assert "Gres=gpu:t4:1 Features=gpu,ondemand Port=17300 State=CLOUD" in text


def test_gres_conf_names_each_gpu_device() -> None:
    raw = raw_config(
        partitions=[
            {"name": "one", "instance_type": "g6.xlarge", "max_nodes": 3},
            {"name": "eight", "instance_type": "p5.48xlarge", "max_nodes": 1},
            {"name": "cpu", "instance_type": "c6i.large", "max_nodes": 1},
        ]
    )
    lines = render_gres_conf(parse_cluster_config(raw)).splitlines()[1:]
    assert lines == [
        "NodeName=one-[1-3] Name=gpu Type=l4 File=/dev/nvidia0",
        "NodeName=eight-1 Name=gpu Type=h100 File=/dev/nvidia[0-7]",
    ]
