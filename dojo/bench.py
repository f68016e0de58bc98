"""How long a learner waits: ``uv run python -m dojo.bench [--runs N]``.

Everything runs in a temporary copy of this working tree with the stubs as shipped (so
kata 1 is red and the learner's own tree and progress are never touched). Prints the
median (and spread) of ``--runs`` runs, 5 by default:

- ``kata`` (the bare command) from process start to its verdict on a red kata;
- the floor it is measured against: pytest on one trivial test importing fastapi and
  httpx, every installed plugin loaded;
- plain ``pytest katas/<kata>`` on the same kata, for comparison;
- ``kata watch``: from the moment a stub file is saved to the moment the new verdict is
  printed, with the fork server (the default) and with ``--no-fork``. Target: < 0.5 s.

With ``--katas [SLUG ...]`` (every kata when none is named), per kata instead: the bare
``kata SLUG`` on its stub as shipped against the kata's own floor (pytest on one trivial
test importing the third-party modules its solution imports), and the specs against the
solution: pytest's own reported time (from the session's start, collection included)
and the slowest spec (setup, call and teardown added up), each the median of the runs.

Standard library only: ``time.perf_counter`` around subprocesses.
"""

from __future__ import annotations

import argparse
import os
import queue
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from dojo import manifest as _manifest
from dojo.impl import shipped_source

TRIVIAL = "import fastapi\nimport httpx\n\n\ndef test_trivial():\n    assert fastapi and httpx\n"
WATCH_TIMEOUT = 30.0
WATCH_TARGET = 0.5


def _script() -> list[str]:
    """The ``kata`` console script of this environment (``python -m dojo.cli`` if absent)."""
    script = Path(sys.executable).with_name("kata")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "dojo.cli"]


def make_clone(where: Path) -> Path:
    """A copy of this working tree in ``where`` with every stub as shipped, and no progress."""
    clone = where / "clone"
    ignore = shutil.ignore_patterns(".git", ".venv", "__pycache__", ".*_cache", ".hypothesis", ".kata-progress")
    shutil.copytree(_manifest.REPO_ROOT, clone, ignore=ignore)
    for kata in _manifest.load():
        for name in kata.module_files:
            (clone / "katas" / kata.slug / name).write_bytes(shipped_source(kata, name))
    return clone


def clone_env(clone: Path, no_cache: Path | None = None) -> dict[str, str]:
    """The environment that makes ``kata`` and ``python -m dojo...`` use the clone's code.

    A learner's Python caches bytecode (and pytest its rewritten plugins), so by default
    we do too, after the first, uncounted run of each measurement. With ``no_cache`` (an
    empty folder) every process compiles everything afresh, as when
    PYTHONDONTWRITEBYTECODE is set and no cache was ever written.
    """
    env = {**os.environ, "PYTHONPATH": str(clone), "NO_COLOR": "1"}
    for name in ("FORCE_COLOR", "KATA_IMPL", "PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX"):
        env.pop(name, None)
    if no_cache is not None:
        env.update(PYTHONDONTWRITEBYTECODE="1", PYTHONPYCACHEPREFIX=str(no_cache))
    return env


def _time(command: list[str], cwd: Path, env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, cwd=cwd, env=env, capture_output=True, check=False)  # noqa: S603 - our own commands
    return time.perf_counter() - started


def report(label: str, samples: list[float]) -> None:
    """One line: the label, the median, the spread."""
    low, high, median = min(samples), max(samples), statistics.median(samples)
    print(f"{label:<58} median {median:6.3f} s   (min {low:.3f}, max {high:.3f})")


def measure(label: str, runs: int, once: Callable[[], float]) -> list[float]:
    """Run ``once`` ``runs`` times and print the median."""
    once()  # a first run to warm the file cache; not counted
    samples = [once() for _ in range(runs)]
    report(label, samples)
    return samples


