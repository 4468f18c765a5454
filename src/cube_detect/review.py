"""``python -m cube_detect review DATASET``: review and correct a data set's boxes in the browser.

A small local web server (Flask) over a labelImg data set (``train/`` and ``test/``): the page
shows every image with its boxes, class names and pre-annotation scores, a list with each
image's status (unreviewed, reviewed, no XML, bad XML) and the data set's figures (those of
``stats``). Every change is saved at once, atomically, with :func:`cube_detect.dataset.write_voc`
(labelImg's Pascal VOC layout); an image accepted as reviewed gets labelImg's
``verified="yes"``.

- Conflicts: every load returns the XML's ``version`` (a hash of its bytes, ``"none"`` when there
  is no XML); a save names the version it edited and is refused (HTTP 409) when the file changed
  since, e.g. a second tab or another tool. The page then reloads that image.
- Security: binds 127.0.0.1 by default and then only answers requests whose ``Host`` is a
  loopback name (no DNS rebinding). Any other address needs the random token printed in the URL
  (``?token=``, or the ``X-Review-Token`` header the page sends), checked on every request. Only
  images and XML files inside the data set are served or written: fixed routes, file names
  checked, real paths resolved and checked against the data set's real path (no ``..``, no
  encoded separators, no symbolic link leading out).
- The page (``review_static/``: HTML, CSS and plain JavaScript, no CDN) polls a cheap endpoint,
  so images saved meanwhile (capture running) show up without a reload.

From another program, e.g. the capture node: ``url, stop = serve_in_thread(dataset)``.
Flask is a workstation requirement (``requirements/review.txt``), not a robot one: without it
:func:`create_app`, :func:`serve_in_thread` and the command raise :class:`ReviewUnavailable`
with the line to install it.
"""

from __future__ import annotations

import argparse
import errno
import hashlib
import hmac
import ipaddress
import logging
import math
import os
import re
import secrets
import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Tuple

from cube_detect.dataset import (
    CLASSES_FILE,
    IMAGE_SUFFIXES,
    SPLITS,
    Annotation,
    LabeledBox,
    Sample,
    count_split,
    find_label_maps,
    format_stats,
    image_size,
    images_root,
    names_in,
    read_voc,
    resolve_labels,
    write_voc,
)
from cube_detect.errors import CubeDetectError, DatasetError
from cube_detect.labels import LABELS, read_classes_txt

if TYPE_CHECKING:  # Flask is imported when a server is made, never by `import cube_detect.review`
    from flask import Flask

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
STATIC_DIR = Path(__file__).with_name("review_static")
#: The page's files; nothing else is served from STATIC_DIR.
STATIC_FILES = ("index.html", "review.css", "review.js")
INSTALL_HINT = "pip install -r requirements/review.txt (or: pip install 'flask>=2.2')"
TOKEN_HEADER = "X-Review-Token"
#: Image file names the server accepts in a URL: no separators, no leading dot, known suffix.
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+ -]{0,200}$")
MAX_BOXES = 500

STATUS_UNREVIEWED = "unreviewed"
STATUS_REVIEWED = "reviewed"
STATUS_NO_XML = "no-xml"
STATUS_BAD = "bad"


class ReviewUnavailable(CubeDetectError):
    """The review page cannot run here (Flask missing); the message says what to install."""


class ReviewError(CubeDetectError):
    """A request the store refuses; ``status`` is the HTTP status to answer."""

    def __init__(self, message: str, status: int = 400, current: Optional[Dict[str, Any]] = None):
        super().__init__(message)
        self.status = status
        self.current = current


def _flask() -> Any:
    try:
        import flask
    except ImportError:
        raise ReviewUnavailable(f"the review page needs Flask, which is not installed: {INSTALL_HINT}") from None
    return flask


# --------------------------------------------------------------------------- data set side


