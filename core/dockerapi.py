"""The Docker SDK, on a socket forwarded over SSH, always off the event loop.

The SDK is blocking (requests over a UNIX socket). Its bytes travel through asyncssh,
which runs on the event loop: a blocking call there would starve the very forwarding it
waits on. So every call, the client's construction included, goes through a thread.
"""

from __future__ import annotations

import asyncio
import urllib.parse
from collections.abc import Callable
from typing import Any, TypeVar

import docker
import docker.errors
import requests.exceptions

from core.ssh import HostConnection

T = TypeVar("T")
API_TIMEOUT_S = 30
# A call that finds the engine gone (the SSH connection cut, dockerd restarting) is tried
# again on a fresh connection after these pauses; calls that are not idempotent are not.
RETRY_PAUSES_S = (0.5, 1.0, 2.0, 4.0)


class EngineError(RuntimeError):
    pass


class Engine:
    """A host's Docker engine, reached through its SSH connection."""

    def __init__(self, host: HostConnection) -> None:
        self.host = host
        self._client: docker.DockerClient | None = None
        self._socket = ""

    async def client(self) -> docker.DockerClient:
        sock = await self.host.docker_socket()
        if self._client is None or sock != self._socket:
            self._socket = sock
            try:
                self._client = await asyncio.to_thread(
                    docker.DockerClient, base_url=f"unix://{sock}", timeout=API_TIMEOUT_S
                )
            except docker.errors.DockerException as e:
                raise EngineError(
                    f"{self.host.name}: the Docker engine at {self.host.spec.docker_socket} does not "
                    f"answer ({_first_line(e)}); check that dockerd runs and `docker_socket:` in the hosts file"
                ) from None
        return self._client

    async def call(self, fn: Callable[[docker.DockerClient], T], *, retry: bool = True) -> T:
        """Run `fn(client)` in a thread. When the engine cannot be reached, try again on a
        fresh connection (`retry`), then raise EngineError naming the host."""
        pauses = list(RETRY_PAUSES_S) if retry else []
        while True:
            c = await self.client()
            try:
                return await asyncio.to_thread(fn, c)
            except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as e:
                await self.host.check_alive()
                await self.close()
                if not pauses:
                    raise EngineError(
                        f"{self.host.name}: lost the Docker engine at {self.host.spec.docker_socket} "
                        f"({_first_line(e)}); check that dockerd runs there"
                    ) from None
                await asyncio.sleep(pauses.pop(0))

    async def info(self) -> dict[str, Any]:
        return await self.call(lambda c: c.info())

    async def version(self) -> dict[str, Any]:
        return await self.call(lambda c: c.version())

    async def inspect(self, container: str) -> dict[str, Any] | None:
        def get(c: docker.DockerClient) -> dict[str, Any] | None:
            try:
                return c.api.inspect_container(container)
            except docker.errors.NotFound:
                return None

        return await self.call(get)

    async def has_image(self, image: str) -> bool:
        def get(c: docker.DockerClient) -> bool:
            try:
                c.api.inspect_image(image)
                return True
            except docker.errors.ImageNotFound:
                return False

        return await self.call(get)

    async def create_raw(self, name: str, body: dict[str, Any]) -> str:
        """POST /containers/create with a body built from another engine's inspect."""

        def create(c: docker.DockerClient) -> str:
            return c.api.create_container_from_config(body, name=name)["Id"]

        return await self.call(create, retry=False)

    async def remove(self, container: str, force: bool = True) -> None:
        def rm(c: docker.DockerClient) -> None:
            try:
                c.api.remove_container(container, force=force)
            except docker.errors.NotFound:
                pass

        await self.call(rm)

    async def volume(self, name: str) -> dict[str, Any] | None:
        def get(c: docker.DockerClient) -> dict[str, Any] | None:
            try:
                return c.api.inspect_volume(name)
            except docker.errors.NotFound:
                return None

        return await self.call(get)

    async def create_volume(
        self,
        name: str,
        driver: str = "local",
        options: dict[str, str] | None = None,
        labels: dict[str, str] | None = None,
    ) -> None:
        await self.call(
            lambda c: c.api.create_volume(
                name=name, driver=driver, driver_opts=options or None, labels=labels or None
            )
        )

    async def remove_volume(self, name: str, force: bool = True) -> None:
        await self.call(lambda c: c.api.remove_volume(name, force=force))

    async def set_cpu_limit(self, container: str, nano_cpus: int) -> None:
        """`docker update --cpus`: the container's CPU limit in 10^-9 CPUs (0: none).

        docker-py's `update_container` takes no NanoCpus, so the request it would send is
        posted through the client's public HTTP session (`APIClient` is a requests
        `Session`), to the same endpoint with the same body; an error answer raises
        docker-py's own `APIError`, as `update_container` would."""

        def update(c: docker.DockerClient) -> None:
            api = c.api
            path = urllib.parse.quote(container, safe="/:")
            r = api.post(
                f"{api.base_url}/v{api.api_version}/containers/{path}/update",
                json={"NanoCpus": nano_cpus},
                timeout=api.timeout,
            )
            try:
                r.raise_for_status()
            except requests.exceptions.HTTPError as e:
                raise docker.errors.create_api_error_from_http_exception(e) from e

        await self.call(update)

    async def set_restart_policy(self, container: str, policy: dict[str, Any]) -> None:
        """`docker update --restart`: what dockerd does when the container's process ends."""

        def update(c: docker.DockerClient) -> None:
            try:
                c.api.update_container(container, restart_policy=policy)
            except docker.errors.APIError as e:
                raise EngineError(
                    f"{self.host.name}: could not set the restart policy of {container[:12]} "
                    f"({_first_line(e)})"
                ) from None

        await self.call(update)

    async def kill(self, container: str) -> None:
        """SIGKILL the container's process. A container that is not running (or gone) is
        fine; any other refusal is an EngineError: the caller must not assume it stopped."""

        def kill(c: docker.DockerClient) -> None:
            try:
                c.api.kill(container)
            except docker.errors.NotFound:
                return
            except docker.errors.APIError as e:
                if e.status_code == 409 and "not running" in str(e):
                    return
                raise EngineError(
                    f"{self.host.name}: dockerd refused to stop {container[:12]} ({_first_line(e)})"
                ) from None

        await self.call(kill)

    async def has_network(self, name: str) -> bool:
        return await self.call(lambda c: bool(c.api.networks(names=[name])))

    async def close(self) -> None:
        if self._client is not None:
            await asyncio.to_thread(self._client.close)
        self._client = None


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
