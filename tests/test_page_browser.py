"""The web page in a real headless browser: Debian's chromium driven by selenium through chromedriver,
against a real ``emoreason serve`` app (uvicorn on a free 127.0.0.1 port) with the tiny random model.

Covers: upload -> label, transcript, waveform / pitch / loudness drawn; recording from chromium's
fake microphone (MediaRecorder webm/opus, decoded by the server's ffmpeg); a 65 s clip streaming in
window by window with a progress bar; a corrupt file whose error replaces the previous result.
Skips (saying why) only when chromium, chromedriver or selenium is missing. Set
``EMOREASON_PAGE_SCREENSHOTS=docs/images`` to refresh the screenshots in the docs.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile as sf

from emoreason.testing.browser import launch_chromium, missing_browser, save_screenshot, script_errors

if missing_browser():
    pytest.skip(missing_browser(), allow_module_level=True)
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

EMOTIONS = ["neutral", "happy", "sad", "angry", "frustrated", "excited", "surprised", "fearful", "disgusted", "other"]
SR = 16_000


def _tone_wav(seconds: float, path: Path) -> Path:
    """A gliding tone with pauses (a voiced, pitch-moving signal when espeak-ng is missing)."""
    t = np.arange(int(seconds * SR)) / SR
    f = 150 + 60 * np.sin(2 * np.pi * 0.5 * t)
    wave = 0.3 * np.sin(2 * np.pi * np.cumsum(f) / SR) * (np.sin(2 * np.pi * 0.7 * t) > -0.3)
    sf.write(path, wave.astype(np.float32), SR, subtype="PCM_16")
    return path


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory):
    from emoreason.testing.server import serve_tiny_run

    # batch 2: a long upload keeps one window in flight (stream.in_flight), so the windows of the
    # 65 s clip finish one after another and the stream has something to show in between.
    with serve_tiny_run(tmp_path_factory.mktemp("run"), max_new_tokens=4, batch_size=2) as url:
        yield url


@pytest.fixture(scope="module")
def clips(base_url, tmp_path_factory) -> dict[str, Path]:
    """A spoken clip (the server's espeak example, else a tone) and a corrupt file."""
    d = tmp_path_factory.mktemp("clips")
    listing = httpx.get(f"{base_url}/examples").json()
    if any(x["name"] == "angry" for x in listing["examples"]):
        speech = d / "angry.wav"
        speech.write_bytes(httpx.get(f"{base_url}/examples/angry.wav").content)
    else:
        speech = _tone_wav(3.0, d / "tone.wav")
    corrupt = d / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt " + os.urandom(600))
    return {"speech": speech, "corrupt": corrupt}


@pytest.fixture(scope="module")
def browser(clips, tmp_path_factory):
    # the fake microphone hears the spoken clip
    driver = launch_chromium(tmp_path_factory.mktemp("chromium-profile"), fake_audio=clips["speech"])
    yield driver
    driver.quit()


@pytest.fixture(autouse=True)
def no_script_errors(browser):
    """Every test: the page threw no uncaught script error."""
    script_errors(browser)  # drop what earlier tests left
    yield
    assert script_errors(browser) == []


def _open(driver, base_url: str) -> None:
    driver.get(base_url + "/")
    # loaded: the model's label chips and the examples (buttons, or the line saying why there are none)
    WebDriverWait(driver, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#model .chip")
                                    and "loading" not in d.find_element(By.ID, "examples").text)


def _wait_state(driver, states=("done", "error"), timeout: float = 60) -> str:
    WebDriverWait(driver, timeout).until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-state") in states)
    return driver.find_element(By.TAG_NAME, "body").get_attribute("data-state")


def _inked(driver, canvas_id: str) -> int:
    """Pixels drawn on a canvas (alpha > 0): a curve that was not drawn leaves 0."""
    return driver.execute_script(
        "const c = document.getElementById(arguments[0]); const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
        "let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n;", canvas_id)


def _screenshot(driver, name: str) -> None:
    """Save a small PNG to $EMOREASON_PAGE_SCREENSHOTS (e.g. docs/images) when it is set."""
    if os.environ.get("EMOREASON_PAGE_SCREENSHOTS"):
        save_screenshot(driver, Path(os.environ["EMOREASON_PAGE_SCREENSHOTS"]) / name)


def test_upload_shows_label_transcript_and_curves(base_url, browser, clips):
    _open(browser, base_url)
    chips = [c.text for c in browser.find_elements(By.CSS_SELECTOR, "#model .chip")]
    assert chips[: len(EMOTIONS)] == EMOTIONS and chips[len(EMOTIONS):] == ["positive", "negative", "neutral"]
    browser.find_element(By.ID, "file").send_keys(str(clips["speech"]))
    browser.find_element(By.ID, "analyze").click()
    assert _wait_state(browser) == "done", browser.find_element(By.ID, "errorText").text
    label = browser.find_element(By.ID, "label").text.lower()
    assert label in EMOTIONS
    # the label's colour is the fixed one for its meaning, the same in the bars
    assert browser.execute_script("return getComputedStyle(document.getElementById('label')).color") == \
        browser.execute_script("const s = document.createElement('span'); s.style.color = colorOf(arguments[0]);"
                               "document.body.append(s); const c = getComputedStyle(s).color; s.remove(); return c;", label)
    assert len(browser.find_elements(By.CSS_SELECTOR, "#bars .bar")) == len(EMOTIONS)
    # waveform, pitch and loudness: 300 bins each, drawn
    for canvas in ("wave", "pitch", "loud"):
        assert int(browser.find_element(By.ID, canvas).get_attribute("data-drawn")) > (150 if canvas != "pitch" else 20), canvas
        assert _inked(browser, canvas) > 200, canvas
    # the transcript is there as clickable words (the tiny model's ASR: no timings, so estimated)
    words = browser.find_elements(By.CSS_SELECTOR, "#transcript .word")
    assert words and browser.find_element(By.ID, "transcriptHead").text == "Transcript (model-asr)"
    # The tiny random model never writes quotes; give the page its own result back with the last
    # transcript word quoted: the word is highlighted in the transcript, and clicking it seeks there.
    browser.execute_script("const r = {...shown}; const w = r.transcript.text.trim().split(/\\s+/);"
                           "r.quotes = [{text: w[w.length - 1], start: null, end: null, grounded: true}];"
                           "r.explanation = r.explanation + ' It says \"' + w[w.length - 1] + '\".'; render(r);")
    marked = browser.find_elements(By.CSS_SELECTOR, "#transcript mark.quote .word")
    assert len(marked) >= 1 and browser.find_elements(By.CSS_SELECTOR, "#explanation mark")
    target = marked[-1]
    start = float(target.get_attribute("data-start"))
    WebDriverWait(browser, 10).until(lambda d: d.execute_script("return document.getElementById('player').readyState") >= 1)
    target.click()
    WebDriverWait(browser, 5).until(
        lambda d: abs(d.execute_script("return document.getElementById('player').currentTime") - start) < 0.3)
    _screenshot(browser, "page-upload.png")
    # task asr: no label, the transcript is the answer
    browser.find_element(By.CSS_SELECTOR, "#task option[value=asr]").click()
    browser.find_element(By.ID, "analyze").click()
    assert _wait_state(browser) == "done"
    assert browser.find_element(By.ID, "label").text.lower() == "asr" and not browser.find_elements(By.CSS_SELECTOR, "#bars .bar")
    assert browser.find_element(By.ID, "transcriptBox").is_displayed() and not browser.find_element(By.ID, "explanationBox").is_displayed()


def test_record_with_the_fake_microphone(base_url, browser):
    _open(browser, base_url)
    browser.find_element(By.ID, "record").click()
    WebDriverWait(browser, 10).until(lambda d: "recording" in d.find_element(By.ID, "status").text)
    time.sleep(2.0)
    browser.find_element(By.ID, "record").click()
    WebDriverWait(browser, 10).until(lambda d: "ready" in d.find_element(By.ID, "status").text)
    assert browser.find_element(By.ID, "status").text.startswith("recording.webm")  # MediaRecorder's webm/opus
    browser.find_element(By.ID, "analyze").click()
    assert _wait_state(browser) == "done", browser.find_element(By.ID, "errorText").text
    assert browser.find_element(By.ID, "label").text.lower() in EMOTIONS
    seconds = float(browser.find_element(By.ID, "conf").text.split(" s ")[0].split()[-1])
    assert 1.0 <= seconds <= 4.0  # ~2 s recorded, decoded from webm by the server
    assert _inked(browser, "wave") > 100


def test_long_clip_streams_window_by_window(base_url, browser):
    _open(browser, base_url)
    if not browser.find_elements(By.CSS_SELECTOR, "#examples button[data-name=long]"):
        pytest.skip("espeak-ng / sox missing: no long example clip")
    browser.find_element(By.CSS_SELECTOR, "#examples button[data-name=long]").click()
    # while it streams: the progress bar is shown and the timeline has windows still pending
    WebDriverWait(browser, 30).until(lambda d: d.find_element(By.ID, "progressBar").get_attribute("data-history"))
    assert browser.find_element(By.ID, "progress").is_displayed()
    assert _wait_state(browser, timeout=90) == "done", browser.find_element(By.ID, "errorText").text
    # the windows are where the server cuts the clip (at pauses, at most 30 s: the tiny run records no window)
    from emoreason.audio import load_audio, split_windows
    from emoreason.inference.server.examples import ExampleBank

    spans = [(start, end) for start, end, _ in split_windows(load_audio(ExampleBank().clips()["long"].wav))]
    n = len(spans)
    assert n >= 3 and browser.find_element(By.ID, "progressBar").get_attribute("data-history") == " ".join(
        f"{i}/{n}" for i in range(n + 1))
    segments = browser.find_elements(By.CSS_SELECTOR, "#timeline div")
    assert len(segments) == n and not browser.find_elements(By.CSS_SELECTOR, "#timeline div.pending")
    assert all(s.text.lower() in EMOTIONS for s in segments)
    assert browser.find_element(By.ID, "conf").text.split(" \u00B7 ")[1] == "65 s"
    segments[1].click()
    assert browser.find_element(By.CSS_SELECTOR, "#segInfo h2").text.startswith(f"{spans[1][0]:.0f} s-{spans[1][1]:.0f} s")
    _screenshot(browser, "page-long.png")


def test_error_replaces_the_previous_result(base_url, browser, clips):
    _open(browser, base_url)
    browser.find_element(By.ID, "file").send_keys(str(clips["speech"]))
    browser.find_element(By.ID, "analyze").click()
    assert _wait_state(browser) == "done"
    assert browser.find_element(By.ID, "result").is_displayed()
    browser.find_element(By.ID, "file").send_keys(str(clips["corrupt"]))
    browser.find_element(By.ID, "analyze").click()
    assert _wait_state(browser, ("error",)) == "error"
    assert not browser.find_element(By.ID, "result").is_displayed()
    assert browser.find_element(By.ID, "label").text == "" and not browser.find_elements(By.CSS_SELECTOR, "#bars .bar")
    message = browser.find_element(By.ID, "errorText").text
    assert "corrupt.wav" in message and "HTTP 400" in message
    _screenshot(browser, "page-error.png")
    # and the next good clip replaces the error
    browser.find_element(By.ID, "file").send_keys(str(clips["speech"]))
    browser.find_element(By.ID, "analyze").click()
    assert _wait_state(browser) == "done" and not browser.find_element(By.ID, "error").is_displayed()
