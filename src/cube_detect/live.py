"""The detector's live view: one small read-only page showing what the robot sees, for a
headless robot over SSH (``detect.launch web:=true``): the last annotated frame, the sorted
labels, the protocol's state and parameters, the backend; it refreshes by itself.

Standard library only (``http.server``): it runs where the detector runs, often the robot, and
must not make its requirements heavier. Same rules as the review page (:mod:`webguard`):
127.0.0.1 by default, a random ``?token=`` on any other address, Host header checked, the token
never logged, every connection's socket times out (a half-open one cannot pin a thread).
"""

from __future__ import annotations

import json
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple
from urllib.parse import parse_qs, urlsplit

import cv2
import numpy as np

from cube_detect import webguard
from cube_detect.inference import Detection
from cube_detect.visualize import draw_detections

DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 8766
#: Seconds a connection may stay silent before its socket is closed.
REQUEST_TIMEOUT_S = 10.0
#: The frame is shown at most this wide (a 640x480 JPEG is ~40 kB over the robot's Wi-Fi).
FRAME_WIDTH = 640


class LiveView:
    """What the page shows; the node writes, the server reads (thread-safe)."""

    def __init__(self, backend: str, classes: Dict[int, str], params: Callable[[], Dict[str, Any]]):
        self._lock = threading.Lock()
        self._jpeg: Optional[bytes] = None
        self._status: Dict[str, Any] = {"backend": backend, "classes": {str(k): v for k, v in classes.items()},
                                        "frame": 0, "labels": [], "scores": [], "state": "starting",
                                        "updated": None, "summary": ""}
        self._params = params

    def update(self, image: np.ndarray, detections: Sequence[Detection], summary: str = "") -> None:
        """A new cycle's frame and its detections (drawn, scaled and encoded here)."""
        drawn = draw_detections(image, list(detections))
        if drawn.shape[1] > FRAME_WIDTH:
            scale = FRAME_WIDTH / drawn.shape[1]
            drawn = cv2.resize(drawn, (FRAME_WIDTH, int(round(drawn.shape[0] * scale))), interpolation=cv2.INTER_AREA)
        ok, jpeg = cv2.imencode(".jpg", drawn, [cv2.IMWRITE_JPEG_QUALITY, 80])
        with self._lock:
            if ok:
                self._jpeg = jpeg.tobytes()
            self._status.update(frame=self._status["frame"] + 1, labels=[d.label for d in detections],
                                scores=[round(float(d.score), 3) for d in detections], updated=time.time(),
                                summary=summary)

    def set_state(self, state: str) -> None:
        with self._lock:
            self._status["state"] = state

    def status(self) -> Dict[str, Any]:
        with self._lock:
            status = dict(self._status)
        try:
            status["params"] = self._params()
        except Exception as exc:  # a master that went away: the page says so
            status["params"] = {"error": str(exc)}
        status["now"] = time.time()
        return status

    def jpeg(self) -> Optional[bytes]:
        with self._lock:
            return self._jpeg


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>cube_detect: live view</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="live.css"><link rel="icon" href="data:,"></head>
<body>
<header><h1>cube_detect: what the detector sees</h1><span id="conn">connecting...</span></header>
<main>
<figure><img id="frame" alt="no frame yet: waiting for the first cycle"><figcaption id="caption">no frame yet
</figcaption></figure>
<section>
<h2>Sorted labels</h2><p id="labels" class="big">-</p>
<h2>Protocol</h2><p id="state">-</p>
<table id="params"></table>
<h2>Backend</h2><p id="backend">-</p>
</section>
</main>
<script src="live.js"></script>
</body></html>
"""

CSS = """body{font-family:system-ui,sans-serif;margin:0;background:#111;color:#eee}
header{display:flex;justify-content:space-between;align-items:center;padding:.5em 1em;background:#222}
h1{font-size:1.1em;margin:0}h2{font-size:.9em;color:#aaa;margin:1em 0 .2em}
main{display:flex;flex-wrap:wrap;gap:1em;padding:1em}figure{margin:0}
img{max-width:min(640px,95vw);border:1px solid #444;background:#000;min-height:120px}
.big{font-size:2em;font-weight:bold;margin:0}table{border-collapse:collapse}
td{padding:.1em .6em;border-bottom:1px solid #333}#conn.bad{color:#f66}
"""

SCRIPT = """'use strict';
const token = new URLSearchParams(location.search).get('token');
const q = (extra) => { const p = new URLSearchParams(extra || {}); if (token) p.set('token', token);
  const s = p.toString(); return s ? '?' + s : ''; };
let shown = -1;
function text(id, value) { document.getElementById(id).textContent = value; }
async function refresh() {
  try {
    const r = await fetch('status.json' + q(), {cache: 'no-store'});
    if (!r.ok) throw new Error('HTTP ' + r.status);
    const s = await r.json();
    text('conn', 'live'); document.getElementById('conn').className = '';
    text('labels', s.labels.length ? s.labels.join('  ') : (s.frame ? 'no face' : '-'));
    text('state', s.state);
    text('backend', s.backend);
    const table = document.getElementById('params'); table.textContent = '';
    for (const [name, value] of Object.entries(s.params || {})) {
      const row = table.insertRow(); row.insertCell().textContent = name;
      row.insertCell().textContent = value === null ? 'not set' : JSON.stringify(value);
    }
    if (s.frame !== shown && s.frame > 0) {
      shown = s.frame;
      document.getElementById('frame').src = 'frame.jpg' + q({n: s.frame});
      const age = s.updated ? Math.round(s.now - s.updated) : 0;
      text('caption', 'cycle frame ' + s.frame + ': ' + (s.scores.map((x, i) => s.labels[i] + ' ' +
        x.toFixed(2)).join(', ') || 'no face') + (s.summary ? ' (' + s.summary + ')' : ''));
    }
    document.body.dataset.frame = String(s.frame);
  } catch (e) {
    text('conn', 'no answer from the detector (' + e.message + ')');
    document.getElementById('conn').className = 'bad';
  }
}
refresh(); setInterval(refresh, 700);
"""

_FILES = {"/": ("text/html; charset=utf-8", PAGE), "/live.css": ("text/css; charset=utf-8", CSS),
          "/live.js": ("text/javascript; charset=utf-8", SCRIPT)}


def _handler(view: LiveView, token: Optional[str], loopback_only: bool, log: Callable[[str], None]) -> type:
    class Handler(BaseHTTPRequestHandler):
        timeout = REQUEST_TIMEOUT_S  # the socket's: a silent (half-open) connection is closed
        server_version = "cube_detect-live"
        sys_version = ""

        def log_message(self, format: str, *args: Any) -> None:
            log(webguard.scrub(format % args, (token,) if token else ()))

        def log_request(self, code: Any = "-", size: Any = "-") -> None:
            if isinstance(code, int) and code >= 400 or isinstance(code, HTTPStatus) and code.value >= 400:
                super().log_request(code, size)

        def answer(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            for name, value in webguard.HEADERS.items():
                self.send_header(name, value)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def do_GET(self) -> None:  # http.server calls do_<METHOD>
            url = urlsplit(self.path)
            given = parse_qs(url.query).get("token", [None])[0]
            if not webguard.allowed(self.headers.get("Host", ""), given, token, loopback_only):
                self.answer(403, b"forbidden: this page needs its URL's token\n", "text/plain; charset=utf-8")
                return
            if url.path in _FILES:
                content_type, text = _FILES[url.path]
                self.answer(200, text.encode("utf-8"), content_type)
            elif url.path == "/status.json":
                self.answer(200, json.dumps(view.status()).encode("utf-8"), "application/json")
            elif url.path == "/frame.jpg":
                jpeg = view.jpeg()
                if jpeg is None:
                    self.answer(404, b"no frame yet\n", "text/plain; charset=utf-8")
                else:
                    self.answer(200, jpeg, "image/jpeg")
            else:
                self.answer(404, b"not found\n", "text/plain; charset=utf-8")

        do_HEAD = do_GET

    return Handler


def serve_live(view: LiveView, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
               log: Callable[[str], None] = lambda line: None) -> Tuple[str, Callable[[], None]]:
    """Serve ``view`` in a daemon thread; returns (the page's URL, with ``?token=`` off loopback,
    and an idempotent ``stop()``). ``port`` 0 = any free port. Raises OSError (port taken)."""
    token = webguard.token_for(host)
    server = ThreadingHTTPServer((host, port), _handler(view, token, webguard.is_loopback(host), log))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="live_view", daemon=True)
    thread.start()
    shown_host = f"[{host}]" if ":" in host else host
    url = f"http://{shown_host}:{server.server_address[1]}/" + (f"?token={token}" if token else "")
    stopped: List[bool] = []

    def stop() -> None:
        if not stopped:
            stopped.append(True)
            server.shutdown()
            server.server_close()
            thread.join(5)

    return url, stop
