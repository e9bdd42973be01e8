"""Playground server memory: total RSS of Voila and its kernels after N page loads.

Serves notebooks/06_playground.ipynb with :func:`actadd.ui.serve.voila_argv`, loads the page
``--loads`` times, and prints the resident memory of the server plus all its kernel
processes right after the loads and again after ``--settle`` seconds. Run it once with
culling off (``--cull-idle-timeout 0``, what the server did before) and once with it on, on
the same machine; each line also prints the ratio to the first configuration of the run.

``--via http`` fetches the page without a browser (each load starts a kernel, executes the
notebook, loads the model, and no page ever connects: the case of a tab whose close beacon
never arrives). ``--via browser`` loads it in headless Chromium (Debian's chromium and
chromedriver), each load in a new tab that stays open (kernels connected, never culled), then
quits the browser as a killed one would, without a close beacon.

    .venv/bin/python benchmarks/bench_playground_memory.py --loads 4 \
        --configs 0,300 --cull-interval 30 --settle 340 [--baseline-root /path/to/old/checkout]

``--root`` picks the checkout whose notebook and package the server runs (default: this one);
``--baseline-root`` another one for the first config, so one run compares an older checkout
(its notebook and code) with this one. ``--model tiny-llama`` for a quick check.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil

from actadd.ui.serve import voila_argv

GIB = 1024**3


def tree_rss(pid: int) -> tuple[float, int]:
    """(RSS in GiB of the process and its descendants, number of kernel processes)."""
    root = psutil.Process(pid)
    procs = [root, *root.children(recursive=True)]
    total, kernels = 0, 0
    for p in procs:
        try:
            total += p.memory_info().rss
            kernels += any("ipykernel" in a for a in p.cmdline())
        except psutil.NoSuchProcess:
            pass
    return total / GIB, kernels


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port: int, proc: subprocess.Popen, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"voila exited with {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    raise SystemExit(f"voila did not listen on {port} in {timeout:.0f} s")


def load_http(url: str, n: int) -> None:
    for i in range(n):
        t0 = time.monotonic()
        with urllib.request.urlopen(url, timeout=600) as r:
            body = r.read()
        assert b"actadd" in body or r.status == 200
        print(f"  load {i + 1}: {time.monotonic() - t0:.1f} s", flush=True)


def load_browser(url: str, n: int):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium") or shutil.which("chromium-browser") or ""
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(options=opts, service=Service(shutil.which("chromedriver")))
    for i in range(n):
        t0 = time.monotonic()
        if i:
            driver.switch_to.new_window("tab")
        driver.get(url)
        WebDriverWait(driver, 600).until(lambda d: d.find_elements(By.CLASS_NAME, "actadd-run"))
        print(f"  load {i + 1}: {time.monotonic() - t0:.1f} s", flush=True)
    return driver


def measure(args, cull: int, root: str) -> tuple[float, float, int, int]:
    root = Path(root).resolve()
    port = free_port()
    cmd = voila_argv(
        port,
        notebook=root / "notebooks" / "06_playground.ipynb",
        cull_idle_timeout=cull,
        cull_interval=args.cull_interval,
    )
    env = {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"}
    if args.model:
        env["ACTADD_PLAYGROUND_MODEL"] = args.model
    proc = subprocess.Popen(
        cmd, cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    driver = None
    try:
        wait_listening(port, proc)
        url = f"http://127.0.0.1:{port}/"
        print(f"{root}, cull_idle_timeout={cull} s: {args.loads} loads via {args.via}", flush=True)
        if args.via == "http":
            load_http(url, args.loads)
        else:
            driver = load_browser(url, args.loads)
        loaded, k_loaded = tree_rss(proc.pid)
        if driver is not None:
            driver.quit()  # tabs closed: Voila's beacon shuts their kernels down
            driver = None
        time.sleep(args.settle)
        settled, k_settled = tree_rss(proc.pid)
        return loaded, settled, k_loaded, k_settled
    finally:
        if driver is not None:
            driver.quit()
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--loads", type=int, default=4)
    ap.add_argument("--configs", default="0,30", help="cull idle timeouts to compare (s)")
    ap.add_argument("--cull-interval", type=int, default=5)
    ap.add_argument("--settle", type=float, default=60, help="seconds to wait after the loads")
    ap.add_argument("--via", choices=("http", "browser"), default="http")
    ap.add_argument("--root", default=str(Path(__file__).resolve().parents[1]))
    ap.add_argument(
        "--baseline-root", default="", help="the checkout the first config runs (default --root)"
    )
    ap.add_argument("--model", default="", help="ACTADD_PLAYGROUND_MODEL (default SmolLM2)")
    args = ap.parse_args()
    configs = [int(c) for c in args.configs.split(",")]
    roots = [args.baseline_root or args.root] + [args.root] * (len(configs) - 1)
    rows = [(r, c, *measure(args, c, r)) for r, c in zip(roots, configs)]
    base = rows[0][3]
    print(f"\nmodel {args.model or 'SmolLM2 (default)'}, via {args.via}, settle {args.settle:g} s")
    print(
        "checkout  cull_idle_timeout  RSS after loads (kernels)  after settle (kernels)  vs first"
    )
    for r, c, loaded, settled, kl, ks in rows:
        print(
            f"{r}  {c:>5} s  {loaded:>8.2f} GiB ({kl})  {settled:>8.2f} GiB ({ks})  "
            f"{settled / base:.2f}x"
        )


if __name__ == "__main__":
    sys.exit(main())