def dataset_labels(root: os.PathLike, labels_file: Optional[os.PathLike] = None) -> Dict[int, str]:
    """The data set's classes, ``{id: name}``; the page's key N is the N-th class by id.

    As ``stats`` and ``train`` find them (:func:`cube_detect.dataset.resolve_labels`: ``labels_file``,
    else a ``*.pbtxt`` label map in the data set, else the names in its XML files), except for a
    data set with neither map nor named object yet (fresh captures without pre-annotation):
    labelImg's ``classes.txt`` there, else the digits.
    """
    root = Path(root)
    splits = images_root(root)
    if labels_file is None and not find_label_maps(root) and not names_in(splits / s for s in SPLITS):
        for classes in (root / CLASSES_FILE, splits / CLASSES_FILE):
            if classes.is_file():
                return read_classes_txt(classes)
        return dict(LABELS)
    return resolve_labels([root], None if labels_file is None else Path(labels_file))


Stamp = Optional[Tuple[int, int, int, int]]


def _stamp(path: Path) -> Stamp:
    """What changes when a file is rewritten (atomic replace gives a new inode, a write a new mtime)."""
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size, st.st_ctime_ns)


def _version(data: Optional[bytes]) -> str:
    return "none" if data is None else hashlib.sha256(data).hexdigest()[:20]


@dataclass
class Entry:
    """One image of the data set and what its XML says."""

    split: str
    name: str
    image_path: Path
    xml_path: Path
    stamp: Tuple[Stamp, Stamp]
    status: str
    version: str
    annotation: Optional[Annotation] = None
    width: int = 0
    height: int = 0
    error: str = ""

    @property
    def key(self) -> str:
        return f"{self.split}/{self.name}"

    def summary(self) -> Dict[str, Any]:
        """The side list's row."""
        boxes = self.annotation.boxes if self.annotation else []
        scores = [b.score for b in boxes if b.score is not None]
        classes: Dict[str, int] = {}
        for box in boxes:
            classes[box.label] = classes.get(box.label, 0) + 1
        return {"id": self.key, "split": self.split, "name": self.name, "status": self.status,
                "faces": len(boxes), "classes": classes, "min_score": min(scores) if scores else None,
                "error": self.error, "version": self.version}

    def record(self) -> Dict[str, Any]:
        """Everything the page needs to show and edit the image."""
        boxes = self.annotation.boxes if self.annotation else []
        return dict(self.summary(), width=self.width, height=self.height,
                    verified=bool(self.annotation and self.annotation.verified),
                    boxes=[{"label": b.label, "xmin": b.xmin, "ymin": b.ymin, "xmax": b.xmax, "ymax": b.ymax,
                            "score": b.score} for b in boxes])


