"""The `switchyard` command: `serve`, `keys create|list|update|revoke|delete`, `credits add`.

Every failure a user can cause (a bad flag or variable, a port in use, an unusable data
directory or database, a bad config) ends as `switchyard: error: ...` on stderr, saying
what and where, and exit status 2; a traceback means a bug.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, NoReturn

from service.accounting.periods import RESETS
from service.config import ConfigError
from service.startup import DATABASE, StartupError, check_database, prepare_data_dir
from service.store.keys import KeyRecord

DEFAULT_CONFIG = "switchyard.yaml"  # used when present in the working directory
DEFAULT_SHUTDOWN_GRACE = 30.0  # seconds for requests in flight to finish at shutdown
USAGE_ERROR = 2


class Parser(argparse.ArgumentParser):
    """argparse, with its errors in the one-line form every other error of the CLI has."""

    def error(self, message: str) -> NoReturn:
        self.exit(USAGE_ERROR, f"switchyard: error: {message} (see `{self.prog} --help`)\n")


def port(value: str) -> int:
    """A TCP port to listen on: 1 to 65535."""
    try:
        number = int(value, 10)
    except ValueError:
        number = -1
    if not 1 <= number <= 65535:
        raise argparse.ArgumentTypeError(f"invalid port {value!r} (expected 1 to 65535)")
    return number


def positive_int(value: str) -> int:
    try:
        number = int(value, 10)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"invalid count {value!r} (expected 1 or more)")
    return number


def seconds(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if not 0 <= number <= 86_400:  # also refuses NaN
        raise argparse.ArgumentTypeError(f"invalid duration {value!r} (expected 0 to 86400 s)")
    return number


def limit_reset(value: str) -> str:
    """A budget period, as the admin API's `limit_reset` has it; `none` clears it."""
    if value not in (*RESETS, "none"):
        raise argparse.ArgumentTypeError(
            f"invalid budget period {value!r} (expected {', '.join(RESETS)} or none)"
        )
    return value


def _setting(given: Any, env: str, default: Any, parse: Callable[[str], Any]) -> Any:
    """A flag's value, else its environment variable's (checked like the flag), else the
    default. Read after parsing, so that a bad variable is reported, not a traceback."""
    if given is not None:
        return given
    raw = os.environ.get(env)
    if not raw:
        return default
    try:
        return parse(raw)
    except argparse.ArgumentTypeError as exc:
        raise StartupError(f"{env}: {exc}") from None


def _data_dir(args: argparse.Namespace) -> Path:
    given = getattr(args, "serve_data_dir", None) or args.data_dir  # before or after `serve`
    return Path(given or os.environ.get("SWITCHYARD_DATA_DIR") or ".switchyard")


def _version() -> str:
    try:
        return metadata.version("switchyard")
    except metadata.PackageNotFoundError:  # run from a source tree that is not installed
        return "unknown"