class WatchSession:
    """A running ``kata watch`` whose printed lines are time-stamped as they arrive."""

    def __init__(self, clone: Path, env: dict[str, str], extra: list[str]) -> None:
        self.process = subprocess.Popen(  # noqa: S603 - our own command
            [*_script(), "watch", *extra],
            cwd=clone,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        self.lines: queue.Queue[tuple[float, str]] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put((time.perf_counter(), line))

    def next_verdict(self, timeout: float = WATCH_TIMEOUT) -> tuple[float, str]:
        """The time the next verdict's summary line (``N/M specs pass``) was printed."""
        deadline = time.monotonic() + timeout
        while (got := self._get(max(0.0, deadline - time.monotonic()))) is not None:
            if "specs pass" in got[1]:
                return got
        raise TimeoutError(f"no verdict from `kata watch` within {timeout} s")

    def _get(self, timeout: float) -> tuple[float, str] | None:
        try:
            return self.lines.get(timeout=timeout)
        except queue.Empty:
            return None

    def drain(self, quiet_for: float = 0.3) -> None:
        while self._get(quiet_for) is not None:
            pass

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def watch_latencies(clone: Path, env: dict[str, str], runs: int, extra: list[str]) -> list[float]:
    """Save a stub ``runs`` (+1 warm-up) times; each time, seconds until the new verdict."""
    kata = next(iter(_manifest.load()))
    stub = clone / "katas" / kata.slug / kata.module_files[0]
    original = stub.read_text(encoding="utf-8")
    session = WatchSession(clone, env, extra)
    samples: list[float] = []
    try:
        session.next_verdict()
        session.drain()
        for number in range(runs + 1):
            stub.write_text(original + f"\n# saved {number}\n", encoding="utf-8")
            saved = time.perf_counter()
            printed, _ = session.next_verdict()
            if number:  # the first save warms the file cache and the fork server's page cache
                samples.append(printed - saved)
            session.drain()
    finally:
        session.close()
        stub.write_text(original, encoding="utf-8")
    return samples


def kata_floor_test(kata: _manifest.Kata) -> str:
    """One trivial test importing what the kata's solution and specs import from outside the standard library."""
    stack = sorted({name.partition(".")[0] for name in kata.libraries()} - set(sys.stdlib_module_names))
    imports = "".join(f"import {name}\n" for name in stack)
    return f"{imports}\n\ndef test_trivial():\n    assert True\n"


_SESSION = re.compile(r" in (\d+\.\d+)s")
_DURATION = re.compile(r"^(\d+\.\d+)s (?:setup|call|teardown) +(\S.*)$")


def spec_run(clone: Path, env: dict[str, str], kata: _manifest.Kata) -> tuple[float, float, str]:
    """One run of the kata's specs on its solution: pytest's time, the slowest spec's time, its id."""
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", f"katas/{kata.slug}", "--impl=solutions"]
    command += ["--durations=0", "--durations-min=0"]
    result = subprocess.run(command, cwd=clone, env=env, capture_output=True, text=True, check=False)  # noqa: S603
    session = _SESSION.findall(result.stdout)
    if result.returncode != 0 or not session:
        raise RuntimeError(f"{kata.slug}: the specs did not pass on the solution:\n{result.stdout[-2000:]}")
    per_spec: dict[str, float] = {}
    for line in result.stdout.splitlines():
        if found := _DURATION.match(line.strip()):
            per_spec[found[2]] = per_spec.get(found[2], 0.0) + float(found[1])
    slowest = max(per_spec, key=per_spec.__getitem__, default="")
    return float(session[-1]), per_spec.get(slowest, 0.0), slowest


def measure_katas(slugs: list[str], runs: int, no_cache: bool) -> int:
    """Per kata: bare ``kata SLUG`` against its floor, and the specs' time on the solution."""
    katas = _manifest.load()
    chosen = [katas.get(slug) for slug in slugs] if slugs else list(katas)
    with tempfile.TemporaryDirectory(prefix="kata-bench-") as folder:
        tmp = Path(folder)
        clone = make_clone(tmp)
        cache = tmp / "no-cache" if no_cache else None
        if cache is not None:
            cache.mkdir()
        env = clone_env(clone, cache)
        load = f"load {os.getloadavg()[0]:.2f}" if hasattr(os, "getloadavg") else "load unknown"
        print(f"median of {runs} runs, {os.cpu_count()} CPUs, {load}, bytecode {'never cached' if cache else 'cached'}")
        print(f"{'kata':<30} {'floor':>7} {'bare':>7} {'ratio':>6} {'specs':>7} {'slowest':>8}  slowest spec")
        for kata in chosen:
            floor = tmp / f"floor-{kata.slug}"
            floor.mkdir()
            (floor / "test_trivial.py").write_text(kata_floor_test(kata))
            floor_command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(floor)]
            progress = clone / ".kata-progress"
            floors, bares = [], []
            # One of each in turn (after one of each to warm up): a machine that slows down or
            # speeds up during the measure moves both alike, and the ratio stays true.
            for number in range(runs + 1):
                floor_time = _time(floor_command, floor, env)
                progress.unlink(missing_ok=True)
                bare_time = _time([*_script(), kata.slug], clone, env)
                if number:
                    floors.append(floor_time)
                    bares.append(bare_time)
            spec_run(clone, env, kata)
            samples = [spec_run(clone, env, kata) for _ in range(runs)]
            sessions = [sample[0] for sample in samples]
            slowest = [sample[1] for sample in samples]
            name = max(samples, key=lambda sample: sample[1])[2]
            floor_median, bare_median = statistics.median(floors), statistics.median(bares)
            print(
                f"{kata.slug:<30} {floor_median:6.2f}s {bare_median:6.2f}s {bare_median / floor_median:5.2f}x "
                f"{statistics.median(sessions):6.2f}s {statistics.median(slowest):7.3f}s  {name.split('::')[-1][:60]}",
                flush=True,
            )
    return 0