class ReviewStore:
    """The data set's images and annotations for the page: scans, caches, checks and saves.

    Thread-safe. Files are re-read only when their stat changes; a save always re-reads the XML
    it replaces and compares versions under the store's lock.
    """

    def __init__(self, root: os.PathLike, labels: Optional[Dict[int, str]] = None,
                 labels_file: Optional[os.PathLike] = None):
        self.root = Path(root).expanduser().absolute()
        if not self.root.is_dir():
            raise DatasetError(f"{self.root}: data set directory does not exist")
        self.real_root = self.root.resolve()
        #: where train/ and test/ are: the root, or root/images (the course's layout)
        self.splits_root = images_root(self.root)
        self.label_map = dict(labels) if labels is not None else dataset_labels(self.root, labels_file)
        self.labels = [name for _, name in sorted(self.label_map.items())]
        self._lock = threading.RLock()
        self._cache: Dict[str, Entry] = {}

    # ------------------------------------------------------------------ paths

    def inside(self, path: Path) -> bool:
        """Whether ``path``'s real path (links followed) is inside the data set's real path."""
        try:
            real = path.resolve()
        except (OSError, RuntimeError):  # a link loop
            return False
        return real == self.real_root or self.real_root in real.parents

    def image_path(self, split: str, name: str) -> Path:
        """The image ``split/name``, checked: ReviewError 404 for anything that is not one."""
        if split not in SPLITS or not _SAFE_NAME.match(name) or ".." in name \
                or os.path.splitext(name)[1].lower() not in IMAGE_SUFFIXES:
            raise ReviewError(f"no such image: {split}/{name}", 404)
        path = self.splits_root / split / name
        if not self.inside(path) or not self.inside(path.with_suffix(".xml")):
            raise ReviewError(f"{split}/{name} leads out of the data set: refused", 404)
        if not path.is_file():
            raise ReviewError(f"no such image: {split}/{name}", 404)
        return path

    # ------------------------------------------------------------------ listing

    def _listing(self) -> List[Tuple[str, str, Path, Path, Tuple[Stamp, Stamp], str]]:
        """(split, name, image, xml, stamps, problem) for every image file, without parsing anything.

        Real paths are resolved only for symbolic links (and once per split folder): cheap enough
        to run at every poll of a data set of thousands of images.
        """
        rows = []
        for split in SPLITS:
            folder = self.splits_root / split
            try:
                with os.scandir(folder) as scan:
                    found = {entry.name: entry for entry in scan}
            except OSError:
                continue
            folder_inside = self.inside(folder)
            stems: Dict[str, List[str]] = {}
            for name in sorted(found):
                if not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES:
                    stems.setdefault(os.path.splitext(name)[0], []).append(name)

            for stem, images in stems.items():
                xml = folder / f"{stem}.xml"
                for name in images:
                    image = folder / name
                    if not found[name].is_file():
                        continue
                    problem = ""
                    if len(images) > 1:
                        problem = f"several images share the stem {stem!r}: {', '.join(images)}"
                    elif not _SAFE_NAME.match(name):
                        problem = "file name has characters the page does not serve"
                    elif not all(self.inside(path) if path.name in found and found[path.name].is_symlink()
                                 else folder_inside for path in (image, xml)):
                        problem = "a link that leads out of the data set"
                    rows.append((split, name, image, xml, (_stamp(image), _stamp(xml)), problem))
        return rows

    def generation(self) -> str:
        """Changes whenever an image or XML is added, removed or rewritten: what the page polls."""
        digest = hashlib.sha256()
        for split, name, _, _, stamps, _ in self._listing():
            digest.update(repr((split, name, stamps)).encode())
        return digest.hexdigest()[:20]

    def _read(self, split: str, name: str, image: Path, xml: Path, stamps: Tuple[Stamp, Stamp],
              problem: str = "") -> Entry:
        def bad(error: str, version: str = "none", annotation: Optional[Annotation] = None) -> Entry:
            return Entry(split, name, image, xml, stamps, STATUS_BAD, version, annotation, error=error)

        if problem:
            return bad(problem)
        try:
            width, height = image_size(image)
        except DatasetError as exc:
            return bad(str(exc))
        data: Optional[bytes] = None
        annotation: Optional[Annotation] = None
        for _ in range(5):  # a consistent (bytes, annotation) pair while someone rewrites the file
            try:
                data = xml.read_bytes()
            except FileNotFoundError:
                return Entry(split, name, image, xml, stamps, STATUS_NO_XML, "none", None, width, height)
            except OSError as exc:
                return bad(f"{xml}: cannot read: {exc}")
            try:
                annotation = read_voc(xml, self.labels)
            except DatasetError as exc:
                return bad(str(exc), _version(data))
            try:
                if xml.read_bytes() == data:
                    break
            except OSError:
                continue
        version = _version(data)
        if annotation is None:
            return bad(f"{xml}: keeps changing", version)
        if (annotation.width, annotation.height) != (width, height):
            return bad(f"{xml}: <size> says {annotation.width}x{annotation.height} but {name} is {width}x{height}",
                       version)
        status = STATUS_REVIEWED if annotation.verified else STATUS_UNREVIEWED
        return Entry(split, name, image, xml, stamps, status, version, annotation, width, height)

    def entries(self) -> List[Entry]:
        """Every image, in split then name order (re-reads only what changed on disk)."""
        with self._lock:
            listing = self._listing()
            fresh: Dict[str, Entry] = {}
            for split, name, image, xml, stamps, problem in listing:
                key = f"{split}/{name}"
                cached = self._cache.get(key)
                if cached is None or cached.stamp != stamps or problem:
                    cached = self._read(split, name, image, xml, stamps, problem)
                fresh[key] = cached
            self._cache = fresh
            return list(fresh.values())

    def entry(self, split: str, name: str) -> Entry:
        """One image, read now from disk (never from the cache)."""
        image = self.image_path(split, name)
        xml = image.with_suffix(".xml")
        with self._lock:
            entry = self._read(split, name, image, xml, (_stamp(image), _stamp(xml)))
            self._cache[entry.key] = entry
            return entry

    def summary(self, entries: Optional[List[Entry]] = None) -> Dict[str, Any]:
        """Images and faces per split and class (``stats``'s figures, same functions), reviewed share."""
        entries = self.entries() if entries is None else entries
        rows: List[Tuple[str, Dict[str, int]]] = []
        total: Dict[str, int] = {}
        for split in SPLITS:
            mine = [e for e in entries if e.split == split]
            if not mine and not (self.splits_root / split).is_dir():
                continue
            samples = [Sample(e.image_path, e.annotation) for e in mine
                       if e.annotation is not None and e.status in (STATUS_UNREVIEWED, STATUS_REVIEWED)]
            counts = dict(count_split(samples, self.label_map))
            counts.update(listed=len(mine), reviewed=sum(e.status == STATUS_REVIEWED for e in mine),
                          no_xml=sum(e.status == STATUS_NO_XML for e in mine),
                          bad=sum(e.status == STATUS_BAD for e in mine))
            rows.append((split, counts))
            for key, value in counts.items():
                total[key] = total.get(key, 0) + value
        rows.append(("total", total))
        return {"labels": self.labels, "rows": [{"split": name, **counts} for name, counts in rows],
                "stats": format_stats(rows, self.label_map)}

    # ------------------------------------------------------------------ saving

    def _boxes(self, raw: Any, width: int, height: int) -> List[LabeledBox]:
        if not isinstance(raw, list) or len(raw) > MAX_BOXES:
            raise ReviewError(f"'boxes' must be a list of at most {MAX_BOXES} boxes")
        boxes = []
        for i, item in enumerate(raw, 1):
            if not isinstance(item, dict):
                raise ReviewError(f"box {i}: not an object")
            label = item.get("label")
            if label not in self.labels:
                raise ReviewError(f"box {i}: unknown class {label!r} (expected one of {', '.join(self.labels)})")
            corners = []
            for key in ("xmin", "ymin", "xmax", "ymax"):
                value = item.get(key)
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                    raise ReviewError(f"box {i}: {key} is not a number: {value!r}")
                corners.append(int(round(value)))
            xmin, ymin, xmax, ymax = corners
            if not (0 <= xmin < xmax <= width and 0 <= ymin < ymax <= height):
                raise ReviewError(f"box {i}: ({xmin}, {ymin}, {xmax}, {ymax}) is empty or outside "
                                  f"the {width}x{height} image")
            score = item.get("score")
            if score is not None and (isinstance(score, bool) or not isinstance(score, (int, float))
                                      or not 0.0 <= score <= 1.0):
                raise ReviewError(f"box {i}: score must be null or a number between 0 and 1, got {score!r}")
            boxes.append(LabeledBox(str(label), xmin, ymin, xmax, ymax, None if score is None else float(score)))
        return boxes

    def save(self, split: str, name: str, version: Any, boxes: Any, verified: Any) -> Entry:
        """Write the image's XML if it still is ``version``; ReviewError 409 (with the current
        record) when it changed on disk since, 422 for a bad XML, 400 for bad boxes."""
        if not isinstance(version, str):
            raise ReviewError("'version' (from the load) is required")
        if not isinstance(verified, bool):
            raise ReviewError("'verified' must be true or false")
        with self._lock:
            entry = self.entry(split, name)
            if entry.version != version:
                raise ReviewError(f"{entry.key} changed on disk since the page loaded it (another tab or tool?): "
                                  "not saved; the page shows it as it is now, redo the change", 409, entry.record())
            if entry.status == STATUS_BAD:
                raise ReviewError(f"{entry.key}: cannot edit: {entry.error}", 422, entry.record())
            new_boxes = self._boxes(boxes, entry.width, entry.height)
            old = entry.annotation
            try:
                if old is not None:
                    annotation = Annotation(old.filename, old.width, old.height, old.depth, new_boxes, old.folder,
                                            old.path, verified)
                    write_voc(entry.xml_path, annotation)
                else:
                    annotation = Annotation(name, entry.width, entry.height, _depth(entry.image_path), new_boxes,
                                            split, str(entry.image_path), verified)
                    if not _create_voc(entry.xml_path, annotation):
                        raise ReviewError(f"{entry.key}: an XML appeared meanwhile (capture?): not saved; "
                                          "the page shows it as it is now", 409, self.entry(split, name).record())
            except OSError as exc:  # full disk, read-only folder, ...
                raise ReviewError(f"{entry.xml_path}: cannot write: {exc.strerror or exc}", 507) from None
            return self.entry(split, name)


