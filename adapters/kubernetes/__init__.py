from adapters.kubernetes.config import load_kube_configuration
from adapters.kubernetes.pods import PodLocator
from adapters.kubernetes.runner import KubernetesExecRunner

__all__ = ["KubernetesExecRunner", "PodLocator", "load_kube_configuration"]
