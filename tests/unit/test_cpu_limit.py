"""The CPU throttle's Docker call: the public session posts what docker-py's private
`_post_json` posted (same endpoint, same body), and an error answer is docker-py's own."""

from __future__ import annotations

import json
from types import SimpleNamespace

import docker
import docker.errors
import pytest
import requests

from core.dockerapi import Engine


class Recorder:
    def __init__(self, status: int = 200) -> None:
        self.calls: list[tuple[str, dict]] = []
        self.status = status

    def __call__(self, url: str, **kwargs):
        self.calls.append((url, kwargs))
        r = requests.Response()
        r.status_code = self.status
        r._content = b'{"message": "no such container"}' if self.status >= 400 else b"{}"
        r.url = url
        return r


def _engine(monkeypatch, rec: Recorder) -> tuple[Engine, docker.DockerClient]:
    async def sock() -> str:
        return "/run/fm-test.sock"

    e = Engine(SimpleNamespace(docker_socket=sock, name="host1"))
    cl = docker.DockerClient(base_url="unix:///run/fm-test.sock", version="1.41")
    e._client, e._socket = cl, "/run/fm-test.sock"
    monkeypatch.setattr(cl.api, "post", rec)
    return e, cl


async def test_set_cpu_limit_posts_what_the_private_call_posted(monkeypatch):
    rec = Recorder()
    e, cl = _engine(monkeypatch, rec)
    await e.set_cpu_limit("abc123", 250_000_000)
    # What the engine sent before, through docker-py's private helpers:
    cl.api._post_json(cl.api._url("/containers/{0}/update", "abc123"), data={"NanoCpus": 250_000_000})
    (url_now, kw_now), (url_before, kw_before) = rec.calls
    assert url_now == url_before
    assert url_now.endswith("/v1.41/containers/abc123/update")
    assert kw_now["json"] == json.loads(kw_before["data"]) == {"NanoCpus": 250_000_000}
    assert kw_now["timeout"] == kw_before["timeout"]


async def test_set_cpu_limit_raises_docker_pys_error(monkeypatch):
    e, _ = _engine(monkeypatch, Recorder(status=404))
    with pytest.raises(docker.errors.NotFound):
        await e.set_cpu_limit("gone", 0)