def _parser() -> argparse.ArgumentParser:
    parser = Parser(prog="switchyard", description=__doc__.split("\n", 1)[0])
    parser.add_argument("--version", action="version", version=f"switchyard {_version()}")
    parser.add_argument("--data-dir", help="state directory (env SWITCHYARD_DATA_DIR)")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the gateway")
    serve.add_argument(
        "--config",
        help=f"YAML config (env SWITCHYARD_CONFIG; default ./{DEFAULT_CONFIG} if present)",
    )
    serve.add_argument("--data-dir", dest="serve_data_dir", help=argparse.SUPPRESS)
    serve.add_argument("--host", default=os.environ.get("SWITCHYARD_HOST", "127.0.0.1"))
    serve.add_argument("--http-port", type=port, help="default 8080 (env SWITCHYARD_HTTP_PORT)")
    serve.add_argument("--grpc-host", default=os.environ.get("SWITCHYARD_GRPC_HOST", "127.0.0.1"))
    serve.add_argument("--grpc-port", type=port, help="default 50051 (env SWITCHYARD_GRPC_PORT)")
    serve.add_argument(
        "--channel",
        choices=("inprocess", "grpc"),
        default=os.environ.get("SWITCHYARD_CHANNEL", "inprocess"),
        help="how the HTTP layer reaches the co-located service",
    )
    split = serve.add_mutually_exclusive_group()
    split.add_argument("--grpc-only", action="store_true", help="serve only gRPC")
    split.add_argument("--http-only", action="store_true", help="serve only HTTP")
    serve.add_argument("--grpc-target", help="HOST:PORT of the service, with --http-only")
    serve.add_argument("--stream-hold", type=float, default=10.0, help=argparse.SUPPRESS)
    serve.add_argument(
        "--workers",
        type=positive_int,
        help="processes serving the same ports, default 1 (env SWITCHYARD_WORKERS)",
    )
    serve.add_argument(
        "--metrics-port",
        type=port,
        help="serve GET /metrics without a key on this port too, on --host "
        "(env SWITCHYARD_METRICS_PORT; default: only /metrics on the HTTP port, admin key)",
    )
    serve.add_argument(
        "--shutdown-grace",
        type=seconds,
        metavar="SECONDS",
        help="on SIGTERM or Ctrl-C, how long requests in flight may take to finish, "
        f"default {DEFAULT_SHUTDOWN_GRACE:g} (env SWITCHYARD_SHUTDOWN_GRACE)",
    )

    keys = commands.add_parser("keys", help="manage API keys")
    key_commands = keys.add_subparsers(dest="keys_command", required=True)
    create = key_commands.add_parser("create", help="create a key (shown once)")
    create.add_argument("--name", required=True)
    _policy_arguments(create)
    key_commands.add_parser("list", help="list keys (never their secrets)")
    update = key_commands.add_parser("update", help="change a key's name or limits")
    update.add_argument("key_id")
    update.add_argument("--name")
    _policy_arguments(update)
    update.add_argument(
        "--clear",
        action="append",
        default=[],
        choices=("limit", "rpm", "tpm", "max-concurrent", "models", "expires"),
        help="remove a limit (repeatable)",
    )
    revoke = key_commands.add_parser("revoke", help="revoke a key by id")
    revoke.add_argument("key_id")
    delete = key_commands.add_parser("delete", help="delete a key by id")
    delete.add_argument("key_id")

    db = commands.add_parser("db", help="the shared PostgreSQL database")
    db_commands = db.add_subparsers(dest="db_command", required=True)
    upgrade = db_commands.add_parser(
        "upgrade", help="apply the schema migrations it lacks (serve applies them too)"
    )
    upgrade.add_argument("--config", type=Path, help="the config whose storage.database_url to use")

    credits = commands.add_parser("credits", help="manage credits")
    credit_commands = credits.add_subparsers(dest="credits_command", required=True)
    add = credit_commands.add_parser("add", help="raise a key's credit limit (USD)")
    add.add_argument("key_id")
    add.add_argument("amount", type=float)
    return parser


def _policy_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--limit", type=float, help="credit limit in USD (default: unlimited)")
    parser.add_argument("--rpm", type=int, help="requests per minute")
    parser.add_argument("--tpm", type=int, help="tokens per minute")
    parser.add_argument("--max-concurrent", type=int, help="requests at once")
    parser.add_argument("--models", help="allowed models, comma-separated globs")
    parser.add_argument("--expires", type=float, help="expiry, unix time")
    parser.add_argument(
        "--limit-reset",
        type=limit_reset,
        metavar="daily|weekly|monthly|none",
        help="make --limit a budget per UTC day, week (Monday to Sunday) or month; "
        "none: for all time (the default)",
    )
    parser.add_argument("--admin", action="store_true", default=None, help="an admin key")
    parser.add_argument("--disabled", choices=("yes", "no"), help="disable or enable")


