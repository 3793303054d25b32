"""The studio page in a real browser: Debian's Chromium driven by Selenium.

One ``tunesmith studio`` process and one headless Chromium serve the whole module. The
browser is the system's ``chromium`` with its ``chromedriver`` (``apt-get install chromium
chromium-driver``); nothing downloads a browser or a driver. Without them the module is
skipped, and says why. Screenshots go to ``$TUNESMITH_ARTIFACTS`` (default:
``tunesmith-studio-artifacts`` in the system's temporary folder), printed at the end of
the run.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from studio_fixtures import (
    SECONDS_PER_BAR,
    StudioProcess,
    corpus_pieces,
    grid_cells,
    notes_clear_of,
    studio_checkpoint,
)
from tunesmith.music import load

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
if not (Path(CHROMIUM).is_file() and Path(CHROMEDRIVER).is_file()):
    pytest.skip(f"browser tests need Chromium and its driver ({CHROMIUM}, {CHROMEDRIVER} not "
                "found): apt-get install chromium chromium-driver", allow_module_level=True)
webdriver = pytest.importorskip(
    "selenium.webdriver", reason="browser tests need selenium (pip install -e '.[dev]')")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

#: Chromium without network chatter, GPU or first-run pages; a fresh profile per run
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--mute-audio",
                  "--autoplay-policy=no-user-gesture-required", "--window-size=1300,1000"]
#: the two tracks' colours on the canvas (studio.js COLOURS[0], [1])
TRACK_COLOURS = [(0xd9, 0x48, 0x0f), (0x19, 0x71, 0xc2)]
WAIT = 90  # seconds; the machine may be busy


@pytest.fixture(scope="module")
def artifacts(studio_artifacts):
    return studio_artifacts  # conftest.py: $TUNESMITH_ARTIFACTS or a fixed temporary folder


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    root = tmp_path_factory.mktemp("studio-browser")
    server = StudioProcess(studio_checkpoint(root), root / "out", root / "cache")
    server.root = root
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser(studio, tmp_path_factory):
    from selenium.webdriver.chrome.service import Service

    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager never goes online
    profile = tmp_path_factory.mktemp("chromium-profile")
    downloads = tmp_path_factory.mktemp("downloads")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in [*CHROMIUM_FLAGS, f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.execute_cdp_cmd("Browser.setDownloadBehavior",
                           {"behavior": "allow", "downloadPath": str(downloads)})
    driver.downloads = downloads
    driver.get(studio.url + "/")
    WebDriverWait(driver, WAIT).until(
        lambda d: d.find_element(By.ID, "status").text == "ready")
    yield driver
    driver.quit()


# ---------------------------------------------------------------------- page helpers


def set_value(driver, element_id: str, value) -> None:
    element = driver.find_element(By.ID, element_id)
    element.clear()
    element.send_keys(str(value))


def current_piece(driver) -> str | None:
    return driver.execute_script("return document.getElementById('roll').dataset.piece || null")


def act(driver, button: str, **values) -> dict:
    """Set inputs, click a button, wait for a new piece on the canvas; returns the piece
    JSON the page drew (fetched again from the page's state)."""
    for element_id, value in values.items():
        set_value(driver, element_id.replace("_", "-"), value)
    before = current_piece(driver)
    driver.find_element(By.ID, button).click()
    WebDriverWait(driver, WAIT).until(
        lambda d: current_piece(d) not in (None, before)
        or d.find_element(By.ID, "error").is_displayed())
    error = driver.find_element(By.ID, "error")
    assert not error.is_displayed(), error.text
    return page_piece(driver)


def page_piece(driver) -> dict:
    return driver.execute_script("return window.studioPiece()")


def drawn_pixels(driver) -> list[int]:
    """Canvas pixels of each track's colour."""
    return driver.execute_script("""
        const c = document.getElementById('roll');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        const colours = arguments[0], counts = colours.map(() => 0);
        for (let i = 0; i < d.length; i += 4) {
          colours.forEach((rgb, k) => {
            if (d[i] === rgb[0] && d[i + 1] === rgb[1] && d[i + 2] === rgb[2]) counts[k]++;
          });
        }
        return counts;""", [list(c) for c in TRACK_COLOURS])


def wait_for_audio(driver) -> dict:
    """Wait until the player can play through; its state then."""
    return WebDriverWait(driver, WAIT).until(lambda d: d.execute_script("""
        const p = document.getElementById('player');
        return p.readyState >= 4 && isFinite(p.duration) ?
            {duration: p.duration, error: p.error && p.error.code, src: p.currentSrc} : null;"""))


def screenshot(driver, artifacts: Path, name: str) -> None:
    driver.save_screenshot(str(artifacts / f"{name}.png"))


# ---------------------------------------------------------------------- tests


def test_generate_draws_the_piano_roll_and_plays_the_audio(browser, artifacts):
    piece = act(browser, "generate", bars=4, seed=1)
    assert piece["bars"] == 4 and len(piece["notes"]) > 4
    assert int(browser.find_element(By.ID, "roll").get_attribute("data-notes")) == \
        len(piece["notes"])
    upper, lower = drawn_pixels(browser)
    assert upper > 50 and lower > 50  # both tracks drawn, each in its own colour
    audio = wait_for_audio(browser)
    assert audio["error"] is None and audio["src"].endswith(piece["wav"])
    assert 4 * SECONDS_PER_BAR <= audio["duration"] <= 4 * SECONDS_PER_BAR + 1.01
    played = browser.execute_async_script("""
        const done = arguments[arguments.length - 1];
        const p = document.getElementById('player');
        p.muted = true;
        p.play().then(() => setTimeout(() => { p.pause(); done(p.currentTime); }, 400),
                      (err) => done('play failed: ' + err.message));""")
    assert isinstance(played, float) and played > 0, played
    legend = browser.find_element(By.ID, "legend").text
    assert "Upper" in legend and "Lower" in legend
    WebDriverWait(browser, WAIT).until(
        lambda d: "train" in d.find_element(By.ID, "eval-status").text)
    assert "voice activity Upper" in browser.find_element(By.ID, "eval-table").text
    screenshot(browser, artifacts, "1-generate")


def test_continue_adds_bars_after_the_piece(browser, artifacts):
    piece = act(browser, "generate", bars=4, seed=2)
    longer = act(browser, "continue", continue_bars=2, seed=3)
    assert longer["bars"] == 6 and longer["id"] != piece["id"]
    assert notes_clear_of(longer, 16, 1e9) == notes_clear_of(piece, 16, 1e9)
    screenshot(browser, artifacts, "2-continue")


def test_regenerating_bars_2_to_3_keeps_the_rest(browser, artifacts):
    piece = act(browser, "generate", bars=5, seed=4)
    again = act(browser, "regenerate", from_bar=2, to_bar=3, seed=5)
    assert "bars 2-3" in browser.find_element(By.ID, "piece-note").text
    start, end = 16, 48  # steps of bars 2-3
    outside = lambda p: {c for c in grid_cells(p) if not start <= c[2] < end}  # noqa: E731
    inside = lambda p: {c for c in grid_cells(p) if start <= c[2] < end}  # noqa: E731
    assert outside(again) == outside(piece) and inside(again) != inside(piece)
    assert notes_clear_of(again, 4, 12) == notes_clear_of(piece, 4, 12)
    screenshot(browser, artifacts, "3-regenerate-bars-2-3")


def test_an_uploaded_midi_file_is_the_primer(browser, artifacts, tmp_path):
    source = corpus_pieces(tmp_path / "mine", n=40, bars=3, seed=7) / "piece05.mid"
    act(browser, "generate", bars=2, seed=6)
    before = current_piece(browser)
    browser.find_element(By.ID, "upload").send_keys(str(source))
    WebDriverWait(browser, WAIT).until(lambda d: current_piece(d) != before)
    piece = page_piece(browser)
    assert piece["note"] == "primer piece05.mid" and piece["bars"] == 3
    assert len(piece["notes"]) == load(source).note_num()
    longer = act(browser, "continue", continue_bars=1, seed=1)
    assert notes_clear_of(longer, 12, 1e9) == notes_clear_of(piece, 12, 1e9)
    screenshot(browser, artifacts, "4-upload-and-continue")


def test_a_bad_upload_shows_its_error_and_the_page_goes_on(browser, artifacts, tmp_path):
    bad = tmp_path / "broken.mid"
    bad.write_bytes(b"MThd\x00\x00\x00\x06 not really")
    browser.find_element(By.ID, "upload").send_keys(str(bad))
    error = browser.find_element(By.ID, "error")
    WebDriverWait(browser, WAIT).until(lambda d: error.is_displayed())
    assert error.text.startswith("broken.mid: ")
    screenshot(browser, artifacts, "5-error")
    act(browser, "generate", bars=1, seed=1)
    assert not error.is_displayed()


def test_the_downloaded_midi_loads_back(browser, artifacts):
    piece = act(browser, "generate", bars=3, seed=8)
    link = browser.find_element(By.ID, "download-mid")
    link.click()
    name = f"tunesmith-{piece['id'][:8]}.mid"
    path = browser.downloads / name
    WebDriverWait(browser, WAIT).until(lambda d: path.is_file() and not list(
        browser.downloads.glob("*.crdownload")))
    time.sleep(0.2)
    score = load(path)
    assert score.note_num() == len(piece["notes"])
    assert [t.name for t in score.tracks] == ["Upper", "Lower"]
    starts = sorted(n.time / score.ticks_per_quarter for t in score.tracks for n in t.notes)
    assert starts == sorted(n[2] for n in piece["notes"])


def test_two_tabs_each_keep_their_own_piece(browser, studio):
    first = act(browser, "generate", bars=2, seed=21)
    original = browser.current_window_handle
    browser.switch_to.new_window("tab")
    try:
        browser.get(studio.url + "/")
        WebDriverWait(browser, WAIT).until(
            lambda d: d.find_element(By.ID, "status").text == "ready")
        # both tabs click Generate before either answer is back
        browser.execute_script("document.getElementById('seed').value = 22;"
                               "document.getElementById('bars').value = 2;"
                               "document.getElementById('generate').click();")
        second_tab = browser.current_window_handle
        browser.switch_to.window(original)
        browser.execute_script("document.getElementById('seed').value = 23;"
                               "document.getElementById('generate').click();")
        WebDriverWait(browser, WAIT).until(lambda d: current_piece(d) != first["id"])
        mine = page_piece(browser)
        browser.switch_to.window(second_tab)
        WebDriverWait(browser, WAIT).until(lambda d: current_piece(d) is not None)
        theirs = page_piece(browser)
    finally:
        browser.close()
        browser.switch_to.window(original)
    assert mine["id"] != theirs["id"] and mine["notes"] != theirs["notes"]
    status, again = studio.request("/api/generate", {"model": "run", "bars": 2, "seed": 22})
    assert status == 200, again
    assert again["notes"] == theirs["notes"]