def main(argv: list[str] | None = None) -> int:
    """Measure and print; exit 1 if watch mode misses its 0.5 s target."""
    parser = argparse.ArgumentParser(prog="python -m dojo.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs per measurement (median of them; at least 5)")
    parser.add_argument("--no-bytecode-cache", action="store_true", help="every process compiles everything afresh")
    parser.add_argument(
        "--katas", nargs="*", metavar="SLUG", help="per kata: bare command vs its own floor, specs on the solution"
    )
    args = parser.parse_args(argv)
    runs = max(5, args.runs)
    if args.katas is not None:
        return measure_katas(args.katas, runs, args.no_bytecode_cache)
    kata = next(iter(_manifest.load()))
    with tempfile.TemporaryDirectory(prefix="kata-bench-") as folder:
        tmp = Path(folder)
        clone = make_clone(tmp)
        no_cache = tmp / "no-cache" if args.no_bytecode_cache else None
        if no_cache is not None:
            no_cache.mkdir()
        env = clone_env(clone, no_cache)
        floor = tmp / "floor"
        floor.mkdir()
        (floor / "test_trivial.py").write_text(TRIVIAL)
        progress = clone / ".kata-progress"
        load = f"load {os.getloadavg()[0]:.2f}" if hasattr(os, "getloadavg") else "load unknown"
        cache = "never cached" if no_cache else "cached"
        print(f"median of {runs} runs, {os.cpu_count()} CPUs, {load}, kata {kata.slug} (red), bytecode {cache}")

        def bare() -> float:
            progress.unlink(missing_ok=True)
            return _time(_script(), clone, env)

        bare_samples = measure("`kata` (bare command): start to verdict, red kata", runs, bare)
        floor_samples = measure(
            "floor: pytest, one trivial test importing fastapi+httpx",
            runs,
            lambda: _time([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(floor)], floor, env),
        )
        measure(
            f"plain `pytest katas/{kata.slug}`",
            runs,
            lambda: _time([sys.executable, "-m", "pytest", "-q", f"katas/{kata.slug}"], clone, env),
        )
        fork = watch_latencies(clone, env, runs, [])
        report("`kata watch`: save to verdict (fork server)", fork)
        report(
            "`kata watch --no-fork`: save to verdict (new process)", watch_latencies(clone, env, runs, ["--no-fork"])
        )
        shutil.rmtree(clone, ignore_errors=True)
    bare_vs_floor = statistics.median(bare_samples) - statistics.median(floor_samples)
    met = statistics.median(fork) < WATCH_TARGET
    verdict = "met" if met else "MISSED"
    print(f"bare command minus floor: {bare_vs_floor:+.3f} s; watch target < {WATCH_TARGET} s: {verdict}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
