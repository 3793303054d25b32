"""Studio latency: from a click on Generate to a drawn 8-bar piano-roll and to playable audio.

Starts ``tunesmith studio --checkpoint pretrained:bach-chorales`` on a free port, opens it
in Debian's headless Chromium (Selenium with /usr/bin/chromedriver; nothing is
downloaded), and clicks Generate ``--runs`` times for 8 bars. The page records
``performance.now()`` at the click, after the piano-roll is drawn on the canvas, and when
the audio element fires ``canplaythrough`` (``window.studioTimes``). The page loads the
model when it lists the models, before any click; the first click (cold caches) is
reported apart from the warm ones.

Side by side, in the same run, the reference: the same 8 bars sampled and written as MIDI
+ WAV in this process with the model loaded (what ``generate_from_checkpoint`` does after
loading; no server, no browser), so the ratio says what the page (HTTP, JSON, drawing,
the audio element) adds to the sampling and synthesis it cannot avoid.

Usage::

    PYTHONPATH=src .venv/bin/python benchmarks/studio_latency.py --runs 5

Target (issue 19): under 3 s to the drawn piano-roll and to playable audio.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

TARGET_S = 3.0
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--mute-audio", "--window-size=1300,1000"]


def start_studio(out: Path, checkpoint: str) -> tuple[subprocess.Popen, str]:
    src = Path(__file__).resolve().parents[1] / "src"
    env = {**os.environ, "PYTHONUNBUFFERED": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(src), os.environ.get("PYTHONPATH")]))}
    process = subprocess.Popen(
        [sys.executable, "-m", "tunesmith", "studio", "--checkpoint", checkpoint, "--port", "0",
         "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    for line in process.stdout:
        match = re.search(r"(http://\S+?)/\s", line)
        if match:
            return process, match.group(1)
    raise SystemExit(f"the studio did not start (exit {process.wait()})")


def browser(profile: Path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager never goes online
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    driver_path = shutil.which("chromedriver") or "/usr/bin/chromedriver"
    if not (Path(chromium).is_file() and Path(driver_path).is_file()):
        raise SystemExit("needs Debian's chromium and chromium-driver "
                         "(apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in [*FLAGS, f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(executable_path=driver_path), options=options)


def click_generate(driver, seed: int) -> dict:
    """One click on Generate (8 bars); the page's timings in seconds after the click."""
    from selenium.webdriver.support.ui import WebDriverWait

    driver.execute_script(f"document.getElementById('bars').value = 8;"
                          f"document.getElementById('seed').value = {seed};"
                          "document.getElementById('generate').click();")
    times = WebDriverWait(driver, 300, poll_frequency=0.02).until(lambda d: d.execute_script(
        "const t = window.studioTimes; return t.drawn && t.audio ? t : null;"))
    error = driver.execute_script("return document.getElementById('error').textContent")
    if error:
        raise SystemExit(f"the page shows an error: {error}")
    bars = driver.execute_script("return window.studioPiece().bars")
    assert bars == 8, bars
    return {"drawn": (times["drawn"] - times["click"]) / 1000,
            "audio": (times["audio"] - times["click"]) / 1000}


def reference(model, meta, out: Path, seed: int) -> float:
    """Seconds to sample the same 8 bars in this process (model loaded) and write them as
    MIDI + WAV: what generate_from_checkpoint does once the checkpoint is loaded."""
    from tunesmith.generation.generate import (
        array_to_score,
        length_in_steps,
        sample_arrays,
        write_score,
    )
    from tunesmith.models.sampling import SamplingControls

    start = time.perf_counter()
    arrays, _ = sample_arrays(model, meta, 1, length_in_steps(meta, bars=8),
                              SamplingControls(seed=seed))
    write_score(array_to_score(arrays[0], meta), out / f"ref_{seed}.mid", wav=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="warm clicks (after the first)")
    parser.add_argument("--checkpoint", default="pretrained:bach-chorales")
    args = parser.parse_args()
    torch.set_num_threads(1)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        process, url = start_studio(tmp / "studio", args.checkpoint)
        driver = browser(tmp / "profile")
        try:
            driver.get(url + "/")
            from selenium.webdriver.support.ui import WebDriverWait

            WebDriverWait(driver, 120).until(
                lambda d: d.execute_script("return document.getElementById('status')"
                                           ".textContent") == "ready")
            cold = click_generate(driver, 0)
            warm = [click_generate(driver, seed) for seed in range(1, args.runs + 1)]
        finally:
            driver.quit()
            process.terminate()
            process.wait(10)
        from tunesmith.training.checkpoint import load_checkpoint

        model, meta = load_checkpoint(args.checkpoint)
        reference(model, meta, tmp, 0)  # warm-up, as the page's first click
        direct = [reference(model, meta, tmp, s) for s in range(1, args.runs + 1)]

    drawn = statistics.median(r["drawn"] for r in warm)
    audio = statistics.median(r["audio"] for r in warm)
    ref = statistics.median(direct)
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"checkpoint {args.checkpoint}, 8 bars, {args.runs} warm clicks (median), "
          "Chromium headless")
    print(f"{'':34}{'seconds':>9}{'target':>8}{'vs reference':>14}")
    print(f"{'first click (cold)':34}{cold['drawn']:9.2f}")
    print(f"{'click -> drawn piano-roll':34}{drawn:9.2f}{TARGET_S:8.1f}{drawn / ref:13.2f}x")
    print(f"{'click -> playable audio':34}{audio:9.2f}{TARGET_S:8.1f}{audio / ref:13.2f}x")
    print(f"{'reference: in-process sample+write':34}{ref:9.2f}")
    runs = {key: ", ".join(f"{r[key]:.2f}" for r in warm) for key in ("drawn", "audio")}
    print(f"warm runs, drawn: {runs['drawn']}; audio: {runs['audio']}")
    verdict = "meets" if max(drawn, audio) < TARGET_S else "misses"
    print(f"{verdict} the {TARGET_S:g} s target")


if __name__ == "__main__":
    main()
