"""Building an API client: an explicit server URL, in-cluster credentials, or kubeconfig."""

from __future__ import annotations

from kubernetes import client, config
from kubernetes.config.config_exception import ConfigException

from minerguard.kube import errors

ApiClient = client.ApiClient


def api_client(
    server: str | None = None, *, kubeconfig: str | None = None, context: str | None = None
) -> client.ApiClient:
    """An API client; ``server`` is a plain URL (tests, proxies), else in-cluster, else kubeconfig.

    Raises:
        errors.ConfigError: no configuration could be loaded.
    """
    configuration = client.Configuration()
    if server:
        configuration.host = server.rstrip("/")
        return client.ApiClient(configuration)
    try:
        config.load_incluster_config(client_configuration=configuration)
    except ConfigException:
        try:
            config.load_kube_config(
                config_file=kubeconfig, context=context, client_configuration=configuration
            )
        except (ConfigException, OSError, TypeError) as err:
            raise errors.ConfigError(f"no in-cluster or kubeconfig credentials: {err}") from err
    return client.ApiClient(configuration)
