"""``python -m cube_detect review DATASET``: review and correct a data set's boxes in the browser.

A small web server (Flask, served by waitress) over a labelImg data set (``train/`` and
``test/``): the page shows every image with its boxes, class names and pre-annotation scores, a
list with each image's status (unreviewed, reviewed, no XML, bad) and the data set's figures
(those of ``stats``). What is read, checked and saved, and how conflicts are refused, is
:class:`cube_detect.review_store.ReviewStore`'s; this module is the web app and its server.

- Security: binds 127.0.0.1 by default and then only answers requests whose ``Host`` is a
  loopback name (no DNS rebinding). Any other address needs the random token printed in the URL
  (``?token=``, or the ``X-Review-Token`` header the page sends), checked on every request; the
  token is never logged (log lines are scrubbed: :mod:`cube_detect.webguard`). Only images and
  XML files inside the data set are served or written: fixed routes, file names checked, real
  paths resolved and checked against the data set's real path (no ``..``, no encoded
  separators, no symbolic link leading out). waitress (a production WSGI server) bounds
  threads, connections and idle time, so half-sent requests cannot pin the server.
- The page (``review_static/``: HTML, CSS and plain JavaScript, no CDN) polls a cheap endpoint,
  so images saved meanwhile (capture running) show up without a reload.

From another program, e.g. the capture node: ``url, stop = serve_in_thread(dataset)``.
Flask and waitress are workstation requirements (``requirements/review.txt``), not robot ones:
without them :func:`create_app`, :func:`serve_in_thread` and the command raise
:class:`ReviewUnavailable` with the line to install them.
"""

from __future__ import annotations

import argparse
import hmac
import json
import logging
import os
import socket
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, Optional, Tuple

from cube_detect import requirements_file
from cube_detect.errors import CubeDetectError
from cube_detect.labels import LABELS_HELP
from cube_detect.review_store import ReviewError, ReviewStore
from cube_detect.webguard import TOKEN_HEADER, forget_token, host_name, is_loopback, scrub, scrub_logs, token_for

if TYPE_CHECKING:  # Flask is imported when a server is made, never by `import cube_detect.review`
    from flask import Flask

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
STATIC_DIR = Path(__file__).with_name("review_static")
#: The page's files; nothing else is served from STATIC_DIR.
STATIC_FILES = ("index.html", "review.css", "review.js")
INSTALL_HINT = f"pip install -r {requirements_file('review')} (or: pip install 'flask>=2.2' 'waitress>=3.0')"
#: The request body's limit (Flask answers 413 beyond it; waitress a little later).
MAX_BODY_BYTES = 1 << 20

#: waitress's settings (https://docs.pylonsproject.org/projects/waitress/en/stable/arguments.html).
#: Requests are parsed by one asynchronous loop and only complete ones reach the worker threads,
#: so a half-sent request holds a connection (dropped after ``channel_timeout`` seconds without
#: a byte), never a thread. ``connection_limit`` fits under the common 1024 open-file limit with
#: room for the capture node's own files; beyond it new connections wait in the backlog until
#: idle ones are dropped. ``asyncore_use_poll``: poll(), not select() and its 1024-descriptor cap.
SERVER_SETTINGS: Dict[str, Any] = {
    "threads": 8,
    "connection_limit": 600,
    "channel_timeout": 20,
    "cleanup_interval": 5,
    "backlog": 1024,
    "asyncore_use_poll": True,
    "max_request_header_size": 64 << 10,
    "max_request_body_size": MAX_BODY_BYTES + (64 << 10),
    "expose_tracebacks": False,
    "ident": "cube_detect-review",
}


class ReviewUnavailable(CubeDetectError):
    """The review page cannot run here (Flask or waitress missing); the message says what to install."""


def _flask() -> Any:
    try:
        import flask
    except ImportError:
        raise ReviewUnavailable(f"the review page needs Flask, which is not installed: {INSTALL_HINT}") from None
    return flask


def _waitress() -> Any:
    try:
        import waitress.server
        import waitress.wasyncore
    except ImportError:
        raise ReviewUnavailable(f"the review page needs waitress, which is not installed: {INSTALL_HINT}") from None
    return waitress


#: Loggers that may see a request: ours (also the Flask app's), waitress's, Werkzeug's.
_SCRUBBED_LOGGERS = (__name__, "waitress", "waitress.queue", "werkzeug")


# --------------------------------------------------------------------------- web side


def _json_body(data: bytes) -> Any:
    """The request's JSON, or ReviewError 400: malformed, nested too deep for the parser
    (RecursionError), or a number the parser refuses (more than 4300 digits)."""
    try:
        return json.loads(data)
    except RecursionError:
        raise ReviewError("the JSON body is nested too deep") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, the int digit limit
        raise ReviewError(f"the body is not valid JSON: {str(exc)[:120]}") from None


