#!/usr/bin/env python3
"""Real-browser test of `gptrain serve`'s chat page (headless Chromium via selenium).

Usage: chat_page_test.py GPTRAIN_BINARY MODEL_DIR DATA_DIR SCREENSHOT_PNG

Starts its own server (`--port 0 --threads 1`), drives the page at / and checks:
  a. the page loads and names the model in #model;
  b. an answer streams into the assistant bubble (its text grows while it
     arrives) and ends with data-finish "length" or "stop";
  c. #stop aborts a long answer: data-finish="stopped", #send enabled again,
     and the server drops the sequence (GET /health: "running": 0 within 3 s);
  d. the conversation keeps history (2 user and 2 assistant bubbles);
  e. a screenshot of the page is written to SCREENSHOT_PNG.
Exit status: 0 passed, 1 failed, 77 skipped (no selenium, chromium or chromedriver).
CHROMIUM and CHROMEDRIVER in the environment override the browser and driver paths.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.request

SKIP = 77


def find_binary(env, candidates):
    if os.environ.get(env):
        return os.environ[env] if os.access(os.environ[env], os.X_OK) else None
    for c in candidates:
        path = c if os.path.isabs(c) else shutil.which(c)
        if path and os.access(path, os.X_OK):
            return path
    return None


class Failure(Exception):
    pass


def http_json(url, timeout=10):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, json.loads(r.read().decode())


class Server:
    """gptrain serve on a free port; its output is kept for failure messages."""

    def __init__(self, binary, model, data_dir):
        self.lines = []
        self.port = None
        self.listening = threading.Event()
        self.proc = subprocess.Popen(
            [binary, "serve", "--model", model, "--data-dir", data_dir,
             "--port", "0", "--threads", "1"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))
            m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
            if m and self.port is None:
                self.port = int(m.group(1))
                self.listening.set()
        self.listening.set()  # the process ended

    def start(self, timeout=180):
        if not self.listening.wait(timeout) or self.port is None:
            raise Failure("server did not print 'listening on http://127.0.0.1:PORT' "
                          "(exit %s); its output:\n%s" % (self.proc.poll(), self.log()))
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                if http_json(self.url("/health"), timeout=2)[0] == 200:
                    return
            except Exception:
                pass
            time.sleep(0.2)
        raise Failure("GET /health never answered 200; server output:\n" + self.log())

    def url(self, path=""):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def health(self):
        return http_json(self.url("/health"), timeout=5)[1]

    def log(self, last=40):
        return "\n".join("  | " + l for l in self.lines[-last:])

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def main(argv):
    if len(argv) != 5:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    binary, model_dir, data_dir, screenshot = argv[1:]
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.options import Options
        from selenium.webdriver.chrome.service import Service
        from selenium.webdriver.common.by import By
    except ImportError:
        print("SKIP: selenium is not installed (pip install selenium)")
        return SKIP
    chromium = find_binary("CHROMIUM", ["/usr/bin/chromium", "chromium", "chromium-browser"])
    chromedriver = find_binary("CHROMEDRIVER", ["/usr/bin/chromedriver", "chromedriver"])
    if not chromium or not chromedriver:
        print("SKIP: chromium or chromedriver is missing (apt-get install chromium chromium-driver)")
        return SKIP

    server = Server(binary, model_dir, data_dir)
    driver = None
    try:
        server.start()
        model_id = http_json(server.url("/v1/models"))[1]["data"][0]["id"]

        options = Options()
        options.binary_location = chromium
        for arg in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                    "--window-size=1280,900", "--disable-gpu"]:
            options.add_argument(arg)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        driver = webdriver.Chrome(service=Service(chromedriver), options=options)

        def el(css):
            return driver.find_element(By.CSS_SELECTOR, css)

        def wait_for(what, cond, timeout, step=0.05):
            deadline = time.time() + timeout
            while time.time() < deadline:
                v = cond()
                if v:
                    return v
                time.sleep(step)
            raise Failure("timed out after %g s waiting for %s" % (timeout, what))

        def set_field(css, value):
            e = el(css)
            e.clear()
            e.send_keys(str(value))
            # the page saves settings on "change"; it reads .value when sending
            driver.execute_script("arguments[0].dispatchEvent(new Event('change'))", e)
            if e.get_attribute("value") != str(value):
                raise Failure("could not set %s to %r (it reads %r)" % (css, value, e.get_attribute("value")))

        # JS snapshot of the last assistant bubble: its text without the meta span.
        LAST = """
            const b = [...document.querySelectorAll('#messages .msg.assistant')].pop();
            if (!b) return null;
            const meta = b.querySelector('span.meta');
            const t = b.textContent;
            return { text: meta ? t.slice(0, t.length - meta.textContent.length) : t,
                     finish: b.dataset.finish || null, meta: meta ? meta.textContent : null,
                     elements: b.children.length, count: document.querySelectorAll('#messages .msg.assistant').length };
        """

        def last_bubble():
            return driver.execute_script(LAST)

        def send(message):
            before = len(driver.find_elements(By.CSS_SELECTOR, "#messages .msg.assistant"))
            box = el("#input")
            box.clear()
            box.send_keys(message)
            el("#send").click()
            wait_for("a new assistant bubble", lambda: (last_bubble() or {}).get("count", 0) == before + 1, 10)

        # a. the page loads and names the model
        driver.get(server.url("/"))
        if driver.title != "gptrain chat":
            raise Failure("page title is %r, not 'gptrain chat'" % driver.title)
        shown = wait_for("#model to name the model", lambda: (
            lambda t: t if t and t != "connecting..." else None)(el("#model").text), 15)
        if model_id not in shown or shown.startswith("model unknown"):
            raise Failure("#model reads %r; expected the model id %r" % (shown, model_id))
        print("ok a: page loaded, #model reads %r" % shown)

        # b. a greedy answer of at most 40 tokens streams in
        set_field("#max_tokens", 40)
        set_field("#temperature", 0)
        send("Tell me about the painter Jack Gisburn.")
        samples = []  # text lengths seen while the answer was still arriving
        t0 = time.time()
        while True:
            b = last_bubble()
            if b["finish"]:
                break
            if b["text"] and (not samples or len(b["text"]) != samples[-1]):
                samples.append(len(b["text"]))
            if time.time() - t0 > 180:
                raise Failure("the first answer did not finish within 180 s (lengths seen: %s)" % samples)
            time.sleep(0.03)
        elapsed = time.time() - t0
        if b["finish"] not in ("length", "stop"):
            raise Failure("first answer ended with data-finish=%r (meta %r), expected 'length' or 'stop'"
                          % (b["finish"], b["meta"]))
        if len(samples) < 2 or samples != sorted(samples):
            raise Failure("the answer did not grow while streaming: lengths sampled before it ended: %s" % samples)
        if b["elements"] != 1:
            raise Failure("the assistant bubble holds %d elements, expected only span.meta "
                          "(the reply must go in as text)" % b["elements"])
        print("ok b: answer streamed in %.1f s (text length sampled growing: %s, final %d chars), "
              "data-finish=%s, meta %r" % (elapsed, " < ".join(map(str, samples[:8])) +
                                           (" ..." if len(samples) > 8 else ""), len(b["text"]),
                                           b["finish"], b["meta"]))

        # c. Stop aborts a long answer and the server drops the sequence
        set_field("#max_tokens", 400)
        generated_before = server.health()["generated_tokens"]
        send("And what did he paint after that?")
        t0 = time.time()
        wait_for("the second answer's first text", lambda: (lambda b: b["text"] or b["finish"])(last_bubble()), 120)
        if last_bubble()["finish"]:
            raise Failure("the second answer ended (%r) before Stop could be clicked" % last_bubble()["finish"])
        if not el("#send").get_attribute("disabled") or el("#stop").get_attribute("disabled"):
            raise Failure("while streaming, #send should be disabled and #stop enabled")
        el("#stop").click()
        clicked = time.time()
        b = wait_for("data-finish after Stop", lambda: (lambda b: b if b["finish"] else None)(last_bubble()), 10)
        if b["finish"] != "stopped":
            raise Failure("after Stop the bubble has data-finish=%r (meta %r), expected 'stopped'" % (b["finish"], b["meta"]))
        if el("#send").get_attribute("disabled") is not None:
            raise Failure("#send is still disabled after Stop")
        if el("#stop").get_attribute("disabled") is None:
            raise Failure("#stop is still enabled after Stop")
        health = None
        while time.time() - clicked < 3:
            health = server.health()
            if health["running"] == 0 and health["waiting"] == 0:
                break
            time.sleep(0.1)
        else:
            raise Failure("GET /health still shows a sequence 3 s after Stop: %s" % json.dumps(health))
        tokens = health["generated_tokens"] - generated_before
        if tokens >= 200:
            raise Failure("the server generated %d tokens of the stopped answer (max_tokens 400): "
                          "it did not cancel it early" % tokens)
        print("ok c: Stop after %.1f s -> data-finish=stopped, #send enabled, /health running=0 after %.2f s, "
              "%d tokens generated of 400" % (clicked - t0, time.time() - clicked, tokens))

        # d. history: both exchanges are on the page
        users = len(driver.find_elements(By.CSS_SELECTOR, "#messages .msg.user"))
        bots = len(driver.find_elements(By.CSS_SELECTOR, "#messages .msg.assistant"))
        errors = [e.text for e in driver.find_elements(By.CSS_SELECTOR, "#messages .msg.error")]
        if (users, bots) != (2, 2) or errors:
            raise Failure("expected 2 user and 2 assistant bubbles and no error, found %d, %d, errors %s"
                          % (users, bots, errors))
        stored = driver.execute_script("return JSON.parse(localStorage.getItem('gptrain.history') || '[]')")
        roles = [m.get("role") for m in stored]
        if roles != ["user", "assistant", "user", "assistant"]:
            raise Failure("localStorage gptrain.history holds roles %s" % roles)
        print("ok d: history kept: 2 user + 2 assistant bubbles (localStorage roles %s)" % ",".join(roles))

        # e. screenshot
        os.makedirs(os.path.dirname(os.path.abspath(screenshot)), exist_ok=True)
        if not driver.save_screenshot(screenshot) or os.path.getsize(screenshot) == 0:
            raise Failure("could not write the screenshot " + screenshot)
        print("ok e: screenshot %s (%d bytes)" % (screenshot, os.path.getsize(screenshot)))

        # the browser console must hold no JS error (a missing favicon is fine)
        console = driver.get_log("browser")
        bad = [m for m in console if m.get("level") == "SEVERE" and "favicon.ico" not in m.get("message", "")]
        if bad:
            raise Failure("browser console errors:\n" + "\n".join("  " + m["message"] for m in bad))
        print("ok console: %d message(s), no errors" % len(console))
        print("PASS chat page")
        return 0
    except Failure as e:
        print("FAIL: %s" % e)
        if driver is not None:
            try:
                for m in driver.get_log("browser"):
                    print("  console %s: %s" % (m.get("level"), m.get("message")))
            except Exception:
                pass
        print("server output (last lines):\n" + server.log())
        return 1
    except Exception as e:  # selenium / HTTP trouble: a failure, with what went wrong
        print("FAIL: %s: %s" % (type(e).__name__, e))
        print("server output (last lines):\n" + server.log())
        return 1
    finally:
        if driver is not None:
            try:
                driver.quit()
            except Exception:
                pass
        server.stop()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
