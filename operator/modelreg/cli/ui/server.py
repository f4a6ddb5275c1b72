"""The local web server of `kubectl modelreg ui`: every read and every approval goes to the API
server as the user (their kubeconfig, context and --as), through KubeClient; nothing is stored.

Routes (GET reads, POST writes; nothing else is answered):
  /                                         models
  /models/NS/MODEL                          a model: versions, charts, timeline
  /models/NS/MODEL/versions/N[?diff=M]      a version, lineage, diff
  /promotions                               open promotions and their gates
  POST /promotions/NS/NAME/approve|withdraw the viewer's approval annotation, as `approve` writes it
  /events                                   Server-Sent Events: something changed (a watch as the user)
  /static/FILE                              the package's own assets
"""

from __future__ import annotations

import json
import queue
import threading
import urllib.parse
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any

import jinja2

from modelreg.cli.ui import views
from modelreg.cli.ui.security import HEADERS, Gate
from modelreg.domain.approvals import approval_key
from modelreg.storage.kube_client import KubeClient, KubeClientError

_STATIC_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}
_PLURALS = ("modelversions", "modelpromotions")


def environment() -> jinja2.Environment:
    """Autoescaping everywhere (HTML and SVG alike): names, annotations, metrics and messages from
    the cluster are hostile input."""
    return jinja2.Environment(
        loader=jinja2.PackageLoader("modelreg.cli.ui", "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )


class Pages:
    """The pages, rendered from the user's view of the cluster (one list per kind per page)."""

    def __init__(self, kube: KubeClient, namespace: str | None, viewer: str, context: str = "") -> None:
        self.kube, self.namespace, self.viewer, self.context = kube, namespace, viewer, context
        self.templates = environment()

    def render(self, template: str, **values: Any) -> str:
        return self.templates.get_template(template).render(
            viewer=self.viewer,
            scope=self.namespace or "all namespaces",
            context=self.context,
            **values,
        )

    def _list(self, plural: str, namespace: str | None) -> list[dict[str, Any]]:
        return self.kube.list(plural, namespace)

    def models(self) -> str:
        versions = self._list("modelversions", self.namespace)
        promotions = self._list("modelpromotions", self.namespace)
        return self.render("models.html", title="Models", rows=views.models(versions, promotions, self.viewer))

    def model(self, namespace: str, model: str) -> str | None:
        page = views.model_page(model, self._list("modelversions", namespace), self._list("modelpromotions", namespace))
        if not page["rows"]:
            return None
        return self.render("model.html", title=model, namespace=namespace, page=page)

    def version(self, namespace: str, model: str, number: int, other: int | None) -> str | None:
        page = views.version_page(model, number, self._list("modelversions", namespace), other)
        if page is None:
            return None
        return self.render("version.html", title=f"{model} v{number}", namespace=namespace, page=page)

    def promotions(self, csrf: str, message: str = "", failed: bool = False) -> str:
        promotions = self._list("modelpromotions", self.namespace)
        # whether RBAC lets the viewer approve each open promotion's stage: asked of the API server
        # (a SelfSubjectAccessReview, as `kubectl auth can-i`); the webhook still has the last word
        entitled = {
            (ns, name): self.kube.may("approve", "modelstages", f"{model}/{stage}", ns)
            for ns, name, model, stage in views.stages_to_ask(promotions)
        }
        rows = views.promotions_page(promotions, self._list("modelversions", self.namespace), self.viewer, entitled)
        return self.render("promotions.html", title="Promotions", rows=rows, csrf=csrf, message=message, failed=failed)

    def approve(self, namespace: str, name: str, remove: bool) -> str:
        """What `kubectl modelreg approve`/`unapprove` write: the viewer's approval annotation (the
        admission webhook checks the rest and says why it refuses)."""
        promotion = self.kube.get("modelpromotions", namespace, name)
        if remove and approval_key(self.viewer) not in (promotion["metadata"].get("annotations") or {}):
            return f"{self.viewer} has no approval on {name} to withdraw"
        self.kube.annotate(
            "modelpromotions", namespace, name, {approval_key(self.viewer): None if remove else self.viewer}
        )
        return f"{'withdrew the approval of' if remove else 'approved'} {name} as {self.viewer}"

    def error(self, status: int, message: str) -> str:
        return self.render("error.html", title=HTTPStatus(status).phrase, status=status, message=message)


class UIServer:
    """A ThreadingHTTPServer bound to `address:port` (0: any free port), answering only through `gate`."""

    def __init__(self, pages: Pages, address: str = "127.0.0.1", port: int = 0) -> None:
        self.pages = pages
        self.httpd = ThreadingHTTPServer((address, port), _handler(self))
        self.httpd.daemon_threads = True
        self.gate = Gate(address, self.httpd.server_address[1])
        self.stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return self.gate.url()

    def start(self) -> UIServer:
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="modelreg-ui", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self.httpd.serve_forever()

    def stop(self) -> None:
        self.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def _handler(server: UIServer) -> type[BaseHTTPRequestHandler]:
    class Handler(_Handler):
        ui = server

    return Handler


class _Handler(BaseHTTPRequestHandler):
    ui: UIServer
    server_version = "modelreg-ui"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:  # no access log on the terminal
        pass

    # -- answers ---------------------------------------------------------------------------
    def _send(self, status: int, body: bytes, content_type: str = "text/html; charset=utf-8", **extra: str) -> None:
        self.send_response(status)
        for key, value in {**HEADERS, "Content-Type": content_type, "Content-Length": str(len(body))}.items():
            self.send_header(key, value)
        for key, value in extra.items():
            self.send_header(key.replace("_", "-"), value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _refuse(self, status: int, message: str) -> None:
        """A refusal in plain text: rendered before anything is read from the cluster."""
        self._send(status, f"{message}\n".encode(), "text/plain; charset=utf-8")

    def _page(self, status: int, html: str | None, missing: str = "not found") -> None:
        if html is None:
            html, status = self.ui.pages.error(404, missing), 404
        self._send(status, html.encode())

    # -- the gate ----------------------------------------------------------------------------
    def _admitted(self) -> bool:
        """Host first (DNS rebinding), then the per-run token: the URL's once (it becomes a cookie
        and leaves the address bar), the cookie afterwards."""
        gate = self.ui.gate
        if not gate.host_allowed(self.headers.get("Host")):
            self._refuse(403, "refused: this server answers only to its own address (Host header)")
            return False
        url = urllib.parse.urlsplit(self.path)
        given = urllib.parse.parse_qs(url.query).get("token", [None])[0]
        if given is not None and self.command == "GET" and gate.token_valid(given):
            query = urllib.parse.urlencode([(k, v) for k, v in urllib.parse.parse_qsl(url.query) if k != "token"])
            self._send(
                303, b"", "text/plain", Location=url.path + (f"?{query}" if query else ""), Set_Cookie=gate.set_cookie()
            )
            return False
        if not gate.token_valid(gate.cookie_token(self.headers.get("Cookie"))):
            self._refuse(403, "refused: open the URL `kubectl modelreg ui` printed (it carries this run's token)")
            return False
        return True

    # -- methods ---------------------------------------------------------------------------
    def do_GET(self) -> None:
        if not self._admitted():
            return
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query)
        parts = [urllib.parse.unquote(p) for p in url.path.split("/") if p]
        pages = self.ui.pages
        try:
            match parts:
                case []:
                    self._page(200, pages.models())
                case ["models", namespace, model]:
                    self._page(200, pages.model(namespace, model), f"no model {model!r} in namespace {namespace}")
                case ["models", namespace, model, "versions", number] if number.isdigit():
                    other = query.get("diff", [""])[0]
                    html = pages.version(namespace, model, int(number), int(other) if other.isdigit() else None)
                    self._page(200, html, f"model {model!r} has no version {number} in namespace {namespace}")
                case ["promotions"]:
                    self._page(200, pages.promotions(self.ui.gate.csrf))
                case ["events"]:
                    self._events()
                case ["static", name] if name in _assets():
                    self._send(200, _assets()[name], _STATIC_TYPES.get(name[name.rfind(".") :], "text/plain"))
                case _:
                    self._page(404, None)
        except KubeClientError as exc:
            self._page(502, pages.error(502, str(exc)))
        except Exception as exc:  # a page that cannot render says so (escaped), not a dropped connection
            self._page(500, pages.error(500, f"{exc.__class__.__name__}: {exc}"))

    do_HEAD = do_GET

    def do_POST(self) -> None:
        if not self._admitted():
            return
        gate = self.ui.gate
        if not gate.origin_allowed(self.headers.get("Origin"), self.headers.get("Sec-Fetch-Site")):
            self._refuse(403, "refused: a cross-site request")
            return
        length = int(self.headers.get("Content-Length") or 0)
        if self.headers.get_content_type() != "application/x-www-form-urlencoded" or length > 4096:
            self._refuse(415, "refused: expected a form")
            return
        form = urllib.parse.parse_qs(self.rfile.read(length).decode("utf-8", "replace"))
        if not gate.csrf_valid(form.get("csrf", [None])[0]):
            self._refuse(403, "refused: missing or wrong CSRF token")
            return
        parts = [urllib.parse.unquote(p) for p in urllib.parse.urlsplit(self.path).path.split("/") if p]
        match parts:
            case ["promotions", namespace, name, ("approve" | "withdraw") as action]:
                try:
                    message, failed = self.ui.pages.approve(namespace, name, remove=action == "withdraw"), False
                except KubeClientError as exc:  # the webhook's (or RBAC's) message, as it is
                    message, failed = str(exc), True
                try:
                    html = self.ui.pages.promotions(gate.csrf, message, failed)
                except KubeClientError as exc:
                    html = self.ui.pages.error(502, str(exc))
                self._send(403 if failed else 200, html.encode())
            case _:
                self._refuse(404, "not found")

    def _not_allowed(self) -> None:
        # OPTIONS (a CORS preflight), PUT, DELETE, ...: no CORS headers, nothing done
        if self._admitted():
            self._send(405, b"method not allowed\n", "text/plain; charset=utf-8", Allow="GET, HEAD, POST")

    do_OPTIONS = do_PUT = do_DELETE = do_PATCH = _not_allowed

    # -- live updates --------------------------------------------------------------------------
    def _events(self) -> None:
        """One SSE message per change the user may watch; the page re-renders its fragment."""
        self.send_response(200)
        for key, value in {**HEADERS, "Content-Type": "text/event-stream", "X-Accel-Buffering": "no"}.items():
            self.send_header(key, value)
        self.end_headers()
        changes: queue.Queue[dict[str, Any]] = queue.Queue()
        stop = threading.Event()
        kube, namespace = self.ui.pages.kube, self.ui.pages.namespace
        for plural in _PLURALS:
            threading.Thread(target=_pump, args=(kube, plural, namespace, stop, changes.put), daemon=True).start()
        try:
            self.wfile.write(b"retry: 2000\n: connected\n\n")
            self.wfile.flush()
            while not (stop.is_set() or self.ui.stopping.is_set()):
                try:
                    change = changes.get(timeout=10)
                except queue.Empty:
                    self.wfile.write(b": keep-alive\n\n")
                else:
                    self.wfile.write(f"event: change\ndata: {json.dumps(change)}\n\n".encode())
                self.wfile.flush()
        except OSError:  # the page went away
            pass
        finally:
            stop.set()
            self.close_connection = True


def _pump(
    kube: KubeClient, plural: str, namespace: str | None, stop: threading.Event, put: Callable[[dict], None]
) -> None:
    try:
        for event in kube.watch(plural, namespace, stop):
            metadata = event["object"].get("metadata") or {}
            put(
                {
                    "kind": plural,
                    "type": event.get("type"),
                    "namespace": metadata.get("namespace"),
                    "name": metadata.get("name"),
                }
            )
    except KubeClientError as exc:
        put({"kind": plural, "type": "ERROR", "message": str(exc)})
        stop.set()


_ASSETS: dict[str, bytes] = {}


def _assets() -> dict[str, bytes]:
    if not _ASSETS:
        folder = resources.files("modelreg.cli.ui") / "static"
        _ASSETS.update({item.name: item.read_bytes() for item in folder.iterdir() if item.is_file()})
    return _ASSETS