def create_app(dataset: os.PathLike, token: Optional[str] = None, loopback_only: bool = True,
               labels_file: Optional[os.PathLike] = None) -> Flask:
    """The review page's WSGI app over ``dataset``.

    ``token``: when given, every request must carry it (``?token=`` or the ``X-Review-Token``
    header). ``loopback_only``: answer only requests whose ``Host`` is a loopback name (set
    when bound to a loopback address: a web page elsewhere cannot reach the server by renaming
    itself to 127.0.0.1). ``labels_file``: the classes (see
    :func:`cube_detect.review_store.dataset_labels`). Raises ReviewUnavailable without Flask,
    CubeDetectError for a data set that is not one.
    """
    flask = _flask()
    store = ReviewStore(dataset, labels_file=labels_file)
    scrub_logs(_SCRUBBED_LOGGERS, token)
    app = flask.Flask(__name__, static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.config["cube_detect.review.store"] = store
    request = flask.request

    def answer(payload: Dict[str, Any], status: int = 200) -> Any:
        response = flask.jsonify(payload)
        response.status_code = status
        return response

    @app.before_request
    def guard() -> Any:
        if loopback_only and not is_loopback(host_name(request.host)):
            return answer({"error": f"host {request.host!r} refused: open the page by its printed 127.0.0.1 URL"},
                          403)
        if token is not None:
            given = request.args.get("token") or request.headers.get(TOKEN_HEADER) or ""
            if not hmac.compare_digest(given.encode(), token.encode()):
                return answer({"error": "missing or wrong token: open the page by the URL the server printed, "
                                        "with its ?token="}, 403)
        return None

    @app.after_request
    def headers(response: Any) -> Any:
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"  # the token never leaves in a Referer
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Content-Security-Policy"] = (
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
            "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
        # Another site may not embed or probe what this server answers (e.g. file names by <img> sizes).
        response.headers["Cross-Origin-Resource-Policy"] = "same-origin"
        if request.path.startswith("/api/"):
            response.headers["Cache-Control"] = "no-store"
        if response.status_code >= 400:  # refused and failed requests only (the page polls every 2 s)
            query = request.query_string.decode("latin-1")
            log.info("review page: %s %s%s -> %d", request.method, request.path, f"?{query}" if query else "",
                     response.status_code)  # the logger's filter hides any token
        return response

    @app.errorhandler(ReviewError)
    def review_error(exc: ReviewError) -> Any:
        payload: Dict[str, Any] = {"error": str(exc)}
        if exc.current is not None:
            payload["current"] = exc.current
        return answer(payload, exc.status)

    def plain_error(status: int, message: str) -> Callable[[Any], Any]:
        return lambda _exc: answer({"error": message}, status)

    for status, message in ((400, "bad request"), (404, "not found"), (405, "method not allowed"),
                            (413, "request too large")):
        app.register_error_handler(status, plain_error(status, message))

    @app.errorhandler(500)
    def failed(exc: Any) -> Any:
        cause = getattr(exc, "original_exception", None) or exc
        log.error("review page: %s %s failed: %r", request.method, request.path, cause)
        return answer({"error": f"server error: {cause}"}, 500)

    @app.get("/")
    def index() -> Any:
        text = (STATIC_DIR / "index.html").read_text(encoding="utf-8")
        query = f"?token={token}" if token else ""  # token_urlsafe: nothing to escape
        response = flask.make_response(text.replace("{{query}}", query))
        response.headers["Content-Type"] = "text/html; charset=utf-8"
        response.headers["Cache-Control"] = "no-store"
        return response

    @app.get("/static/<name>")
    def static_file(name: str) -> Any:
        if name not in STATIC_FILES:
            flask.abort(404)
        return flask.send_file(STATIC_DIR / name, max_age=0)

    @app.get("/api/poll")
    def poll() -> Any:
        return answer({"generation": store.generation()})

    @app.get("/api/images")
    def images() -> Any:
        generation = store.generation()
        entries = store.entries()
        return answer({"generation": generation, "root": str(store.root), "labels": store.labels,
                       "images": [e.summary() for e in entries], "summary": store.summary(entries)})

    @app.get("/api/summary")
    def summary() -> Any:
        return answer(store.summary())

    @app.get("/api/ann/<split>/<name>")
    def load(split: str, name: str) -> Any:
        return answer(store.entry(split, name).record())

    @app.put("/api/ann/<split>/<name>")
    def save(split: str, name: str) -> Any:
        # JSON only: a cross-site form cannot send it without a CORS preflight, which we never grant.
        expected = "expected a JSON object {version, boxes, verified} (Content-Type: application/json)"
        if not request.is_json:
            raise ReviewError(expected, 415)
        body = _json_body(request.get_data(cache=False))
        if not isinstance(body, dict):
            raise ReviewError(expected)
        return answer(store.save(split, name, body.get("version"), body.get("boxes"), body.get("verified")).record())

    @app.get("/image/<split>/<name>")
    def image(split: str, name: str) -> Any:
        path = store.image_path(split, name)
        try:
            return flask.send_file(path.resolve(), max_age=0, conditional=True)
        except (OSError, RuntimeError) as exc:  # unreadable, vanished, a loop made meanwhile
            raise ReviewError(f"{split}/{name}: cannot read: {getattr(exc, 'strerror', None) or exc}", 404) from None

    return app


# --------------------------------------------------------------------------- serving


def _make_server(dataset: os.PathLike, host: str, port: int, token: Optional[str],
                 labels_file: Optional[os.PathLike] = None,
                 settings: Optional[Dict[str, Any]] = None) -> Tuple[Any, str]:
    """A waitress server of the page, listening (not yet serving), and the page's URL."""
    _flask()
    waitress = _waitress()
    if token is None:
        token = token_for(host)
    app = create_app(dataset, token=token, loopback_only=is_loopback(host), labels_file=labels_file)
    # Our own listening socket: a bind error is one clear line, whatever the server would print.
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(socket.getaddrinfo(host, port, family, socket.SOCK_STREAM)[0][4])
        sock.listen(int((settings or {}).get("backlog", SERVER_SETTINGS["backlog"])))
        bound_port = int(sock.getsockname()[1])
        server = waitress.server.create_server(app, sockets=[sock], **dict(SERVER_SETTINGS, **(settings or {})))
    except OSError as exc:  # socket.gaierror too
        sock.close()
        raise CubeDetectError(f"cannot serve the review page on {host}:{port}: {exc.strerror or exc}") from None
    except BaseException:
        sock.close()
        raise
    shown = host if is_loopback(host) else (socket.gethostname() if host in ("0.0.0.0", "::", "") else host)
    if ":" in shown:
        shown = f"[{shown}]"
    url = f"http://{shown}:{bound_port}/" + (f"?token={token}" if token else "")
    return server, url


def _close_server(server: Any) -> None:
    """Close the listening socket and every connection (from the server's own loop thread when it
    runs: waitress's trigger), then stop its worker threads."""
    from waitress import wasyncore

    wasyncore.close_all(server._map, ignore_all=True)
    server.task_dispatcher.shutdown(timeout=5)


def serve_in_thread(dataset: os.PathLike, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
                    token: Optional[str] = None, labels_file: Optional[os.PathLike] = None,
                    settings: Optional[Dict[str, Any]] = None) -> Tuple[str, Callable[[], None]]:
    """Serve the review page of ``dataset`` from a daemon thread: ``(url, stop)``.

    For the capture node (``review:=true``). ``port=0`` picks a free port (the URL has it). A
    host other than a loopback address gets a random token (or ``token``), in the URL: print it
    to the user's terminal, never to a log (:func:`cube_detect.webguard.scrub` gives the URL without it).
    ``labels_file``: the classes, as ``stats --labels`` (default: found in the data set).
    ``settings``: waitress settings over :data:`SERVER_SETTINGS` (tests shorten timeouts).
    ``stop()`` closes the port and every connection, waits for the threads; calling it twice is
    harmless. Raises ReviewUnavailable (Flask or waitress missing: the message says what to pip
    install) or CubeDetectError (data set missing, port taken).
    """
    server, url = _make_server(dataset, host, port, token, labels_file, settings)
    thread = threading.Thread(target=server.run, name="cube_detect-review", daemon=True)
    thread.start()
    stopped = threading.Event()

    def stop() -> None:
        if stopped.is_set():
            return
        stopped.set()
        closed = threading.Event()

        def close_here() -> None:  # runs in the server's loop thread, between two polls
            from waitress import wasyncore

            wasyncore.close_all(server._map, ignore_all=True)
            closed.set()

        try:
            server.trigger.pull_trigger(close_here)
        except OSError:  # the loop is gone already
            pass
        thread.join(timeout=5)
        if not closed.is_set():
            _close_server(server)
        else:
            server.task_dispatcher.shutdown(timeout=5)
        if "?token=" in url:
            forget_token(url.split("?token=", 1)[1])

    log.info("review page: %s", scrub(url))
    return url, stop


# --------------------------------------------------------------------------- command


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dataset", metavar="DATASET", help="directory with train/ and test/ (labelImg VOC)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0: any free)")
    parser.add_argument("--host", default=DEFAULT_HOST,
                        help=f"address to listen on (default {DEFAULT_HOST}: this machine only; 0.0.0.0: "
                             "every interface, with a random token in the URL)")
    parser.add_argument("--labels", type=Path, metavar="FILE",
                        help=LABELS_HELP + "; the page's keys 1, 2, ... follow the ids")


def run(args: argparse.Namespace) -> int:
    if not 0 <= args.port <= 65535:
        raise CubeDetectError(f"--port must be between 0 and 65535, got {args.port}")
    server, url = _make_server(args.dataset, args.host, args.port, None, args.labels)
    # The terminal only: the URL with its token is printed here once and never logged.
    print(f"review: {url}  (Ctrl-C to stop)", flush=True)
    if not is_loopback(args.host):
        print("review: anyone with this URL (token included) can edit the data set; keep it to yourself",
              flush=True)
    try:
        server.run()  # returns on Ctrl-C (waitress stops its worker threads)
    finally:
        _close_server(server)
    return 0


__all__ = ["ReviewUnavailable", "create_app", "serve_in_thread"]
