"""Cluster credentials, as the official client finds them."""

from __future__ import annotations

import os

from kubernetes import client, config


def load_kube_configuration(kubeconfig: str | None, context: str | None) -> client.Configuration:
    """In-cluster credentials when running in a pod, else the kubeconfig (KUBECONFIG or
    ~/.kube/config, or the given path) and context."""
    configuration = client.Configuration()
    if os.environ.get("KUBERNETES_SERVICE_HOST") and kubeconfig is None and context is None:
        config.load_incluster_config(client_configuration=configuration)
    else:
        config.load_kube_config(
            config_file=kubeconfig, context=context, client_configuration=configuration
        )
    return configuration
