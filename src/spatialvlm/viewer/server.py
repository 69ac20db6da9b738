"""A small read-only HTTP server (standard library only) for browsing an output folder.

Routes (GET and HEAD only; everything else is 405):

``/``                       the single-page app (``static/index.html``)
``/static/<name>``          the app's own JS/CSS, and ``plotly.min.js`` from the plotly Python package
``/api/meta``               dataset counts and the list of question types
``/api/images``             a page of the filtered grid: ``page, size, qa_type, object, canon, errors``
``/api/image?id=``          one image: scene row, objects, QA rows, 3D figure
``/api/errors?page=``       a page of errors.parquet
``/api/overlay?id=[&object=]``  PNG: mask tint of all objects (or one object) on a transparent background
``/api/depth?id=``          PNG: the colourised depth map
``/thumb/<relpath>``        JPEG thumbnail (long side ``w``, default 256) of an image inside the folder
``/file/<relpath>``         a file inside the folder

Any path that would leave the folder (``..``, absolute paths, links pointing outside) is answered 403.
The server binds to 127.0.0.1 by default and refuses non-loopback addresses unless ``allow_remote``.
"""

from __future__ import annotations

import io
import ipaddress
import json
import mimetypes
import socket
import threading
import traceback
import urllib.parse
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np

from spatialvlm.viewer.data import _LRU, OutputFolder

STATIC_DIR = Path(__file__).resolve().parent / "static"
STATIC_FILES = {"index.html", "app.js", "style.css"}


def plotly_js_path() -> Path:
    import plotly

    p = Path(plotly.__file__).resolve().parent / "package_data" / "plotly.min.js"
    if not p.is_file():
        raise FileNotFoundError(f"plotly.min.js not found in the plotly package at {p}; reinstall plotly")
    return p


def is_loopback(host: str) -> bool:
    """True when every address ``host`` resolves to is a loopback address."""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except socket.gaierror as exc:
        raise ValueError(f"cannot resolve host {host!r}: {exc}") from exc
    addrs = {info[4][0] for info in infos}
    return bool(addrs) and all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addrs)


def check_host(host: str, allow_remote: bool) -> None:
    if not is_loopback(host) and not allow_remote:
        raise PermissionError(
            f"refusing to serve on non-loopback address {host!r}: the viewer exposes the dataset files to anyone "
            "who can reach it. Use 127.0.0.1 (default), or pass --allow-remote if you really mean it."
        )


class ViewerApp:
    """State shared by the request handlers: the folder, caches, the plotly bundle."""

    def __init__(self, out_dir: Path | str) -> None:
        self.data = OutputFolder(out_dir)
        self.png_cache = _LRU(256)
        self._plotly: bytes | None = None
        self._lock = threading.Lock()

    def plotly_bytes(self) -> bytes:
        with self._lock:
            if self._plotly is None:
                self._plotly = plotly_js_path().read_bytes()
            return self._plotly

    # images rendered on the server ------------------------------------------------------------------------------
    def _instance(self, scene: dict) -> np.ndarray | None:
        from spatialvlm.io.writers import decode_instance_png

        if not scene.get("masks"):
            return None
        return decode_instance_png(self.data.safe_path(scene["masks"]))

    def overlay_png(self, image_id: str, object_id: int | None) -> bytes:
        from PIL import Image

        from spatialvlm.io.report import object_colour

        key = ("overlay", image_id, object_id)
        hit = self.png_cache.get(key)
        if hit is not None:
            return hit
        scene = self.data.scene_row(image_id)
        inst = self._instance(scene)
        h, w = scene["height"], scene["width"]
        rgba = np.zeros((h, w, 4), dtype=np.uint8)
        if inst is not None:
            ids = [object_id] if object_id is not None else [int(v) - 1 for v in np.unique(inst) if v > 0]
            for oid in ids:
                m = inst == oid + 1
                rgba[m, :3] = object_colour(oid)
                rgba[m, 3] = 150 if object_id is None else 190
                edge = m & ~(np.roll(m, 1, 0) & np.roll(m, -1, 0) & np.roll(m, 1, 1) & np.roll(m, -1, 1))
                rgba[edge, 3] = 255
        buf = io.BytesIO()
        Image.fromarray(rgba, mode="RGBA").save(buf, format="PNG")
        out = buf.getvalue()
        self.png_cache.put(key, out)
        return out

    def depth_png(self, image_id: str) -> bytes:
        from PIL import Image

        from spatialvlm.io.report import colourise_depth
        from spatialvlm.io.writers import decode_depth_png

        key = ("depth", image_id)
        hit = self.png_cache.get(key)
        if hit is not None:
            return hit
        scene = self.data.scene_row(image_id)
        if not scene.get("depth"):
            raise FileNotFoundError(f"image {image_id!r} has no depth map")
        rgb, _lo, _hi = colourise_depth(decode_depth_png(self.data.safe_path(scene["depth"])))
        buf = io.BytesIO()
        Image.fromarray(rgb).save(buf, format="PNG")
        out = buf.getvalue()
        self.png_cache.put(key, out)
        return out

    def thumbnail(self, rel: str, width: int) -> bytes:
        from PIL import Image

        width = max(32, min(int(width), 1024))
        key = ("thumb", rel, width)
        hit = self.png_cache.get(key)
        if hit is not None:
            return hit
        path = self.data.safe_path(rel)
        with Image.open(path) as im:
            im = im.convert("RGB")
            im.thumbnail((width, width))
            buf = io.BytesIO()
            im.save(buf, format="JPEG", quality=80)
        out = buf.getvalue()
        self.png_cache.put(key, out)
        return out


