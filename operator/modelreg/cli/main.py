"""kubectl-modelreg: register, promote, approve and inspect models (`kubectl modelreg ...`)."""

from __future__ import annotations

import argparse
import re
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from modelreg import GROUP, VERSION, client
from modelreg.cli import render
from modelreg.domain.approvals import approval_key
from modelreg.domain.artifacts import InvalidURIError, Location, parse_uri
from modelreg.domain.promotions import TERMINAL, reason_of
from modelreg.models.stages import TARGETS
from modelreg.storage.kube_client import KubeClient, KubeClientError
from modelreg.storage.local_files import directory_files, file_sha256, local_directory_digest
from modelreg.storage.s3 import StorageFailure, make_client, upload


class UsageError(Exception):
    pass


def key_values(pairs: list[str], kind: str, number: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--{kind} {pair!r}: expected KEY=VALUE")
        if number:
            try:
                out[key] = float(value) if "." in value or "e" in value.lower() else int(value)
            except ValueError:
                raise UsageError(f"--{kind} {pair!r}: {value!r} is not a number") from None
        else:
            out[key] = value
    return out


_CRITERION = re.compile(r"^\s*([A-Za-z0-9_.-]+)\s*(>=|<=|~)\s*(-?[0-9.eE+-]+)\s*$")


def timestamp(text: str) -> str:
    try:
        datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an RFC 3339 time: {text!r} (e.g. 2026-11-01T12:00:00Z)") from None
    return text


def criterion(text: str) -> dict[str, Any]:
    """`auc>=0.9` (min), `latency_ms<=50` (max), `auc~0.01` (max regression vs the current version)."""
    match = _CRITERION.match(text)
    if not match:
        raise UsageError(f"--criteria {text!r}: expected METRIC>=N, METRIC<=N or METRIC~N (max regression)")
    metric, op, value = match.groups()
    try:
        number = float(value)
    except ValueError:
        raise UsageError(f"--criteria {text!r}: {value!r} is not a number") from None
    return {"metric": metric, {">=": "min", "<=": "max", "~": "maxRegression"}[op]: number}


def _name(model: str, version: int) -> str:
    return f"{model}-v{version}"


class Commands:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self._kube: KubeClient | None = None

    @property
    def kube(self) -> KubeClient:
        if self._kube is None:
            self._kube = KubeClient(self.args.kubeconfig, self.args.context)
        return self._kube

    @property
    def namespace(self) -> str:
        return self.args.namespace or self.kube.default_namespace

    def out(self, data: Any, table: str) -> None:
        print(table if self.args.output == "table" else render.dump(data, self.args.output))

    def versions(self, model: str, namespace: str | None = None) -> list[dict[str, Any]]:
        found = [
            v for v in self.kube.list("modelversions", namespace or self.namespace) if v["spec"]["modelName"] == model
        ]
        if not found:
            raise KubeClientError(f"model {model!r} has no registered versions in namespace {self.namespace}")
        return found

    def version(self, model: str, number: int) -> dict[str, Any]:
        found = [v for v in self.versions(model) if v["spec"]["version"] == number]
        if not found:
            raise KubeClientError(f"model {model!r} has no version {number} in namespace {self.namespace}")
        return min(found, key=lambda v: v["metadata"].get("creationTimestamp", ""))

    # -- writing --------------------------------------------------------------------------
    def register(self) -> None:
        a = self.args
        if bool(a.file) == bool(a.dir):
            raise UsageError("give exactly one of --file or --dir")
        try:
            target = parse_uri(a.to.rstrip("/") + "/")
        except InvalidURIError as exc:
            raise UsageError(f"--to: {exc}") from None
        metrics = key_values(a.metric, "metric", number=True)
        params = key_values(a.param, "param", number=False)
        source = Path(a.file or a.dir)
        if a.file and not source.is_file():
            raise UsageError(f"--file {source}: no such file")
        if a.dir and not source.is_dir():
            raise UsageError(f"--dir {source}: no such directory")
        client = make_client()
        if a.file:
            location = Location(target.bucket, target.key + source.name)
            sha, size = file_sha256(source), source.stat().st_size
            self._upload(client, [(source, location)], size)
        else:
            location = target
            files = directory_files(source)
            if not files:
                raise UsageError(f"--dir {source}: no files to register")
            sha, size = local_directory_digest(source), sum(p.stat().st_size for _, p in files)
            self._upload(client, [(p, Location(target.bucket, target.key + key)) for key, p in files], size)
        lineage = {
            k: v
            for k, v in (
                ("runId", a.run_id),
                ("codeCommit", a.commit),
                ("experimentName", a.experiment),
                ("parentVersion", a.parent),
            )
            if v is not None
        }
        body: dict[str, Any] = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "ModelVersion",
            "metadata": {"name": _name(a.model, a.version), "namespace": self.namespace},
            "spec": {
                "modelName": a.model,
                "version": a.version,
                "artifact": {
                    "uri": str(location),
                    "sha256": sha,
                    "sizeBytes": size,
                    **({"format": a.format} if a.format else {}),
                },
            },
        }
        for key, value in (
            ("lineage", lineage),
            ("metrics", metrics),
            ("hyperparameters", params),
            ("description", a.description),
        ):
            if value:
                body["spec"][key] = value
        self._emit(
            body,
            "modelversions",
            f"modelversion {body['metadata']['name']} registered "
            f"({location!s}, sha256 {sha[:12]}…); the operator verifies it next",
        )

    def _upload(self, client: Any, items: list[tuple[Path, Location]], total: int) -> None:
        done = 0
        interactive = sys.stderr.isatty()

        def progress(n: int) -> None:
            nonlocal done
            done += n
            if interactive and total:
                print(f"\ruploading {done / total:6.1%} of {total} bytes", end="", file=sys.stderr, flush=True)

        for path, location in items:
            upload(client, str(path), location, progress)
        print(f"\ruploaded {total} bytes in {len(items)} object(s) with SHA-256 checksums", file=sys.stderr)

    def _emit(self, body: dict[str, Any], plural: str, applied_message: str) -> None:
        if self.args.apply:
            self.kube.create(plural, self.namespace, body)
            print(applied_message)
        else:
            print(render.dump(body, "json" if self.args.output == "json" else "yaml"))

    def promote(self) -> None:
        a = self.args
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "ModelPromotion",
            "metadata": {"name": a.name or f"{a.model}-v{a.version}-to-{a.to.lower()}", "namespace": self.namespace},
            "spec": {
                "modelName": a.model,
                "version": a.version,
                "targetStage": a.to,
                **({"reason": a.reason} if a.reason else {}),
                **({"criteria": [criterion(c) for c in a.criteria]} if a.criteria else {}),
            },
        }
        self._emit(body, "modelpromotions", f"modelpromotion {body['metadata']['name']} created")

    def approve(self, remove: bool = False) -> None:
        self.kube.get("modelpromotions", self.namespace, self.args.promotion)  # "not found" in plain words
        user = self.kube.whoami()  # the admission webhook checks the rest, and says why it refuses
        self.kube.annotate(
            "modelpromotions", self.namespace, self.args.promotion, {approval_key(user): None if remove else user}
        )
        print(f"{'removed the approval of' if remove else 'approved'} {self.args.promotion} as {user}")

    # -- reading --------------------------------------------------------------------------
    def list(self) -> None:
        namespace = None if self.args.all_namespaces else self.namespace
        versions = [
            v for v in self.kube.list("modelversions", namespace) if self.args.model in (None, v["spec"]["modelName"])
        ]
        if not versions and self.args.model:
            raise KubeClientError(f"model {self.args.model!r} has no registered versions")
        self.out(versions, render.version_rows(versions, wide_namespace=namespace is None))

    def describe(self) -> None:
        if self.args.number is None:
            found = self.versions(self.args.model)
            self.out(
                found,
                "\n\n".join(render.describe_version(v) for v in sorted(found, key=lambda v: v["spec"]["version"])),
            )
        else:
            found = self.version(self.args.model, self.args.number)
            self.out(found, render.describe_version(found))

    def history(self) -> None:
        entries = render.history(self.versions(self.args.model))
        if self.args.at:
            promotions = self.kube.list("modelpromotions", self.namespace)
            reasons = {p["metadata"]["name"]: p["spec"].get("reason", "") for p in promotions}
            rows = render.held_at(entries, self.args.at, reasons)
            self.out(rows, render.held_at_table(rows) if rows else f"no version held a stage at {self.args.at}")
            return
        self.out(entries, render.history_table(entries) if entries else "no stage changes yet")

    def diff(self) -> None:
        a, b = self.version(self.args.model, self.args.a), self.version(self.args.model, self.args.b)
        rows = render.diff(a, b)
        self.out(rows, render.diff_table(rows, self.args.a, self.args.b))

    def lineage(self) -> None:
        chain = render.lineage_chain(self.versions(self.args.model), self.args.number)
        if chain[0].get("missing"):
            raise KubeClientError(f"model {self.args.model!r} has no version {self.args.number}")
        self.out(chain, render.lineage_tree(self.args.model, chain))

    def resolve(self) -> None:
        try:
            found = client.resolve(self.args.reference, self.args.namespace, self.args.context, self.args.kubeconfig)
        except client.InvalidReference as exc:
            raise UsageError(str(exc)) from None
        print(render.resolved(found, self.args.output))

    def status(self) -> None:
        while True:
            promotion = self.kube.get("modelpromotions", self.namespace, self.args.promotion)
            self.out(promotion if self.args.output != "table" else None, render.promotion_status(promotion))
            if not self.args.watch or reason_of(promotion) in TERMINAL:
                return
            time.sleep(self.args.interval)
            print("---")


