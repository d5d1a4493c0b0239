"""The Deployment controller, split by concern like Kubernetes' ``pkg/controller/deployment``.

Pure decisions: :mod:`hashing` (template identity), :mod:`rolling` and :mod:`recreate`
(rollout steps), :mod:`scaling` (resizing, proportional scaling), :mod:`revisions` (revision
numbers, annotations, history cleanup), :mod:`progress` (status and conditions). The applier
that reads caches and writes plans is :mod:`controller`.
"""

from controllers.deployment.controller import DeploymentController

__all__ = ["DeploymentController"]
