"""kubectl-modelreg: register, promote, approve and inspect models (`kubectl modelreg ...`)."""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import io
import os
import re
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

import argcomplete

from modelreg import GROUP, VERSION, client
from modelreg.cli import render
from modelreg.cli.progress import Bar
from modelreg.domain.approvals import approval_key
from modelreg.domain.artifacts import InvalidURIError, Location, directory_digest, parse_uri
from modelreg.domain.promotions import TERMINAL, reason_of
from modelreg.models.resources import DNS1123_LABEL
from modelreg.models.stages import TARGETS
from modelreg.storage.kube_client import KubeClient, KubeClientError
from modelreg.storage.local_files import directory_files, file_sha256
from modelreg.storage.s3 import StorageFailure, make_client, storage_digest, stored_already, upload


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
    """An RFC 3339 time, in UTC (a time without a zone is read as UTC, as the cluster's times are)."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an RFC 3339 time: {text!r} (e.g. 2026-11-01T12:00:00Z)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ").replace(".000000Z", "Z")


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
            self._kube = KubeClient(self.args.kubeconfig, self.args.context, self.args.as_user)
        return self._kube

    @property
    def namespace(self) -> str:
        return self.args.namespace or self.kube.default_namespace

    def out(self, data: Any, table: str, wide: str | None = None) -> None:
        """kubectl's -o: table (wide: more columns), name, or json/yaml (a listing as a `List`)."""
        output = self.args.output
        if output in ("table", "wide"):
            print(wide if output == "wide" and wide is not None else table)
        elif output == "name":
            if self.args.command in _NOT_OBJECTS:
                raise UsageError(f"-o name: {self.args.command} shows no Kubernetes objects (use -o json or -o yaml)")
            objects = data if isinstance(data, list) else [data]
            names = [render.resource_name(o) for o in objects if isinstance(o, dict) and "kind" in o]
            if names:  # none: nothing, as kubectl prints for an empty list
                print("\n".join(names))
        elif output.startswith("jsonpath="):
            try:
                print(render.jsonpath(output.removeprefix("jsonpath="), render.as_list(data)), end="")
            except render.JsonPathError as exc:
                raise UsageError(str(exc)) from None
        else:
            print(render.dump(render.as_list(data), output))

    def versions(self, model: str, namespace: str | None = None) -> list[dict[str, Any]]:
        """A model's versions: each number's owner only (a later registration of it is a duplicate)."""
        found = [
            v
            for v in self.kube.list("modelversions", namespace or self.namespace)
            if v["spec"]["modelName"] == model and render.ready_reason(v) != "DuplicateVersion"
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
        """Register bytes without ever changing bytes a ModelVersion names: everything a user can
        get wrong is checked before the first byte is uploaded, and an existing object is never
        overwritten (the same bytes are not uploaded again; other bytes are refused)."""
        a = self.args
        if sum(map(bool, (a.file, a.dir, a.existing))) != 1:
            raise UsageError("give exactly one of --file, --dir or --existing")
        name = _name(a.model, a.version)
        if not re.fullmatch(DNS1123_LABEL, a.model) or len(a.model) > 63 or len(name) > 253:
            raise UsageError(f"model name {a.model!r}: lowercase letters, digits and '-' only (a DNS label)")
        if a.version < 1:
            raise UsageError(f"--version {a.version}: versions start at 1")
        metrics = key_values(a.metric, "metric", number=True)
        params = key_values(a.param, "param", number=False)
        source = Path(a.file or a.dir or ".")
        if a.file and not source.is_file():
            raise UsageError(f"--file {source}: no such file")
        if a.dir and not source.is_dir():
            raise UsageError(f"--dir {source}: no such directory")
        if bool(a.existing) == bool(a.to):
            raise UsageError("--to names where --file or --dir goes; --existing names what is there already")
        try:
            target = parse_uri(a.existing or (a.to.rstrip("/") + "/" if a.dir else a.to))
        except InvalidURIError as exc:
            raise UsageError(f"--{'existing' if a.existing else 'to'}: {exc}") from None
        if a.apply:
            self._not_registered(a.model, a.version, name)
        client = make_client()
        if a.existing:  # already in storage: nothing uploaded, its digest from storage
            location = target
            sha, size = storage_digest(client, location)
        elif a.file:
            # a prefix (ending in /) takes the file's name; anything else is the exact key
            location = Location(target.bucket, target.key + source.name) if target.is_directory else target
            sha, size = file_sha256(source), source.stat().st_size
            self._upload(client, [(source, location, sha)])
        else:
            location = target
            files = directory_files(source)
            if not files:
                raise UsageError(f"--dir {source}: no files to register")
            hashed = [(path, Location(target.bucket, target.key + key), file_sha256(path)) for key, path in files]
            sha = directory_digest((item[1].key[len(target.key) :], item[2]) for item in hashed)
            size = sum(path.stat().st_size for _, path in files)
            self._upload(client, hashed)
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

    def _not_registered(self, model: str, version: int, name: str) -> None:
        taken = [
            v["metadata"]["name"]
            for v in self.kube.list("modelversions", self.namespace)
            if v["metadata"]["name"] == name
            or (v["spec"].get("modelName") == model and v["spec"].get("version") == version)
        ]
        if taken:
            raise KubeClientError(
                f"version {version} of model {model!r} is already registered in namespace {self.namespace} "
                f"(ModelVersion {taken[0]}): nothing was uploaded; register a new version instead"
            )

    def _upload(self, client: Any, items: list[tuple[Path, Location, str]]) -> None:
        """Each file to its key, unless the key already holds it (same SHA-256): never over other bytes."""
        todo = [(path, location) for path, location, sha in items if not stored_already(client, location, sha)]
        bar = Bar("uploading")
        bar.started(sum(path.stat().st_size for path, _ in todo))
        try:
            for path, location in todo:
                upload(client, str(path), location, bar.advance)
        finally:
            bar.finish()
        if todo:
            print(f"uploaded {len(todo)} object(s) with SHA-256 checksums", file=sys.stderr)
        if len(todo) < len(items):
            print(f"{len(items) - len(todo)} object(s) already in storage with these bytes", file=sys.stderr)

    def _emit(self, body: dict[str, Any], plural: str, applied_message: str) -> None:
        if self.args.apply:
            self.kube.create(plural, self.namespace, body)
            print(applied_message)
        else:
            print(render.dump(body, "json" if self.args.output == "json" else "yaml"))

    def promote(self) -> None:
        a = self.args
        if a.apply and not a.allow_pending:  # a typo would otherwise wait forever, "created"
            self.version(a.model, a.version)
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
        promotion = self.kube.get("modelpromotions", self.namespace, self.args.promotion)  # "not found" in words
        user = self.kube.whoami()  # the admission webhook checks the rest, and says why it refuses
        if remove and approval_key(user) not in (promotion["metadata"].get("annotations") or {}):
            print(f"{user} has no approval on {self.args.promotion} to remove")
            return
        self.kube.annotate(
            "modelpromotions", self.namespace, self.args.promotion, {approval_key(user): None if remove else user}
        )
        print(f"{'removed the approval of' if remove else 'approved'} {self.args.promotion} as {user}")

    def ui(self) -> int:
        """A local web interface acting as the user (their kubeconfig, context and --as)."""
        from modelreg.cli.ui.security import is_loopback
        from modelreg.cli.ui.server import Pages, UIServer  # jinja2 only when the UI runs

        namespace = None if self.args.all_namespaces else self.namespace
        pages = Pages(self.kube, namespace, self.kube.whoami(), self.args.context or "")
        try:
            server = UIServer(pages, self.args.address, self.args.port)
        except (OSError, OverflowError) as exc:  # in use, not an address here, ...
            reason = getattr(exc, "strerror", None) or str(exc)
            raise UsageError(f"cannot listen on {self.args.address}:{self.args.port}: {reason}") from None
        if not is_loopback(self.args.address):
            print(
                f"warning: listening on {self.args.address}, not loopback: anyone who can reach it and has the URL "
                f"acts as {pages.viewer}",
                file=sys.stderr,
            )
        print(f"modelreg ui as {pages.viewer} ({namespace or 'all namespaces'}): {server.url}", flush=True)
        print("Press Ctrl-C to stop.", flush=True)
        if not self.args.no_browser:
            import webbrowser

            webbrowser.open(server.url)
        try:
            server.serve_forever()
        finally:
            server.httpd.server_close()
        return 0

    def completion(self) -> None:
        """For kubectl-modelreg and `kubectl modelreg` alike (kubectl asks kubectl_complete-modelreg)."""
        print(argcomplete.shellcode(["kubectl-modelreg"], shell=self.args.shell))

    # -- reading --------------------------------------------------------------------------
    def list(self) -> None:
        namespace = None if self.args.all_namespaces else self.namespace
        versions = [
            v
            for v in self.kube.list("modelversions", namespace)
            if self.args.model in (None, v["spec"]["modelName"]) and render.ready_reason(v) != "DuplicateVersion"
        ]
        if not versions and self.args.model:
            raise KubeClientError(f"model {self.args.model!r} has no registered versions")
        if not versions and self.args.output in ("table", "wide"):  # kubectl's words, not a bare header
            print("No resources found" + (f" in {namespace} namespace." if namespace else ""), file=sys.stderr)
            return
        wide_namespace = namespace is None
        self.out(
            versions,
            render.version_rows(versions, wide_namespace=wide_namespace),
            render.version_rows(versions, wide_namespace=wide_namespace, wide=True),
        )

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
        a = self.args
        output = "uri" if a.output == "table" else a.output  # the flags' default before the subcommand
        if output not in _RESOLVE_OUTPUTS:
            raise UsageError(f"resolve: -o {output}: expected one of {', '.join(_RESOLVE_OUTPUTS)}")
        try:
            found = client.resolve(a.reference, a.namespace, a.context, a.kubeconfig, a.as_user)
        except client.InvalidReference as exc:
            raise UsageError(str(exc)) from None
        print(render.resolved(found, output))

    def status(self) -> int:
        """With --watch: exit 0 once the promotion is Promoted, 1 when it ends otherwise (or at
        --timeout), so a pipeline can gate on it."""
        deadline = time.monotonic() + self.args.timeout if self.args.timeout else None
        shown = None  # printed again only when it changed, as `kubectl get -w` prints
        while True:
            promotion = self.kube.get("modelpromotions", self.namespace, self.args.promotion)
            table = render.promotion_status(promotion)
            current = table if self.args.output in ("table", "wide") else promotion["metadata"].get("resourceVersion")
            if current != shown:
                if shown is not None:
                    print("---")
                self.out(promotion if self.args.output != "table" else None, table)
                shown = current
            reason = reason_of(promotion)
            if not self.args.watch:
                return 0
            if reason in TERMINAL:
                return 0 if reason == "Promoted" else 1
            if deadline is not None and time.monotonic() >= deadline:
                print(
                    f"error: {self.args.promotion} still {reason or 'pending'} after {self.args.timeout:g}s",
                    file=sys.stderr,
                )
                return 1
            time.sleep(self.args.interval)


_RESOLVE_OUTPUTS = ("uri", "json", "yaml", "env")
# what these print are timelines, comparisons and trees: there is no object to name
_NOT_OBJECTS = {"history", "diff", "lineage"}


def _version() -> str:
    try:
        return importlib.metadata.version("modelreg")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


_OUTPUTS = ("table", "wide", "name", "yaml", "json", "jsonpath=TEMPLATE")
_OUTPUT_HELP = (
    "output format: a table (wide: more columns), resource names, the objects as YAML/JSON, or kubectl's "
    "jsonpath (e.g. -o jsonpath='{.items[*].metadata.name}')"
)


def _port(value: str) -> int:
    if not value.isdigit() or int(value) > 65535:
        raise argparse.ArgumentTypeError(f"{value!r}: a port is a number from 0 to 65535 (0: any free port)")
    return int(value)


def _output_format(outputs: tuple[str, ...]) -> Any:
    def parse(value: str) -> str:
        if value in outputs or ("jsonpath=TEMPLATE" in outputs and value.startswith("jsonpath=")):
            return value
        raise argparse.ArgumentTypeError(f"{value!r}: expected {', '.join(outputs)}")

    return parse


def _global_flags(
    defaults: bool, outputs: tuple[str, ...] = _OUTPUTS, output_help: str = _OUTPUT_HELP
) -> argparse.ArgumentParser:
    """kubectl's flags, taken before or after the subcommand. The subcommand's copy has no defaults
    (SUPPRESS): argparse would otherwise overwrite a value given before the subcommand with them."""
    flags = argparse.ArgumentParser(add_help=False)

    def default(value: Any) -> Any:
        return value if defaults else argparse.SUPPRESS

    flags.add_argument(
        "--kubeconfig",
        default=default(None),
        help="path to the kubeconfig (default: $KUBECONFIG or ~/.kube/config; e.g. --kubeconfig ~/.kube/prod)",
    )
    flags.add_argument("--context", default=default(None), help="kubeconfig context to use (e.g. --context prod)")
    flags.add_argument(
        "-n", "--namespace", default=default(None), help="namespace (default: the context's; e.g. -n ml)"
    )
    flags.add_argument(
        "-A",
        "--all-namespaces",
        action="store_true",
        default=default(False),
        help="every namespace you may list (e.g. list -A)",
    )
    flags.add_argument(
        "-o",
        "--output",
        type=_output_format(outputs),
        metavar="|".join(outputs),
        default=default("table"),
        help=output_help,
    )
    flags.add_argument(
        "--as", dest="as_user", metavar="USER", default=default(None), help="act as USER (impersonation, e.g. --as bob)"
    )
    return flags


def _from_cluster(what: str) -> Callable[..., list[str]]:
    """An argcomplete completer: names from the cluster, asked as the user (as kubectl completes
    names); nothing when it cannot ask, since a completion must never print an error."""

    def completer(prefix: str, parsed_args: argparse.Namespace, **_: Any) -> list[str]:
        flags = {k: getattr(parsed_args, k, None) for k in ("kubeconfig", "context", "as_user", "namespace")}
        try:
            kube = KubeClient(flags["kubeconfig"], flags["context"], flags["as_user"])
            namespace = flags["namespace"] or kube.default_namespace
            if what == "promotions":
                names = [p["metadata"]["name"] for p in kube.list("modelpromotions", namespace)]
            else:
                models = sorted({v["spec"]["modelName"] for v in kube.list("modelversions", namespace)})
                stages = ("production", "staging")
                names = models if what == "models" else [f"{m}@{stage}" for m in models for stage in stages]
        except Exception:  # no cluster, no permission, a bad kubeconfig: no candidates
            return []
        return [name for name in names if name.startswith(prefix)]

    return completer


_PROMOTIONS, _MODELS, _REFERENCES = _from_cluster("promotions"), _from_cluster("models"), _from_cluster("references")


def _no_candidates(**_: Any) -> list[str]:  # a completer for numbers: neither names nor files
    return []


class _Parser(argparse.ArgumentParser):
    """A bad argument is one line, as kubectl says it, not argparse's usage block first (the
    subcommands' parsers are of this class too)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def parser() -> argparse.ArgumentParser:
    top = _Parser(prog="kubectl modelreg", description=__doc__, parents=[_global_flags(True)])
    top.add_argument(
        "--version",
        action="version",
        version=f"kubectl-modelreg {_version()}",
        help="print the version (e.g. --version)",
    )
    sub = top.add_subparsers(dest="command", required=True)
    common = _global_flags(False)

    def command(name: str, help_: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help_, parents=[common])

    p = command("register", "upload an artifact and print or apply its ModelVersion")
    p.add_argument("model").completer = _MODELS
    p.add_argument("--version", type=int, required=True, help="the version number, from 1 (e.g. --version 3)")
    p.add_argument("--file", help="a local file to upload (e.g. --file model.onnx)")
    p.add_argument("--dir", help="a local directory to upload, every file under it (e.g. --dir ./checkpoint)")
    p.add_argument(
        "--existing",
        metavar="s3://bucket/key",
        help="register an object (or a prefix/ of objects) already in storage: nothing is uploaded "
        "(e.g. --existing s3://models/fraud/3/model.onnx)",
    )
    p.add_argument(
        "--to",
        metavar="s3://bucket/key",
        help="where to upload: a URI ending in / is a prefix (the file's name is appended), "
        "anything else the exact key (e.g. --to s3://models/fraud/3/ or --to s3://models/fraud/3/model.onnx)",
    )
    p.add_argument(
        "--metric", action="append", default=[], metavar="K=V", help="a metric, repeatable (e.g. --metric auc=0.94)"
    )
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="K=V",
        help="a hyperparameter, repeatable (e.g. --param depth=6)",
    )
    p.add_argument("--run-id", help="the training run's id, for lineage (e.g. --run-id 3f2a9c1e)")
    p.add_argument("--commit", help="the code commit it was trained from (e.g. --commit 1a2b3c4)")
    p.add_argument("--experiment", help="the experiment's name (e.g. --experiment fraud-detection)")
    p.add_argument("--parent", type=int, metavar="VERSION", help="the version it was derived from (e.g. --parent 2)")
    p.add_argument(
        "--format",
        choices=["onnx", "pytorch", "tensorflow", "sklearn", "xgboost", "lightgbm", "mlflow", "huggingface", "other"],
        help="the artifact's format (e.g. --format onnx)",
    )
    p.add_argument("--description", help="free text (e.g. --description 'retrained on November data')")
    p.add_argument(
        "--apply",
        action="store_true",
        help="create it in the cluster instead of printing it (e.g. register fraud --version 3 --file m.onnx "
        "--to s3://models/fraud/3/ --apply)",
    )

    p = command("promote", "print or apply a ModelPromotion")
    p.add_argument("model").completer = _MODELS
    p.add_argument("version", type=int).completer = _no_candidates
    p.add_argument("--to", required=True, choices=[s.value for s in TARGETS], help="the stage (e.g. --to Production)")
    p.add_argument("--reason", help="why, for the history (e.g. --reason 'better AUC on the backtest')")
    p.add_argument("--name", help="promotion name (default: MODEL-vN-to-stage; e.g. --name fraud-hotfix)")
    p.add_argument(
        "--criteria",
        action="append",
        default=[],
        metavar="EXPR",
        help="METRIC>=N, METRIC<=N or METRIC~N (max regression); repeatable (e.g. --criteria 'auc>=0.9')",
    )
    p.add_argument(
        "--apply",
        action="store_true",
        help="create it in the cluster instead of printing it (e.g. promote fraud 3 --to Staging --apply)",
    )
    p.add_argument(
        "--allow-pending",
        action="store_true",
        help="create it even though the version is not registered yet (it waits for it; e.g. promote fraud 4 "
        "--to Staging --allow-pending --apply)",
    )

    for name in ("approve", "unapprove"):
        command(name, f"{name} a promotion as the current user").add_argument("promotion").completer = _PROMOTIONS
    p = command("list", "registered versions")
    p.add_argument("model", nargs="?").completer = _MODELS
    p = command("describe", "a model's versions, or one version")
    p.add_argument("model").completer = _MODELS
    p.add_argument("number", type=int, nargs="?").completer = _no_candidates
    p = command("history", "stage timeline of a model, with approvers")
    p.add_argument("model").completer = _MODELS
    p.add_argument(
        "--at", type=timestamp, help="what held each stage at this time (RFC 3339, e.g. 2026-11-01T12:00:00Z)"
    )
    p = command("diff", "metrics, hyperparameters and lineage of two versions")
    p.add_argument("model").completer = _MODELS
    p.add_argument("a", type=int).completer = _no_candidates
    p.add_argument("b", type=int).completer = _no_candidates
    p = command("lineage", "a version's parents and training data")
    p.add_argument("model").completer = _MODELS
    p.add_argument("number", type=int).completer = _no_candidates
    p = command("ui", "a local web interface acting with your kubeconfig credentials (prints its URL)")
    p.add_argument("--port", type=_port, default=0, help="port to listen on (default: any free port; e.g. --port 8080)")
    p.add_argument(
        "--address", default="127.0.0.1", help="address to listen on (default: loopback only; e.g. --address ::1)"
    )
    p.add_argument(
        "--no-browser",
        action="store_true",
        help="only print the URL, do not open a browser (e.g. ui --no-browser --as bob)",
    )
    p = command("completion", "print a shell completion script (e.g. source <(kubectl modelreg completion bash))")
    p.add_argument("shell", choices=["bash", "zsh", "fish"])
    resolve_flags = _global_flags(
        False,
        _RESOLVE_OUTPUTS,
        "uri (default); json/yaml: URI, sha256, versionId, version, name, stage, approvers; "
        "env: KEY=value lines as a serving pod sees them ($GITHUB_ENV, --env-file; not shell-quoted; "
        "e.g. -o env >> $GITHUB_ENV)",
    )
    p = sub.add_parser(
        "resolve",
        help="the proven artifact of MODEL@STAGE or MODEL@VERSION (exit 1 when nothing proven holds it)",
        parents=[resolve_flags],
    )
    p.add_argument(
        "reference", metavar="MODEL@STAGE|MODEL@VERSION", help="e.g. fraud@production, fraud@3"
    ).completer = _REFERENCES
    p = command("status", "a promotion's approvals and rollout")
    p.add_argument("promotion").completer = _PROMOTIONS
    p.add_argument(
        "--watch",
        "-w",
        action="store_true",
        help="follow it until it ends: exit 0 when Promoted, 1 otherwise (e.g. status fraud-v3-to-production -w)",
    )
    p.add_argument(
        "--timeout",
        type=float,
        metavar="SECONDS",
        help="with --watch: give up (exit 1) after this long (e.g. --timeout 600)",
    )
    p.add_argument("--interval", type=float, default=2.0, help=argparse.SUPPRESS)
    return top


def main(argv: list[str] | None = None) -> int:
    top = parser()
    argcomplete.autocomplete(top)  # answers the shell's completion requests, then exits
    args = top.parse_args(argv)
    commands = Commands(args)
    handler = (
        (lambda: commands.approve(remove=True)) if args.command == "unapprove" else getattr(commands, args.command)
    )
    try:
        return handler() or 0
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (KubeClientError, StorageFailure, client.Unresolvable) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `... | head`: the reader has what it wanted
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 0


if __name__ == "__main__":
    sys.exit(main())


def complete(argv: list[str] | None = None) -> int:
    """`kubectl_complete-modelreg ARGS... PARTIAL`: what kubectl runs to complete `kubectl modelreg`
    (Cobra's protocol: one candidate a line, then `:<directive>`; 4 = no file completion)."""
    words = list(sys.argv[1:] if argv is None else argv) or [""]
    line = " ".join(["kubectl-modelreg", *words])
    env = {"_ARGCOMPLETE": "1", "_ARGCOMPLETE_IFS": "\n", "COMP_LINE": line, "COMP_POINT": str(len(line))}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    found = io.StringIO()
    try:
        argcomplete.autocomplete(parser(), output_stream=found, exit_method=lambda code=0: None)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    candidates = [c.strip() for c in found.getvalue().split("\n") if c.strip()]
    print("\n".join([*candidates, ":4"]))
    return 0
