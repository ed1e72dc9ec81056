"""The `mlbridge` command line."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

from . import __version__
from .config import DEFAULT_SERVER, model_base, resolve_dsn, server_target
from .errors import MlbridgeError
from .serving_constants import DEFAULT_PORT
from .serving_security import add_client_arguments
from .serving_settings import add_arguments as add_serving_arguments


def _server_package(command: str):
    try:
        import mlbridge_server  # noqa: F401
    except ImportError:
        raise MlbridgeError(
            f"mlbridge: `mlbridge {command}` runs on TensorFlow and needs the mlbridge-server package: "
            "pip install mlbridge-server (or `pip install -e server` in a checkout)"
        ) from None
    from mlbridge_server.tf_runtime import import_quietly

    import_quietly()


# -- db ---------------------------------------------------------------------------------------

def cmd_db_install(args) -> int:
    from .db.install import install

    dsn = resolve_dsn(args.dsn)
    report = install(dsn)
    for warning in report.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if report.changed:
        print(f"schema {report.schema} on {report.flavor}: migrations {report.migrations_applied or 'none'}, "
              f"{len(report.routines_created)} routines created, {report.routines_unchanged} unchanged")
    else:
        print(f"schema {report.schema} on {report.flavor} is up to date")
    return 0


def cmd_db_grant(args) -> int:
    from .db import connect
    from .db.accounts import ROLES, Account, grant
    from .db.install import DEFINER

    dsn = resolve_dsn(args.dsn)
    role = ROLES["admin" if args.admin else "worker" if args.worker else "user"]
    conn = connect(dsn)
    try:
        for line in grant(conn, dsn.database, Account.parse(args.account), role, DEFINER):
            print(line)
    finally:
        conn.close()
    return 0


def cmd_db_local(args) -> int:
    from .db.local import LocalServer

    server = LocalServer.default()
    server.tls = args.tls
    if args.action == "start":
        dsn = server.start()
        print(dsn)
    elif args.action == "stop":
        print("stopped" if server.stop() else "not running")
    else:
        status = server.status()
        print(json.dumps(status, indent=2))
        return 0 if status["running"] else 3
    return 0


# -- serving ----------------------------------------------------------------------------------

def cmd_serve(args) -> int:
    from .serving_settings import ServerSettings

    settings = ServerSettings.resolve(args)  # a bad setting is refused before TensorFlow loads
    _server_package("serve")
    from mlbridge_server.serving.main import run

    return run(settings, ready_file=args.ready_file, verbose=args.verbose)


def cmd_bridge(args) -> int:
    from .bridge import Bridge, BridgeConfig
    from .serving_protocols import resolve_protocol
    from .serving_security import client_security

    bridge = Bridge(BridgeConfig(dsn=resolve_dsn(args.dsn), server=server_target(args.server),
                                 protocol=resolve_protocol(args.protocol),
                                 server_security=client_security(args),
                                 claim_chunks=args.claim_chunks, lease_seconds=args.lease,
                                 metrics_port=args.metrics_port, idle_max=args.idle_max,
                                 local_infile=not args.no_local_infile, purge_every=args.purge_every))
    bridge.install_signal_handlers()
    bridge.run()
    return 0


# -- training ---------------------------------------------------------------------------------

def cmd_train(args) -> int:
    _server_package("train")
    from mlbridge_server.trainer import train

    tuning = {k: v for k, v in (("epochs", args.epochs), ("batch_size", args.batch_size),
                                 ("readers", args.readers)) if v is not None}
    result = train(
        resolve_dsn(args.dsn), args.query, args.label, args.model, model_base(args.model_base),
        key=args.key, progress=not args.quiet, task=args.task, model_type=args.model_type, seed=args.seed,
        validation_fraction=args.validation, test_fraction=args.test, **tuning,
        workers=args.workers.split(",") if args.workers else None, worker_index=args.worker_index,
    )
    if result.version == 0:  # a worker other than the first of a distributed training
        print(f"worker {args.worker_index}: done ({result.rows_train} training rows); worker 0 publishes the version")
        return 0
    shown = {k: v for k, v in result.metrics.items() if isinstance(v, (int, float))}
    metrics = ", ".join(f"{k} {v:.4g}" for k, v in shown.items())
    print(f"model {result.name}:{result.version} ({result.task}, {result.model_type}) -> {result.path}")
    print(f"rows: {result.rows_train} train, {result.rows_validation} validation, {result.rows_test} test")
    for kind, found in result.candidates.items():
        scores = ", ".join(f"{k} {v:.4g}" for k, v in found.items() if isinstance(v, float) and k != "seconds")
        print(f"  {kind}: validation {scores} ({found.get('seconds', 0):.1f} s)")
    print(f"{'test' if result.rows_test else 'validation'}: {metrics}")
    return 0


def cmd_evaluate(args) -> int:
    _server_package("evaluate")
    from mlbridge_server.trainer import evaluate

    metrics = evaluate(resolve_dsn(args.dsn), args.query, args.label, args.model, model_base(args.model_base),
                       key=args.key)
    for name, value in metrics.items():
        print(f"{name}\t{value}")
    return 0


def cmd_explain(args) -> int:
    _server_package("explain")
    from mlbridge_server.trainer.evaluation import explain

    found = explain(resolve_dsn(args.dsn), args.query, args.label, args.model, model_base(args.model_base),
                    key=args.key, seed=args.seed)
    print(f"{found['metric']} on {found['rows']} rows: {found['baseline']:.4g}; the drop when a column is shuffled:")
    for row in found["importance"]:
        print(f"{row['column']}\t{row['importance']:.4g}\t\u00b1{row['std']:.2g}")
    return 0


def cmd_trainer(args) -> int:
    _server_package("trainer")
    import signal

    from mlbridge_server.trainer.worker import TrainerWorker

    worker = TrainerWorker(resolve_dsn(args.dsn), model_base(args.model_base), lease_seconds=args.lease,
                           poll=args.poll)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, worker.stop)
    worker.run()
    return 0


# -- together ---------------------------------------------------------------------------------

def cmd_up(args) -> int:
    from .up import up

    return up(dsn_flag=args.dsn, base=model_base(args.model_base), port=args.port, ready_file=args.ready_file)


def cmd_status(args) -> int:
    from .status import show_status

    return show_status(resolve_dsn(args.dsn), limit=args.limit, request_id=args.request)


# -- parser -----------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mlbridge", description="TensorFlow predictions from MySQL.")
    parser.add_argument("--version", action="version", version=f"mlbridge {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    parser.add_argument("--settings", metavar="PATH",
                        help="TOML settings file with a [database] section: dsn, password, ssl_*, and a "
                             "[serving] section for `mlbridge serve` (default: $MLBRIDGE_SETTINGS); keeps "
                             "the password off the command line")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    dsn_help = ("mysql://user@host:port/mlbridge?ssl_ca=... (default: $MLBRIDGE_DSN, else the settings file's, "
                "else the private database); the password from $MLBRIDGE_DB_PASSWORD or the settings file")

    db = sub.add_parser("db", help="install the schema, run a private database")
    dbsub = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    p = dbsub.add_parser("install", help="install or upgrade schema mlbridge")
    p.add_argument("--dsn", help=dsn_help)
    p.set_defaults(func=cmd_db_install)
    p = dbsub.add_parser("grant", help="give an account an mlbridge role (at its next login) and register it",
                         description="Grant mlbridge_user (default), mlbridge_admin or mlbridge_worker to an "
                                     "existing account as a default role, and register callers: requests belong "
                                     "to the authenticated account, user@host.")
    p.add_argument("account", help="user@host or 'user'@'host' (a bare user means user@'%%')")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--admin", action="store_true", help="mlbridge_admin: labels, retiring versions, purging")
    which.add_argument("--worker", action="store_true", help="mlbridge_worker: for the bridge and trainer accounts")
    p.add_argument("--dsn", help=dsn_help)
    p.set_defaults(func=cmd_db_grant)
    p = dbsub.add_parser("local", help="private MySQL/MariaDB instance under .run/")
    p.add_argument("action", choices=["start", "stop", "status"])
    p.add_argument("--tls", action="store_true",
                   help="start with TLS: a throwaway CA under .run/db/tls/, TCP clients must use TLS, "
                        "the DSN carries ssl_ca")
    p.set_defaults(func=cmd_db_local)

    p = sub.add_parser("serve", help="host the SavedModels of a model base (TF Serving gRPC API)",
                       description="Serve the SavedModels of a model base (BASE/NAME/VERSION/). Flags win over "
                                   "$MLBRIDGE_SERVING_* variables, which win over the settings file's [serving] "
                                   "section (see docs/serving.md).")
    add_serving_arguments(p)
    p.add_argument("--ready-file", help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("bridge", help="score predict_queue on the model server")
    p.add_argument("--dsn", help=dsn_help)
    p.add_argument("--server", help=f"model server host:port (default: $MLBRIDGE_SERVER or {DEFAULT_SERVER})")
    p.add_argument("--protocol", choices=("tfserving", "v2"), default=None,
                   help="what the model server speaks: tfserving (TF Serving's gRPC API) or v2 (the Open "
                        "Inference Protocol of Triton, MLServer, KServe; default: $MLBRIDGE_SERVER_PROTOCOL, "
                        "else tfserving); mlbridge serve speaks both")
    p.add_argument("--claim-chunks", type=int, default=2, help="chunks claimed at a time")
    p.add_argument("--lease", type=int, default=60, help="seconds a claim holds before another bridge may take it")
    p.add_argument("--metrics-port", type=int, default=None, help="Prometheus metrics port (e.g. 8503)")
    p.add_argument("--idle-max", type=float, default=0.5,
                   help="longest wait for work before looking at the queue again (queueing wakes it sooner)")
    p.add_argument("--purge-every", type=float, default=60.0,
                   help="seconds between purges of requests past the retention_days setting (0: never)")
    p.add_argument("--no-local-infile", action="store_true",
                   help="write results with INSERT, never LOAD DATA LOCAL")
    add_client_arguments(p)
    p.set_defaults(func=cmd_bridge)

    def training_args(p, *, train: bool) -> None:
        p.add_argument("--dsn", help=dsn_help)
        p.add_argument("--query", required=True, help="SELECT with the feature columns and the label")
        p.add_argument("--label", required=True, help="the label column")
        p.add_argument("--model", required=True, help="model name" + ("" if train else ", name:version"))
        p.add_argument("--model-base", help="default: $MLBRIDGE_MODEL_BASE or ./models")
        p.add_argument("--key", default=None,
                       help="key column, never a feature: its hash splits rows into train, validation and test"
                            + ("" if train else "; evaluate then scores the test rows only") + " (default: id)")

    p = sub.add_parser("train", help="train a model version on a query's rows")
    training_args(p, train=True)
    p.add_argument("--task", choices=["regression", "binary", "multiclass"], default=None,
                   help="default: from the label (numbers: regression, 0/1: binary, strings: classes)")
    p.add_argument("--model-type", choices=["auto", "linear", "mlp", "gbt"], default="auto",
                   help="auto (default) fits all three and keeps the best on the validation rows")
    p.add_argument("--epochs", type=int, default=None, help="most epochs for the networks (default: 200 on small "
                   "tables, fewer as rows grow; training stops early when the validation loss stops improving)")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--seed", type=int, default=0, help="the same seed and rows give the same model")
    p.add_argument("--validation", type=float, default=0.1, help="share of rows that choose the model (0.1)")
    p.add_argument("--test", type=float, default=0.1, help="share of rows that measure it (0.1; 0 for none)")
    p.add_argument("--readers", type=int, default=None, help="parallel readers by an integer key's range "
                   "(default 1; more pay off against a remote or busy database, see BENCHMARKS.md)")
    p.add_argument("--workers", default=None, metavar="HOST:PORT,...",
                   help="train one network across these workers (MultiWorkerMirroredStrategy), the same list on "
                        "each; each reads its own slice of the integer key's range")
    p.add_argument("--worker-index", type=int, default=0, help="this worker's place in --workers (0 publishes)")
    p.add_argument("--quiet", action="store_true", help="no progress (a bar on a terminal, else a line per epoch)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="metrics of a model on labelled rows")
    training_args(p, train=False)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("explain", help="permutation importance of each input column on labelled rows")
    training_args(p, train=False)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_explain)

    p = sub.add_parser("trainer", help="worker for the train_model / score_model / explain_model jobs of SQL users")
    p.add_argument("--dsn", help=dsn_help)
    p.add_argument("--model-base", help="where trained versions go: the model server's model base")
    p.add_argument("--lease", type=int, default=60, help="seconds a claim holds before another worker may take it")
    p.add_argument("--poll", type=float, default=1.0, help="seconds between looks at the job table when idle")
    p.set_defaults(func=cmd_trainer)

    p = sub.add_parser("up", help="database + model server + bridge; Ctrl-C stops all")
    p.add_argument("--dsn", help="use this database instead of the private one")
    p.add_argument("--model-base")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help="model server port")
    p.add_argument("--ready-file", help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_up)

    p = sub.add_parser("status", help="your requests and their progress")
    p.add_argument("--dsn", help=dsn_help)
    p.add_argument("--limit", type=int, default=20)
    p.add_argument("--request", type=int, default=None, help="follow one request with a progress bar")
    p.set_defaults(func=cmd_status)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.settings:  # through the environment, so that processes this one starts read it too
        os.environ["MLBRIDGE_SETTINGS"] = os.path.abspath(args.settings)
    # Before TensorFlow loads (serve, train, evaluate): keep its C++ start-up chatter out of the way.
    # -v shows them all.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0" if args.verbose else "3")
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s %(message)s", stream=sys.stderr,
    )
    if not args.verbose:  # TensorFlow's own Python chatter (asset writes, renamed inputs)
        for name in ("absl", "tensorflow"):
            logging.getLogger(name).setLevel(logging.ERROR)
    try:
        return args.func(args) or 0
    except MlbridgeError as exc:
        print(str(exc) if str(exc).startswith("mlbridge:") else f"mlbridge: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        # The database's own refusals (a mlbridge routine's SIGNAL, a privilege denied) are
        # answers for the user, not crashes: one line, MySQL's words.
        if type(exc).__module__.startswith("mysql.connector") and getattr(exc, "msg", None):
            print(exc.msg if exc.msg.startswith("mlbridge:") else f"mlbridge: the database said: {exc.msg}",
                  file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