def parser() -> argparse.ArgumentParser:
    connection = argparse.ArgumentParser(add_help=False)
    connection.add_argument("--kubeconfig", help="path to the kubeconfig (default: $KUBECONFIG or ~/.kube/config)")
    connection.add_argument("--context", help="kubeconfig context to use")
    connection.add_argument("-n", "--namespace", help="namespace (default: the context's)")
    common = argparse.ArgumentParser(add_help=False, parents=[connection])
    common.add_argument("-o", "--output", choices=["table", "yaml", "json"], default="table")
    top = argparse.ArgumentParser(prog="kubectl modelreg", description=__doc__, parents=[common])
    sub = top.add_subparsers(dest="command", required=True)

    def command(name: str, help_: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help_, parents=[common])

    p = command("register", "upload an artifact and print or apply its ModelVersion")
    p.add_argument("model")
    p.add_argument("--version", type=int, required=True)
    p.add_argument("--file")
    p.add_argument("--dir")
    p.add_argument("--to", required=True, metavar="s3://bucket/prefix")
    p.add_argument("--metric", action="append", default=[], metavar="K=V")
    p.add_argument("--param", action="append", default=[], metavar="K=V")
    p.add_argument("--run-id")
    p.add_argument("--commit")
    p.add_argument("--experiment")
    p.add_argument("--parent", type=int, metavar="VERSION")
    p.add_argument(
        "--format",
        choices=["onnx", "pytorch", "tensorflow", "sklearn", "xgboost", "lightgbm", "mlflow", "huggingface", "other"],
    )
    p.add_argument("--description")
    p.add_argument("--apply", action="store_true", help="create it in the cluster instead of printing it")

    p = command("promote", "print or apply a ModelPromotion")
    p.add_argument("model")
    p.add_argument("version", type=int)
    p.add_argument("--to", required=True, choices=[s.value for s in TARGETS])
    p.add_argument("--reason")
    p.add_argument("--name", help="promotion name (default: MODEL-vN-to-stage)")
    p.add_argument(
        "--criteria",
        action="append",
        default=[],
        metavar="EXPR",
        help="METRIC>=N, METRIC<=N or METRIC~N (max regression); repeatable",
    )
    p.add_argument("--apply", action="store_true")

    for name in ("approve", "unapprove"):
        command(name, f"{name} a promotion as the current user").add_argument("promotion")
    p = command("list", "registered versions")
    p.add_argument("model", nargs="?")
    p.add_argument("-A", "--all-namespaces", action="store_true")
    p = command("describe", "a model's versions, or one version")
    p.add_argument("model")
    p.add_argument("number", type=int, nargs="?")
    p = command("history", "stage timeline of a model, with approvers")
    p.add_argument("model")
    p.add_argument(
        "--at", type=timestamp, help="what held each stage at this time (RFC 3339, e.g. 2026-11-01T12:00:00Z)"
    )
    p = command("diff", "metrics, hyperparameters and lineage of two versions")
    p.add_argument("model")
    p.add_argument("a", type=int)
    p.add_argument("b", type=int)
    p = command("lineage", "a version's parents and training data")
    p.add_argument("model")
    p.add_argument("number", type=int)
    p = sub.add_parser(
        "resolve",
        help="the proven artifact of MODEL@STAGE or MODEL@VERSION (exit 1 when nothing proven holds it)",
        parents=[connection],
    )
    p.add_argument("reference", metavar="MODEL@STAGE|MODEL@VERSION", help="e.g. fraud@production, fraud@3")
    p.add_argument(
        "-o",
        "--output",
        choices=["uri", "json", "yaml", "env"],
        default="uri",
        help="uri (default); json/yaml: URI, sha256, versionId, version, name, stage, approvers; "
        "env: KEY=value lines as a serving pod sees them ($GITHUB_ENV, --env-file; not shell-quoted)",
    )
    p = command("status", "a promotion's approvals and rollout")
    p.add_argument("promotion")
    p.add_argument("--watch", "-w", action="store_true")
    p.add_argument("--interval", type=float, default=2.0, help=argparse.SUPPRESS)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    commands = Commands(args)
    handler = (
        (lambda: commands.approve(remove=True)) if args.command == "unapprove" else getattr(commands, args.command)
    )
    try:
        handler()
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (KubeClientError, StorageFailure, client.Unresolvable) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