def _depth(image_path: Path) -> int:
    """labelImg's depth: 1 for a grayscale image, else 3."""
    import cv2

    image = cv2.imread(str(image_path), cv2.IMREAD_UNCHANGED)
    return 1 if image is None or image.ndim == 2 or image.shape[2] == 1 else 3


#: What os.link answers on file systems without hard links (FAT, some network mounts).
_NO_HARDLINKS = {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK, errno.EXDEV, errno.ENOSYS}


def _create_voc(xml_path: Path, annotation: Annotation) -> bool:
    """Write a new XML with :func:`write_voc`, never over one that appeared meanwhile. False if it did."""
    tmp = xml_path.with_name(f".{xml_path.name}.review{os.getpid()}-{threading.get_ident()}.tmp")
    try:
        write_voc(tmp, annotation)
        try:
            os.link(tmp, xml_path)
        except FileExistsError:
            return False
        except OSError as exc:
            if exc.errno not in _NO_HARDLINKS:
                raise
            # No hard links on this file system: reserve the name, then rename onto it.
            try:
                fd = os.open(xml_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                return False
            os.close(fd)
            os.replace(tmp, xml_path)
    finally:
        tmp.unlink(missing_ok=True)
    return True


# --------------------------------------------------------------------------- web side


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _host_name(host_header: str) -> str:
    """``"127.0.0.1:8765"`` -> ``"127.0.0.1"``, ``"[::1]:80"`` -> ``"::1"``."""
    if host_header.startswith("["):
        return host_header[1:].split("]", 1)[0]
    return host_header.rsplit(":", 1)[0] if host_header.count(":") == 1 else host_header


def create_app(dataset: os.PathLike, token: Optional[str] = None, loopback_only: bool = True,
               labels_file: Optional[os.PathLike] = None) -> Flask:
    """The review page's WSGI app over ``dataset``.

    ``token``: when given, every request must carry it (``?token=`` or the ``X-Review-Token``
    header). ``loopback_only``: answer only requests whose ``Host`` is a loopback name (set
    when bound to a loopback address: a web page elsewhere cannot reach the server by renaming
    itself to 127.0.0.1). ``labels_file``: the classes (see :func:`dataset_labels`). Raises
    ReviewUnavailable without Flask, CubeDetectError for a data set that is not one.
    """
    flask = _flask()
    store = ReviewStore(dataset, labels_file=labels_file)
    app = flask.Flask(__name__, static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = 1 << 20
    app.config["cube_detect.review.store"] = store
    request = flask.request

    def answer(payload: Dict[str, Any], status: int = 200) -> Any:
        response = flask.jsonify(payload)
        response.status_code = status
        return response

    @app.before_request
    def guard() -> Any:
        if loopback_only and not is_loopback(_host_name(request.host)):
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
        if request.path.startswith("/api/"):
            response.headers["Cache-Control"] = "no-store"
        return response

    @app.errorhandler(ReviewError)
    def review_error(exc: ReviewError) -> Any:
        payload: Dict[str, Any] = {"error": str(exc)}
        if exc.current is not None:
            payload["current"] = exc.current
        return answer(payload, exc.status)

    @app.errorhandler(404)
    def not_found(_exc: Any) -> Any:
        return answer({"error": "not found"}, 404)

    @app.errorhandler(405)
    def not_allowed(_exc: Any) -> Any:
        return answer({"error": "method not allowed"}, 405)

    @app.errorhandler(413)
    def too_large(_exc: Any) -> Any:
        return answer({"error": "request too large"}, 413)

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
        body = request.get_json(silent=True) if request.is_json else None
        if not isinstance(body, dict):
            raise ReviewError("expected a JSON object {version, boxes, verified} (Content-Type: application/json)",
                              415 if not request.is_json else 400)
        return answer(store.save(split, name, body.get("version"), body.get("boxes"), body.get("verified")).record())

    @app.get("/image/<split>/<name>")
    def image(split: str, name: str) -> Any:
        path = store.image_path(split, name)
        return flask.send_file(path.resolve(), max_age=0, conditional=True)

    return app


# --------------------------------------------------------------------------- serving


def _quiet_handler() -> Any:
    from werkzeug.serving import WSGIRequestHandler

    class QuietHandler(WSGIRequestHandler):
        """Logs refused and failed requests only (the page polls every two seconds)."""

        def log_request(self, code: Any = "-", size: Any = "-") -> None:
            status = getattr(code, "value", code)
            if isinstance(status, int) and status >= 400:
                super().log_request(code, size)

    return QuietHandler


def _make_server(dataset: os.PathLike, host: str, port: int, token: Optional[str],
                 labels_file: Optional[os.PathLike] = None) -> Tuple[Any, str]:
    _flask()
    from werkzeug.serving import make_server

    if not is_loopback(host) and token is None:
        token = secrets.token_urlsafe(16)
    app = create_app(dataset, token=token, loopback_only=is_loopback(host), labels_file=labels_file)
    # Our own listening socket: Werkzeug reports a bind error by printing and exiting.
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(socket.getaddrinfo(host, port, family, socket.SOCK_STREAM)[0][4])
        sock.listen(128)
        bound_port = int(sock.getsockname()[1])
        server = make_server(host, port, app, threaded=True, request_handler=_quiet_handler(), fd=sock.fileno())
    except OSError as exc:  # socket.gaierror too
        raise CubeDetectError(f"cannot serve the review page on {host}:{port}: {exc.strerror or exc}") from None
    finally:
        sock.close()  # the server holds its own duplicate
    shown = host if is_loopback(host) else (socket.gethostname() if host in ("0.0.0.0", "::", "") else host)
    if ":" in shown:
        shown = f"[{shown}]"
    url = f"http://{shown}:{bound_port}/" + (f"?token={token}" if token else "")
    return server, url


def serve_in_thread(dataset: os.PathLike, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
                    token: Optional[str] = None,
                    labels_file: Optional[os.PathLike] = None) -> Tuple[str, Callable[[], None]]:
    """Serve the review page of ``dataset`` from a daemon thread: ``(url, stop)``.

    For the capture node (``review:=true``). ``port=0`` picks a free port (the URL has it). A
    host other than a loopback address gets a random token (or ``token``), in the URL.
    ``labels_file``: the classes, as ``stats --labels`` (default: found in the data set). ``stop()``
    shuts the server down and waits for its thread; calling it twice is harmless. Raises
    ReviewUnavailable (Flask missing: the message says what to pip install) or CubeDetectError
    (data set missing, port taken).
    """
    server, url = _make_server(dataset, host, port, token, labels_file)
    thread = threading.Thread(target=server.serve_forever, name="cube_detect-review", daemon=True)
    thread.start()
    stopped = threading.Event()

    def stop() -> None:
        if stopped.is_set():
            return
        stopped.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

    log.info("review page: %s", url)
    return url, stop


# --------------------------------------------------------------------------- command


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dataset", metavar="DATASET", help="directory with train/ and test/ (labelImg VOC)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0: any free)")
    parser.add_argument("--host", default=DEFAULT_HOST,
                        help=f"address to listen on (default {DEFAULT_HOST}: this machine only; 0.0.0.0: "
                             "every interface, with a random token in the URL)")
    parser.add_argument("--labels", type=Path, metavar="FILE",
                        help="the classes: label_map.pbtxt, labels.txt or classes.txt (default: a *.pbtxt in "
                             "the data set, else the names in its XML files; keys 1, 2, ... by id)")


def run(args: argparse.Namespace) -> int:
    if not 0 <= args.port <= 65535:
        raise CubeDetectError(f"--port must be between 0 and 65535, got {args.port}")
    server, url = _make_server(args.dataset, args.host, args.port, None, args.labels)
    print(f"review: {url}  (Ctrl-C to stop)", flush=True)
    if not is_loopback(args.host):
        print("review: anyone with this URL (token included) can edit the data set; keep it to yourself",
              flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0


__all__ = ["ReviewStore", "ReviewUnavailable", "ReviewError", "create_app", "serve_in_thread", "dataset_labels"]