_CLEARABLE = {
    "limit": "credit_limit",
    "rpm": "rpm",
    "tpm": "tpm",
    "max-concurrent": "max_concurrent",
    "models": "allowed_models",
    "expires": "expires_at",
}


def _policy_changes(args: argparse.Namespace) -> dict[str, object]:
    changes: dict[str, object] = {}
    for flag, field in (
        ("limit", "credit_limit"),
        ("rpm", "rpm"),
        ("tpm", "tpm"),
        ("max_concurrent", "max_concurrent"),
        ("expires", "expires_at"),
        ("admin", "is_admin"),
    ):
        if getattr(args, flag) is not None:
            changes[field] = getattr(args, flag)
    if args.models is not None:
        changes["allowed_models"] = tuple(m.strip() for m in args.models.split(",") if m.strip())
    if args.disabled is not None:
        changes["disabled"] = args.disabled == "yes"
    if args.limit_reset is not None:
        changes["limit_reset"] = None if args.limit_reset == "none" else args.limit_reset
    for name in getattr(args, "clear", []):
        changes[_CLEARABLE[name]] = None
    return changes


def _serve(args: argparse.Namespace) -> int:
    from service.launcher import ServeOptions, run

    config = args.config or os.environ.get("SWITCHYARD_CONFIG")
    if not config and Path(DEFAULT_CONFIG).is_file():
        config = DEFAULT_CONFIG
    if args.http_only and not args.grpc_target:
        raise StartupError("--http-only needs --grpc-target HOST:PORT")
    mode = "grpc-only" if args.grpc_only else "http-only" if args.http_only else "both"
    http_port = _setting(args.http_port, "SWITCHYARD_HTTP_PORT", 8080, port)
    grpc_port = _setting(args.grpc_port, "SWITCHYARD_GRPC_PORT", 50051, port)
    if mode == "both" and http_port == grpc_port:
        raise StartupError(f"the HTTP and gRPC ports are both {http_port}: give them two")
    data_dir = _data_dir(args)
    metrics_port = _setting(args.metrics_port, "SWITCHYARD_METRICS_PORT", None, port)
    if metrics_port is not None and metrics_port in (http_port, grpc_port):
        raise StartupError(f"--metrics-port {metrics_port} is also the HTTP or gRPC port")
    return run(
        ServeOptions(
            config=Path(config) if config else None,
            data_dir=data_dir,
            host=args.host,
            http_port=http_port,
            grpc_host=args.grpc_host,
            grpc_port=grpc_port,
            channel=args.channel,
            mode=mode,
            grpc_target=args.grpc_target,
            stream_hold=args.stream_hold,
            workers=_setting(args.workers, "SWITCHYARD_WORKERS", 1, positive_int),
            shutdown_grace=_setting(
                args.shutdown_grace, "SWITCHYARD_SHUTDOWN_GRACE", DEFAULT_SHUTDOWN_GRACE, seconds
            ),
            metrics_port=metrics_port,
        )
    )


def _describe(key: KeyRecord) -> str:
    p = key.policy
    limit = "unlimited" if p.credit_limit is None else f"${p.credit_limit:g}"
    parts = [f"limit {limit}", f"used ${key.usage:.6f}"]
    if p.limit_reset is not None:
        parts.append(f"resets {p.limit_reset}")
    parts += [f"{n} {v}" for n, v in (("rpm", p.rpm), ("tpm", p.tpm)) if v is not None]
    if p.max_concurrent is not None:
        parts.append(f"concurrent {p.max_concurrent}")
    if p.allowed_models is not None:
        parts.append("models " + ",".join(p.allowed_models))
    if p.is_admin:
        parts.append("admin")
    return ", ".join(parts)


