"""Kata 12 against a real Redis: its solution's specs, with the broker and the results in a redis-server.

A learner's run keeps everything in memory (``memory://``, ``cache+memory://``). Here the same
specs run against a Redis server started for the check, on a free port of 127.0.0.1, through
the kata's ``KATA_REDIS_URL``: the settings' Redis address, the worker on Redis, the results
stored there. ``.ci/run`` installs redis-server from the OS packages; where it is missing, the
check is skipped with the reason (and fails in maintainer mode, ``KATAS_MAINTAINER=1``, as CI is).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from dojo.manifest import REPO_ROOT

SLUG = "k12_celery_handoff"
REDIS_URL_VAR = "KATA_REDIS_URL"  # what the kata's conftest.py reads
STARTUP = 10.0  # seconds redis-server gets to answer PING


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as connection:
            connection.sendall(b"PING\r\n")
            return connection.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@pytest.fixture(name="redis_url")
def _redis_url(tmp_path) -> Iterator[str]:
    """A redis-server of our own on a free loopback port, nothing saved to disk; stopped afterwards."""
    server = shutil.which("redis-server")
    if server is None:
        reason = (
            "redis-server is not installed, so kata 12 was not checked against Redis "
            "(Debian/Ubuntu: apt-get install redis-server; .ci/run installs it)"
        )
        if os.environ.get("KATAS_MAINTAINER") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    port = _free_port()
    command = [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    log = (tmp_path / "redis.log").open("w")
    process = subprocess.Popen([*command, "--dir", str(tmp_path)], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + STARTUP
        while not _answers_ping(port):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"redis-server did not start on port {port}: {(tmp_path / 'redis.log').read_text()}")
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def test_kata_12s_solution_passes_its_specs_with_the_broker_and_the_results_in_redis(redis_url):
    """Every spec of kata 12 passes against the solution on Redis, and the results really are in Redis."""
    import redis

    environment = {**os.environ, REDIS_URL_VAR: redis_url}
    command = [sys.executable, "-m", "pytest", f"katas/{SLUG}", "--impl=solutions", "-q", "-p", "no:cacheprovider"]
    command += ["-p", "randomly"]  # in any order, as the solution's other runs
    result = subprocess.run(
        command, cwd=REPO_ROOT, env=environment, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    summary = result.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"\d+ passed in .*", summary), result.stdout[-4000:]

    client = redis.Redis.from_url(redis_url)
    try:
        stored = client.keys("celery-task-meta-*")
    finally:
        client.close()
    assert len(stored) >= 10, f"the specs ran, but only {len(stored)} task results are in Redis: did they use it?"
