#!/usr/bin/env python3
"""Drives drifa serve's web page in Debian's headless Chromium, as a person would.

usage: serve_browser.py URL SCREENSHOT.png NAME=IMAGE [NAME=IMAGE ...]

Talks the Chrome DevTools Protocol over --remote-debugging-pipe (file descriptors 3 and 4, no
WebSocket library needed): opens the page, waits for the model to load, puts each image into its
modality's file input (DOM.setFileInputFiles, as a file chooser would), clicks Predict, waits for
the answer, and prints as JSON what the page shows: each task's class, probability bars,
prediction set and the Grad-CAM overlay images (their data URIs and decoded sizes). Writes a
screenshot. Exits 1 with a message when the page shows an error or nothing within the time limit.
"""
import base64
import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time


def high_fd(fd):
    """The same pipe end at a descriptor >= 10 (close-on-exec); the original is closed."""
    high = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return high


class Browser:
    def __init__(self):
        self.profile = tempfile.mkdtemp(prefix="drifa-chromium-")
        to_browser_r, self.to_browser = os.pipe()
        self.from_browser, from_browser_w = os.pipe()
        # The child's ends above fd 10 first, so that putting them at 3 and 4 cannot overwrite
        # one with the other (os.pipe may have returned 3 or 4). All are close-on-exec except
        # what dup2 puts at 3 and 4.
        to_browser_r, from_browser_w = high_fd(to_browser_r), high_fd(from_browser_w)

        def child_fds():  # the browser reads commands on fd 3 and writes answers on fd 4
            os.dup2(to_browser_r, 3)
            os.dup2(from_browser_w, 4)

        self.proc = subprocess.Popen(
            ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe",
             "--no-first-run", "--no-default-browser-check", "--window-size=1200,1000",
             "--user-data-dir=" + self.profile, "about:blank"],
            preexec_fn=child_fds, close_fds=False,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_browser_r)
        os.close(from_browser_w)
        self.buf = b""
        self.next_id = 0
        self.events = []

    def _read_message(self, deadline):
        while b"\0" not in self.buf:
            if time.time() > deadline:
                raise TimeoutError("no answer from Chromium")
            chunk = os.read(self.from_browser, 1 << 16)
            if not chunk:
                raise RuntimeError("Chromium closed the pipe (did it start? is Debian's chromium installed?)")
            self.buf += chunk
        msg, self.buf = self.buf.split(b"\0", 1)
        return json.loads(msg)

    def send(self, method, params=None, session=None, timeout=60):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self.to_browser, json.dumps(msg).encode() + b"\0")
        deadline = time.time() + timeout
        while True:
            m = self._read_message(deadline)
            if m.get("id") == self.next_id:
                if "error" in m:
                    raise RuntimeError(f"{method}: {m['error']}")
                return m.get("result", {})
            self.events.append(m)

    def close(self):
        try:
            self.send("Browser.close", timeout=10)
        except Exception:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.profile, ignore_errors=True)


def main():
    url, shot, pairs = sys.argv[1], sys.argv[2], sys.argv[3:]
    images = dict(p.split("=", 1) for p in pairs)
    b = Browser()
    try:
        target = b.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        s = b.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "DOM"):
            b.send(domain + ".enable", session=s)
        b.send("Page.navigate", {"url": url}, session=s)

        def js(expr):
            r = b.send("Runtime.evaluate", {"expression": expr, "returnByValue": True, "awaitPromise": True}, session=s)
            if "exceptionDetails" in r:
                raise RuntimeError(f"{expr}: {r['exceptionDetails']}")
            return r["result"].get("value")

        def wait_for(expr, what, seconds=120):
            end = time.time() + seconds
            while time.time() < end:
                try:
                    if js(expr):
                        return
                except RuntimeError:
                    pass  # the page is still loading
                time.sleep(0.1)
            shown = js("document.getElementById('status') && document.getElementById('status').textContent")
            raise TimeoutError(f"the page did not show {what} within {seconds} s; status: {shown}")

        wait_for(f"document.querySelectorAll('input[type=file]').length === {len(images)}", "a file input per modality")
        for name, path in images.items():
            obj = b.send("Runtime.evaluate", {"expression": f"document.querySelector('input[type=file][data-modality=\"{name}\"]')"},
                         session=s)["result"]
            if "objectId" not in obj:
                raise RuntimeError(f"the page has no file input for modality {name}")
            b.send("DOM.setFileInputFiles", {"files": [os.path.abspath(path)], "objectId": obj["objectId"]}, session=s)
        wait_for("!document.getElementById('predict').disabled", "an enabled Predict button")
        js("document.getElementById('predict').click()")
        wait_for("['done', 'error'].includes(document.getElementById('result').dataset.state)", "an answer")
        wait_for("[...document.querySelectorAll('img.overlay')].every(i => i.complete)", "the overlays decoded", 30)
        shown = js("""JSON.stringify({
          state: document.getElementById('result').dataset.state,
          status: document.getElementById('status').textContent,
          model: document.getElementById('model').textContent,
          tasks: Object.fromEntries([...document.querySelectorAll('.task')].map(t => [t.dataset.task, {
            class: t.querySelector('.cls') ? t.querySelector('.cls').dataset.class : null,
            probabilities: Object.fromEntries([...t.querySelectorAll('.bar')].map(r => [r.dataset.className, Number(r.dataset.probability)])),
            prediction_set: [...t.querySelectorAll('[data-set-class]')].map(e => e.dataset.setClass),
            overlays: Object.fromEntries([...t.querySelectorAll('img.overlay')].map(i => [i.dataset.modality,
              {src: i.src, width: i.naturalWidth, height: i.naturalHeight, shown_width: i.width}]))
          }]))
        })""")
        png = b.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}, session=s)["data"]
        with open(shot, "wb") as f:
            f.write(base64.b64decode(png))
        result = json.loads(shown)
        print(json.dumps(result))
        if result["state"] != "done":
            sys.exit(f"the page shows an error: {result['status']}")
    finally:
        b.close()


if __name__ == "__main__":
    main()