def _keys(args: argparse.Namespace) -> int:
    from service.accounting.backends import open_keys
    from service.store.keys import KeyPolicy
    from service.store.settings import StorageSettings

    data_dir = _data_dir(args)
    # Keys on PostgreSQL (a deployment of replicas): SWITCHYARD_DATABASE_URL says where,
    # and no data directory is needed.
    url = os.environ.get("SWITCHYARD_DATABASE_URL")
    if not url:
        prepare_data_dir(data_dir, create=False)
        check_database(data_dir)
    settings = StorageSettings(database_url=url or None)
    store = open_keys(settings, data_dir / DATABASE)
    try:
        if getattr(args, "credits_command", None) == "add":
            if not args.amount > 0:
                raise StartupError(f"the amount must be positive, not {args.amount:g}")
            key = store.add_credits(args.key_id, args.amount)
            if key is None:
                print(f"switchyard: no key with id {args.key_id}", file=sys.stderr)
                return 1
            print(f"{key.id}: {_describe(key)}")
        elif args.keys_command == "create":
            policy = KeyPolicy(**_policy_changes(args))  # type: ignore[arg-type]
            record, plain = store.create(args.name, policy)
            print(f"id:   {record.id}\nname: {record.name}\nkey:  {plain}")
            print("Store the key now: it is not kept and cannot be shown again.", file=sys.stderr)
        elif args.keys_command == "list":
            print(f"{'ID':<22} {'NAME':<20} {'KEY':<16} {'CREATED':<17} {'STATUS':<8} POLICY")
            for key in store.list():
                created = datetime.fromtimestamp(key.created_at, UTC).strftime("%Y-%m-%d %H:%M")
                status = "active" if key.active else "revoked" if key.revoked_at else "inactive"
                print(
                    f"{key.id:<22} {key.name:<20} {key.display:<16} {created:<17} {status:<8} "
                    f"{_describe(key)}"
                )
        elif args.keys_command == "update":
            changes = _policy_changes(args)
            if args.name is not None:
                changes["name"] = args.name
            updated = store.update(args.key_id, changes)
            if updated is None:
                print(f"switchyard: no key with id {args.key_id}", file=sys.stderr)
                return 1
            print(f"{updated.id}: {_describe(updated)}")
        elif args.keys_command == "delete":
            if not store.delete(args.key_id):
                print(f"switchyard: no key with id {args.key_id}", file=sys.stderr)
                return 1
            print(f"deleted {args.key_id}")
        else:
            if not store.revoke(args.key_id):
                print(f"switchyard: no active key with id {args.key_id}", file=sys.stderr)
                return 1
            print(f"revoked {args.key_id}")
        return 0
    finally:
        store.close()


def _db_upgrade(args: argparse.Namespace) -> int:
    """`switchyard db upgrade`: SWITCHYARD_DATABASE_URL, or the config's database_url."""
    import psycopg

    from service.config import load_config
    from service.store.pg_schema import MIGRATIONS, upgrade

    given = args.config or os.environ.get("SWITCHYARD_CONFIG")
    settings = load_config(Path(given)).storage if given else None
    url = os.environ.get("SWITCHYARD_DATABASE_URL") or (settings and settings.database_url)
    if not url:
        raise StartupError(
            "no database to upgrade: set SWITCHYARD_DATABASE_URL or storage.database_url "
            "in the config given with --config"
        )
    try:
        applied = upgrade(url)
    except psycopg.Error as exc:
        raise StartupError(f"the database cannot be upgraded: {exc}".strip()) from None
    latest = MIGRATIONS[-1][0]
    if applied:
        print(f"applied migrations {', '.join(map(str, applied))}; schema at version {latest}")
    else:
        print(f"nothing to apply; schema at version {latest}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "serve":
            return _serve(args)
        if args.command == "db":
            return _db_upgrade(args)
        return _keys(args)
    except (StartupError, ConfigError) as exc:
        print(f"switchyard: error: {exc}", file=sys.stderr)
        return USAGE_ERROR
    except sqlite3.Error as exc:  # one not foreseen by the checks: still said in words
        print(f"switchyard: error: database {_data_dir(args) / DATABASE}: {exc}", file=sys.stderr)
        return USAGE_ERROR
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