class Handler(BaseHTTPRequestHandler):
    server_version = "spatialvlm-viewer"
    app: ViewerApp  # set on the subclass made by make_server
    quiet = True

    def log_message(self, fmt, *args) -> None:
        if not self.quiet:
            super().log_message(fmt, *args)

    # -- responses ------------------------------------------------------------------------------------------------
    def _send(self, status: int, body: bytes, ctype: str, cache: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Cache-Control", "max-age=3600" if cache else "no-store")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, obj, status: int = 200) -> None:
        self._send(status, json.dumps(obj, allow_nan=False).encode("utf-8"), "application/json; charset=utf-8")

    def _error(self, status: int, message: str) -> None:
        self._json({"error": message}, status)

    def do_HEAD(self) -> None:
        self.do_GET()

    def _refuse(self) -> None:
        self._error(HTTPStatus.METHOD_NOT_ALLOWED, "read-only viewer: only GET and HEAD")

    do_POST = do_PUT = do_DELETE = do_PATCH = _refuse

    def do_GET(self) -> None:
        try:
            self._route()
        except PermissionError as exc:
            self._error(HTTPStatus.FORBIDDEN, str(exc))
        except (FileNotFoundError, KeyError) as exc:
            self._error(HTTPStatus.NOT_FOUND, f"not found: {exc}")
        except ValueError as exc:
            self._error(HTTPStatus.BAD_REQUEST, str(exc))
        except (BrokenPipeError, ConnectionResetError):
            pass  # the browser went away; nothing to answer
        except Exception as exc:  # noqa: BLE001 - a server bug: answer 500 with the reason, and print it
            traceback.print_exc()
            self._error(HTTPStatus.INTERNAL_SERVER_ERROR, f"{type(exc).__name__}: {exc}")

    def _route(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        raw_path = url.path
        path = urllib.parse.unquote(raw_path)
        q = {k: v[-1] for k, v in urllib.parse.parse_qs(url.query, keep_blank_values=True).items()}
        app = self.app
        if path in ("/", "/index.html"):
            return self._static("index.html")
        if path.startswith("/static/"):
            name = path[len("/static/"):]
            if name == "plotly.min.js":
                return self._send(200, app.plotly_bytes(), "text/javascript; charset=utf-8", cache=True)
            return self._static(name)
        if path == "/api/meta":
            return self._json(app.data.meta())
        if path == "/api/images":
            return self._json(app.data.page(
                int(q.get("page", 0) or 0), int(q.get("size", 48) or 48), qa_type=q.get("qa_type", ""),
                obj=q.get("object", ""), canon=q.get("canon", ""), errors=q.get("errors", "")))
        if path == "/api/image":
            return self._json(app.data.image_detail(self._need(q, "id")))
        if path == "/api/errors":
            return self._json(app.data.errors_page(int(q.get("page", 0) or 0), int(q.get("size", 100) or 100)))
        if path == "/api/overlay":
            obj = q.get("object")
            body = app.overlay_png(self._need(q, "id"), int(obj) if obj not in (None, "") else None)
            return self._send(200, body, "image/png", cache=True)
        if path == "/api/depth":
            return self._send(200, app.depth_png(self._need(q, "id")), "image/png", cache=True)
        if path.startswith("/thumb/"):
            body = app.thumbnail(path[len("/thumb/"):], int(q.get("w", 256) or 256))
            return self._send(200, body, "image/jpeg", cache=True)
        if path.startswith("/file/"):
            p = app.data.safe_path(path[len("/file/"):])
            ctype = mimetypes.guess_type(p.name)[0] or "application/octet-stream"
            return self._send(200, p.read_bytes(), ctype, cache=True)
        raise FileNotFoundError(path)

    @staticmethod
    def _need(q: dict, key: str) -> str:
        if not q.get(key):
            raise ValueError(f"missing query parameter {key!r}")
        return q[key]

    def _static(self, name: str) -> None:
        if name not in STATIC_FILES:  # a fixed list: nothing else of the package is served
            raise FileNotFoundError(name)
        ctype = {"html": "text/html", "js": "text/javascript", "css": "text/css"}[name.rsplit(".", 1)[1]]
        self._send(200, (STATIC_DIR / name).read_bytes(), ctype + "; charset=utf-8")


def make_server(out_dir: Path | str, host: str = "127.0.0.1", port: int = 8765, *, allow_remote: bool = False,
                quiet: bool = True) -> ThreadingHTTPServer:
    """A ready (not yet serving) server for ``out_dir``; port 0 picks a free port (see ``server.server_port``)."""
    check_host(host, allow_remote)
    app = ViewerApp(out_dir)
    handler = type("BoundHandler", (Handler,), {"app": app, "quiet": quiet})
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET

    class _Server(ThreadingHTTPServer):
        address_family = family
        daemon_threads = True

    srv = _Server((host.strip("[]"), int(port)), handler)
    srv.app = app  # type: ignore[attr-defined]
    return srv


def serve(out_dir: Path | str, host: str = "127.0.0.1", port: int = 8765, *, allow_remote: bool = False,
          quiet: bool = True) -> None:
    srv = make_server(out_dir, host, port, allow_remote=allow_remote, quiet=quiet)
    h, p = srv.server_address[:2]
    shown = f"[{h}]" if ":" in h else h
    print(f"spatialvlm viewer: http://{shown}:{p}/  ({srv.app.data.meta()['images']} images; Ctrl+C to stop)",
          flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        print("stopped")
    finally:
        srv.server_close()
