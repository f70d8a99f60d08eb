"""Screenshots of the web page for the docs: serve a model, drive headless chromium through the page.

    python scripts/page_screenshots.py --model runs/detailed-dual --out docs/images

Writes page-example.png (the spoken "angry" example), page-long.png (the 65 s example, streamed
window by window) and page-error.png (a corrupt file after a result), each a 256-colour PNG.
Needs espeak-ng + sox (the examples), chromium + chromedriver + selenium (emoreason.testing.browser).
"""
from __future__ import annotations

import argparse
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="a run directory (RUN or RUN/final)")
    ap.add_argument("--out", default="docs/images")
    ap.add_argument("--max-new-tokens", type=int, default=96)
    args = ap.parse_args(argv)

    import uvicorn
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from emoreason.inference.engine import Engine
    from emoreason.inference.server import create_app
    from emoreason.testing.browser import launch_chromium, missing_browser, save_screenshot

    if missing_browser():
        sys.exit(missing_browser())
    engine = Engine.load(args.model, max_seconds=120)
    app = create_app(engine, max_new_tokens=args.max_new_tokens, batch_size=2)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    url, out = f"http://127.0.0.1:{port}/", Path(args.out)

    def state(d) -> str:
        return d.find_element(By.TAG_NAME, "body").get_attribute("data-state")

    with tempfile.TemporaryDirectory() as tmp:
        driver = launch_chromium(Path(tmp) / "profile")
        try:
            driver.get(url)
            WebDriverWait(driver, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#examples button[data-name=angry]"))
            for name, shot in (("long", "page-long.png"), ("angry", "page-example.png")):
                driver.find_element(By.CSS_SELECTOR, f"#examples button[data-name={name}]").click()
                WebDriverWait(driver, 600).until(lambda d: state(d) in ("done", "error"))
                if name == "long":
                    driver.find_elements(By.CSS_SELECTOR, "#timeline div")[1].click()
                print(save_screenshot(driver, out / shot), driver.find_element(By.ID, "status").text)
            corrupt = Path(tmp) / "corrupt.wav"
            corrupt.write_bytes(b"RIFF\0\0\0\0WAVEfmt " + bytes(range(256)) * 2)
            driver.find_element(By.ID, "file").send_keys(str(corrupt))
            driver.find_element(By.ID, "analyze").click()
            WebDriverWait(driver, 60).until(lambda d: state(d) == "error")
            print(save_screenshot(driver, out / "page-error.png"))
        finally:
            driver.quit()
            server.should_exit = True
    return 0


if __name__ == "__main__":
    sys.exit(main())
