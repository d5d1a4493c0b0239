"""Which compose keys tug converts, which it knows but cannot honour (a warning naming the
key), and — by elimination — which are not compose keys at all (an error: likely a typo).

Key lists follow the Compose Specification (and the v1/v2/v3 file formats it merged).
"""

from __future__ import annotations

TOP_LEVEL = frozenset({"version", "services", "volumes", "networks", "name"})
TOP_LEVEL_UNSUPPORTED = frozenset({"configs", "secrets", "include"})

SERVICE = frozenset(
    {
        "image", "build", "command", "entrypoint", "environment", "env_file", "ports",
        "expose", "volumes", "depends_on", "links", "networks", "deploy", "restart",
        "healthcheck", "scale", "mem_limit", "mem_reservation", "cpus", "working_dir",
        "user", "labels", "stdin_open", "tty", "privileged", "stop_grace_period",
        "pull_policy", "hostname", "container_name",
    }
)  # fmt: skip
SERVICE_UNSUPPORTED = frozenset(
    {
        "annotations", "attach", "blkio_config", "cap_add", "cap_drop", "cgroup",
        "cgroup_parent", "configs", "cpu_count", "cpu_percent", "cpu_period", "cpu_quota",
        "cpu_rt_period", "cpu_rt_runtime", "cpu_shares", "cpuset", "credential_spec",
        "develop", "device_cgroup_rules", "devices", "dns", "dns_opt", "dns_search",
        "domainname", "extends", "external_links", "extra_hosts", "group_add", "init", "ipc",
        "isolation", "log_driver", "log_opt", "logging", "mac_address", "mem_swappiness",
        "memswap_limit", "net", "network_mode", "oom_kill_disable", "oom_score_adj", "pid",
        "pids_limit", "platform", "profiles", "read_only", "runtime", "secrets",
        "security_opt", "shm_size", "stop_signal", "storage_opt", "sysctls", "tmpfs",
        "ulimits", "userns_mode", "uts", "volume_driver", "volumes_from",
    }
)  # fmt: skip
DEPLOY = frozenset({"replicas", "resources", "restart_policy", "labels"})
DEPLOY_UNSUPPORTED = frozenset(
    {"mode", "placement", "update_config", "rollback_config", "endpoint_mode"}
)
BUILD = frozenset({"context", "dockerfile", "args"})
BUILD_UNSUPPORTED = frozenset(
    {"cache_from", "cache_to", "extra_hosts", "isolation", "labels", "network", "shm_size",
     "target", "secrets", "ssh", "platforms", "tags", "no_cache", "pull", "additional_contexts",
     "dockerfile_inline", "privileged", "ulimits"}
)  # fmt: skip
HEALTHCHECK = frozenset({"test", "interval", "timeout", "retries", "start_period", "disable"})
HEALTHCHECK_UNSUPPORTED = frozenset({"start_interval"})
RESTART_POLICY = frozenset({"condition"})
RESTART_POLICY_UNSUPPORTED = frozenset({"delay", "max_attempts", "window"})
RESOURCES = frozenset({"limits", "reservations"})
LIMITS = frozenset({"cpus", "memory"})
LIMITS_UNSUPPORTED = frozenset({"pids"})
RESERVATIONS = frozenset({"cpus", "memory"})
RESERVATIONS_UNSUPPORTED = frozenset({"devices", "generic_resources"})
# long-form ``ports``; host_ip and mode get their own warnings (see convert._long_port)
PORT = frozenset({"target", "published", "protocol", "name", "app_protocol", "host_ip", "mode"})
# long-form ``volumes`` of a service and the options of each type
MOUNT = frozenset({"type", "source", "target", "read_only", "volume", "bind", "tmpfs"})
MOUNT_UNSUPPORTED = frozenset({"consistency", "image"})
MOUNT_VOLUME = frozenset({"subpath"})
MOUNT_VOLUME_UNSUPPORTED = frozenset({"nocopy"})
MOUNT_BIND: frozenset[str] = frozenset()
MOUNT_BIND_UNSUPPORTED = frozenset({"propagation", "create_host_path", "selinux", "recursive"})
MOUNT_TMPFS = frozenset({"size"})
MOUNT_TMPFS_UNSUPPORTED = frozenset({"mode"})
# top-level ``volumes.<name>``
VOLUME = frozenset({"external", "name", "labels"})
VOLUME_UNSUPPORTED = frozenset({"driver", "driver_opts"})
DEPENDS_ON = frozenset({"condition", "required"})
DEPENDS_ON_UNSUPPORTED = frozenset({"restart"})
# ``services.<s>.networks.<n>``
SERVICE_NETWORK = frozenset({"aliases"})
SERVICE_NETWORK_UNSUPPORTED = frozenset(
    {"ipv4_address", "ipv6_address", "link_local_ips", "priority", "gw_priority",
     "mac_address", "driver_opts", "interface_name"}
)  # fmt: skip
ENV_FILE = frozenset({"path", "required"})
ENV_FILE_UNSUPPORTED = frozenset({"format"})
