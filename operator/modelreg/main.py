"""`modelreg-operator run`: the operator against the current kubeconfig or in-cluster account."""

from __future__ import annotations

import argparse
import contextlib
import http.server
import logging
import os
import signal
import socket
import sys
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Collection, Iterator
from typing import Any

import kopf

from modelreg import logs
from modelreg.config import InvalidConfiguration, Settings, load_settings
from modelreg.domain.leadership import must_stop, overran, renewal_timeout
from modelreg.domain.redaction import redact
from modelreg.domain.seals import Sealer
from modelreg.domain.serving import TARGET_KINDS, TargetKind
from modelreg.handlers import kopf_settings, register
from modelreg.storage.kube import NoCluster, make_api_client, probe_cluster, served_kinds
from modelreg.storage.lease import LeaderLabel, LeaseLock
from modelreg.storage.tls import read_seal_key, trim_tls_read_buffers

logger = logging.getLogger(__name__)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="modelreg-operator", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run the operator")
    scope = run.add_mutually_exclusive_group(required=True)
    scope.add_argument(
        "-n", "--namespace", action="append", dest="namespaces", metavar="NS", help="watch this namespace (repeatable)"
    )
    scope.add_argument("-A", "--all-namespaces", action="store_true", help="watch every namespace")
    run.add_argument(
        "--liveness",
        metavar="URL",
        default="http://0.0.0.0:8080/healthz",
        help="kopf's liveness endpoint (default: %(default)s); 'none' to disable",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        settings = load_settings()
    except InvalidConfiguration as exc:
        print(f"modelreg-operator: invalid configuration: {exc}", file=sys.stderr)
        return 2
    if not settings.approvals.seal_key_file:
        print(
            "modelreg-operator: approvals.sealKeyFile is required: the key that seals approvals and status "
            "(a Secret mounted as a file; e.g. `head -c 32 /dev/urandom > seal.key`, then "
            "MODELREG_APPROVALS__SEAL_KEY_FILE=seal.key)",
            file=sys.stderr,
        )
        return 2
    try:  # before any connection: a missing or short key is a configuration error, said at once
        Sealer(read_seal_key(settings.approvals.seal_key_file))
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        print(f"modelreg-operator: approvals.sealKeyFile {settings.approvals.seal_key_file}: {reason}", file=sys.stderr)
        return 2
    try:
        probe_cluster()
    except NoCluster as exc:
        print(f"modelreg-operator: {exc}", file=sys.stderr)
        return 2
    logs.configure(settings.logging.level)
    run_operator(
        settings,
        namespaces=args.namespaces or (),
        liveness=None if args.liveness == "none" else args.liveness,
        exit_hard=lambda: os._exit(1),
    )
    return 0


def run_operator(
    settings: Settings,
    namespaces: Collection[str] = (),
    liveness: str | None = None,
    stop_flag: Any = None,
    ready_flag: Any = None,
    exit_hard: Callable[[], None] | None = None,
) -> None:
    """Run until stopped; no namespaces means all of them. With leader election, a replica waits
    (alive, not ready) until it holds the Lease, and stops if it cannot renew it within the renew
    deadline. `exit_hard` ends the process if stopping takes until the Lease's end (`main` passes
    os._exit; threads in tests cannot)."""
    election = settings.election
    if not election.enabled:
        return _run_kopf(settings, namespaces, liveness, stop_flag, ready_flag)
    identity = f"{os.environ.get('HOSTNAME') or socket.gethostname()}-{uuid.uuid4().hex[:8]}"
    lock = LeaseLock(
        make_api_client(),
        settings.storage.operator_namespace,
        election.lease_name,
        identity,
        election.lease_seconds,
        timeout=election.renew_deadline_seconds,
    )
    stop = threading.Event()
    if stop_flag is not None:  # the caller's stop also ends the wait and the renewals
        threading.Thread(target=lambda: (_wait_flag(stop_flag), stop.set()), daemon=True).start()
    elif threading.current_thread() is threading.main_thread():
        # A pod is stopped with SIGTERM at any moment, also before kopf installs its own handlers
        # (while it starts up, holding the Lease already): stop gracefully, releasing the Lease.
        for number in (signal.SIGTERM, signal.SIGINT):
            signal.signal(number, lambda *_: stop.set())
    renewed_from = [time.monotonic()]  # when the last successful take or renewal began
    label = LeaderLabel(make_api_client(), os.environ.get("POD_NAME"), os.environ.get("POD_NAMESPACE"))
    _try(lambda: label.mark(False) or True)  # a restarted container is a standby until it leads again
    with _alive_while_waiting(liveness):
        while True:
            began = time.monotonic()
            if _try(lock.hold):
                renewed_from[0] = began
                break
            if stop.wait(election.retry_seconds):
                return
    logger.info("leader election: %s holds Lease %s/%s", identity, settings.storage.operator_namespace, lock.name)
    marked = threading.Event()  # the Services route to this pod once its label says it leads
    serving = threading.Event()  # kopf's: started, its webhook server with it

    def lead_when_serving() -> None:
        while not serving.wait(0.2):
            if stop.is_set():
                return
        if ready_flag is not None and hasattr(ready_flag, "set"):
            ready_flag.set()
        if _try(lambda: label.mark(True) or True):
            marked.set()

    threading.Thread(target=lead_when_serving, name="leader-label", daemon=True).start()
    lost = threading.Event()

    def since() -> float:
        return time.monotonic() - renewed_from[0]

    def renew() -> None:
        # A failed renewal is retried every retrySeconds until the deadline, each call bounded by
        # the time left: slow answers cost the Lease only when none arrives within the deadline.
        while not stop.wait(election.retry_seconds):
            began = time.monotonic()
            left = renewal_timeout(since(), election.renew_deadline_seconds)
            if left <= 0:
                continue
            try:
                held = lock.hold(timeout=left)
            except Exception as exc:  # slow or down: retried until the deadline
                logger.warning("leader election: renewal failed, retrying: %s", redact(str(exc)))
                continue
            if held:
                renewed_from[0] = began
                if serving.is_set() and not marked.is_set() and _try(lambda: label.mark(True) or True):
                    marked.set()
            else:
                logger.warning("leader election: renewal refused (held by %s); retrying", lock.holder)

    def watchdog() -> None:  # apart from renew(): a call that hangs cannot keep this replica running
        while not stop.wait(0.2):
            if must_stop(since(), election.renew_deadline_seconds):
                deadline = election.renew_deadline_seconds
                logger.error("leader election: Lease %s not renewed within %ss; stopping", lock.name, deadline)
                lost.set()
                stop.set()
        while lost.is_set() and not stopped.wait(0.2):  # never serve past the Lease
            if overran(since(), election.lease_seconds, election.retry_seconds) and exit_hard is not None:
                logger.error("leader election: still stopping at the end of Lease %s; exiting", lock.name)
                exit_hard()
                return

    stopped = threading.Event()
    threading.Thread(target=renew, name="lease-renewal", daemon=True).start()
    threading.Thread(target=watchdog, name="lease-watchdog", daemon=True).start()
    try:
        _run_kopf(settings, namespaces, liveness, stop, serving)
    finally:
        stopped.set()
        stop.set()
        with contextlib.suppress(Exception):  # no traffic for a replica that stopped leading
            label.mark(False)
        if not lost.is_set():
            with contextlib.suppress(Exception):  # a graceful stop hands over at once
                lock.release()
    if lost.is_set():
        raise SystemExit(1)  # restarted by its Deployment, as a standby


def _try(hold: Callable[[], bool]) -> bool:
    try:
        return hold()
    except Exception as exc:  # the API is down: neither held nor lost yet
        logger.warning("leader election: %s", redact(str(exc)))
        return False


def _wait_flag(flag: Any) -> None:
    while not (flag.is_set() if hasattr(flag, "is_set") else flag.done()):
        time.sleep(0.1)


@contextlib.contextmanager
def _alive_while_waiting(liveness: str | None) -> Iterator[None]:
    """A standby answers its liveness probe (the kubelet must not restart it) but serves no
    webhook, so it is not ready and receives no admission requests."""
    if not liveness:
        yield
        return
    url = urllib.parse.urlsplit(liveness)

    class Alive(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == (url.path or "/") else 404)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer((url.hostname or "0.0.0.0", url.port or 80), Alive)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()


def serving_kinds(settings: Settings) -> list[TargetKind]:
    """The serving target kinds enabled in `serving.targets` whose CRDs the cluster serves; the
    others are skipped with one line (kopf would warn of them again on every CRD change)."""
    enabled = [kind for kind in TARGET_KINDS if kind.key in settings.serving.targets.enabled()]
    with make_api_client() as client:
        served = served_kinds(client, enabled)
    if skipped := [kind for kind in enabled if kind not in served]:
        logger.warning(
            "serving.targets: not watching %s: the CRD is not installed (restart the operator after installing it)",
            ", ".join(f"{kind.kind} ({kind.crd})" for kind in skipped),
        )
    return served


def _run_kopf(
    settings: Settings, namespaces: Collection[str], liveness: str | None, stop_flag: Any, ready_flag: Any
) -> None:
    trim_tls_read_buffers()
    registry = register(
        settings,
        read_seal_key(settings.approvals.seal_key_file or ""),
        [read_seal_key(path) for path in settings.approvals.previous_seal_key_files],
        namespaces,
        serving_kinds(settings),
    )
    if isinstance(stop_flag, threading.Event):
        # kopf waits for a threading.Event in a thread of asyncio's default executor, which is
        # joined at exit: stopped by a signal, the flag must be raised too or the process hangs
        # (and a replica never releases its Lease).
        kopf.on.cleanup(registry=registry)(lambda **_: stop_flag.set())
    kopf.run(
        registry=registry,
        settings=kopf_settings(namespaces, settings.webhook),
        clusterwide=not namespaces,
        namespaces=namespaces,
        liveness_endpoint=liveness,
        standalone=True,  # kopf's own peering is not used: the Lease above decides who runs
        stop_flag=stop_flag,
        ready_flag=ready_flag,
    )


if __name__ == "__main__":
    sys.exit(main())
