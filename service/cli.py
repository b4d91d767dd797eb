"""The `switchyard` command: `serve` and `keys create|list|revoke`."""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

from service.config import ConfigError
from service.store.keys import KeyRecord

DEFAULT_CONFIG = "switchyard.yaml"  # used when present in the working directory


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


def _data_dir(args: argparse.Namespace) -> Path:
    return Path(args.data_dir or os.environ.get("SWITCHYARD_DATA_DIR") or ".switchyard")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="switchyard", description=__doc__)
    parser.add_argument("--data-dir", help="state directory (env SWITCHYARD_DATA_DIR)")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the gateway")
    serve.add_argument(
        "--config",
        help=f"YAML config (env SWITCHYARD_CONFIG; default ./{DEFAULT_CONFIG} if present)",
    )
    serve.add_argument("--data-dir", dest="serve_data_dir", help=argparse.SUPPRESS)
    serve.add_argument("--host", default=os.environ.get("SWITCHYARD_HOST", "127.0.0.1"))
    serve.add_argument("--http-port", type=int, default=_env_int("SWITCHYARD_HTTP_PORT", 8080))
    serve.add_argument("--grpc-host", default=os.environ.get("SWITCHYARD_GRPC_HOST", "127.0.0.1"))
    serve.add_argument("--grpc-port", type=int, default=_env_int("SWITCHYARD_GRPC_PORT", 50051))
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
        type=int,
        default=_env_int("SWITCHYARD_WORKERS", 1),
        help="processes sharing the ports through SO_REUSEPORT (env SWITCHYARD_WORKERS)",
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
    for name in getattr(args, "clear", []):
        changes[_CLEARABLE[name]] = None
    return changes


def _serve(args: argparse.Namespace) -> int:
    from service.launcher import ServeOptions, run

    config = args.config or os.environ.get("SWITCHYARD_CONFIG")
    if not config and Path(DEFAULT_CONFIG).is_file():
        config = DEFAULT_CONFIG
    if args.http_only and not args.grpc_target:
        print("switchyard: --http-only needs --grpc-target HOST:PORT", file=sys.stderr)
        return 2
    mode = "grpc-only" if args.grpc_only else "http-only" if args.http_only else "both"
    data_dir = Path(args.serve_data_dir) if args.serve_data_dir else _data_dir(args)
    run(
        ServeOptions(
            config=Path(config) if config else None,
            data_dir=data_dir,
            host=args.host,
            http_port=args.http_port,
            grpc_host=args.grpc_host,
            grpc_port=args.grpc_port,
            channel=args.channel,
            mode=mode,
            grpc_target=args.grpc_target,
            stream_hold=args.stream_hold,
            workers=max(1, args.workers),
        )
    )
    return 0


def _describe(key: KeyRecord) -> str:
    p = key.policy
    limit = "unlimited" if p.credit_limit is None else f"${p.credit_limit:g}"
    parts = [f"limit {limit}", f"used ${key.usage:.6f}"]
    parts += [f"{n} {v}" for n, v in (("rpm", p.rpm), ("tpm", p.tpm)) if v is not None]
    if p.max_concurrent is not None:
        parts.append(f"concurrent {p.max_concurrent}")
    if p.allowed_models is not None:
        parts.append("models " + ",".join(p.allowed_models))
    if p.is_admin:
        parts.append("admin")
    return ", ".join(parts)


def _keys(args: argparse.Namespace) -> int:
    from service.store.keys import KeyPolicy, KeyStore

    store = KeyStore(_data_dir(args) / "switchyard.db", cache_seconds=0)
    try:
        if getattr(args, "credits_command", None) == "add":
            if not args.amount > 0:
                print("switchyard: the amount must be positive", file=sys.stderr)
                return 2
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


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "serve":
            return _serve(args)
        return _keys(args)
    except ConfigError as exc:
        print(f"switchyard: configuration error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
