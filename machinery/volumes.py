"""Names shared by the components that handle PersistentVolumes: the resource types, the
annotations and labels Kubernetes' volume controllers and scheduler agree on, and the identity of
tugboat's local-path provisioner (whose claims and volumes the other controllers leave alone)."""

from __future__ import annotations

from machinery.kinds import lookup

PVCS, PVS, CLASSES = (
    lookup("persistentvolumeclaims"),
    lookup("persistentvolumes"),
    lookup("storageclasses"),
)

LOCAL_PATH_CLASS = "local-path"
LOCAL_PATH_PROVISIONER = "tugboat.io/local-path"

DEFAULT_CLASS = "storageclass.kubernetes.io/is-default-class"  # StorageClass annotation
WAIT_FOR_FIRST_CONSUMER = "WaitForFirstConsumer"  # StorageClass volumeBindingMode
SELECTED_NODE = "volume.kubernetes.io/selected-node"  # claim annotation, set by the scheduler
BIND_COMPLETED = "pv.kubernetes.io/bind-completed"  # claim annotation
BOUND_BY_CONTROLLER = "pv.kubernetes.io/bound-by-controller"  # claim and volume annotation
PROVISIONED_BY = "pv.kubernetes.io/provisioned-by"  # volume annotation
HOSTNAME_LABEL = "kubernetes.io/hostname"  # node label a volume's node affinity names
