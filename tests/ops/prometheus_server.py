"""A throwaway Prometheus (Debian's binary) scraping given targets, with the rules loaded,
and a small client of its HTTP API."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from tests.ops.promql import RULE_FILES
from tests.ops.sasl_broker import free_port


class PrometheusApi:
    def __init__(self, url: str) -> None:
        self.url = url

    async def query(self, expr: str) -> dict[str, Any]:
        """The API's answer to an instant query (status, data or error)."""
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{self.url}/api/v1/query", params={"query": expr}) as resp:
                answer: dict[str, Any] = await resp.json()
                return answer

    async def series(self, expr: str) -> list[dict[str, Any]]:
        answer = await self.query(expr)
        if answer["status"] != "success":
            raise AssertionError(f"{expr!r}: {answer.get('error')}")
        result: list[dict[str, Any]] = answer["data"]["result"]
        return result


@contextlib.contextmanager
def prometheus(folder: Path, targets: dict[str, str], interval: str = "1s") -> Iterator[str]:
    """Run Prometheus scraping `targets` (job name -> host:port); yields its address."""
    binary = shutil.which("prometheus")
    if binary is None:
        raise RuntimeError("prometheus is missing: run deploy/ci/install-prometheus.sh (as root)")
    config = {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "rule_files": [str(p) for p in RULE_FILES],
        "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": [target]}]}
            for job, target in targets.items()
        ],
    }
    (folder / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    log = folder / "prometheus.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [binary, f"--config.file={folder / 'prometheus.yml'}",
             f"--storage.tsdb.path={folder / 'data'}", f"--web.listen-address=127.0.0.1:{port}",
             "--log.level=warn"],
            stdout=out, stderr=out,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while not _ready(url):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"prometheus did not start:\n{log.read_text()[-2000:]}")
            time.sleep(0.2)  # polling /-/ready
        yield url
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _ready(url: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(f"{url}/-/ready", timeout=1) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False
