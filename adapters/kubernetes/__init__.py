from adapters.kubernetes.runner import KubernetesExecRunner, PodLocator, load_kube_configuration

__all__ = ["KubernetesExecRunner", "PodLocator", "load_kube_configuration"]
