"""`modelreg-operator run`: the operator against the current kubeconfig or in-cluster account."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Collection
from typing import Any

import kopf
from pydantic import ValidationError

from modelreg import logs
from modelreg.config import Settings, UnknownSectionError
from modelreg.handlers import kopf_settings, register
from modelreg.storage.kube import NoCluster, probe_cluster
from modelreg.storage.tls import read_seal_key


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
        settings = Settings()
    except (ValidationError, FileNotFoundError, UnknownSectionError) as exc:
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
    )
    return 0


def run_operator(
    settings: Settings,
    namespaces: Collection[str] = (),
    liveness: str | None = None,
    stop_flag: Any = None,
    ready_flag: Any = None,
) -> None:
    """Run until stopped; no namespaces means all of them."""
    kopf.run(
        registry=register(
            settings,
            read_seal_key(settings.approvals.seal_key_file or ""),
            [read_seal_key(path) for path in settings.approvals.previous_seal_key_files],
        ),
        settings=kopf_settings(namespaces, settings.webhook),
        clusterwide=not namespaces,
        namespaces=namespaces,
        liveness_endpoint=liveness,
        standalone=True,  # one replica (see docs/decisions.md); no peering CRDs needed
        stop_flag=stop_flag,
        ready_flag=ready_flag,
    )


if __name__ == "__main__":
    sys.exit(main())
