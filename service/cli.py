"""The `switchyard` command: `serve` and `keys create|list|revoke`."""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

from service.config import ConfigError

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
    key_commands.add_parser("list", help="list keys (never their secrets)")
    revoke = key_commands.add_parser("revoke", help="revoke a key by id")
    revoke.add_argument("key_id")
    return parser


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


def _keys(args: argparse.Namespace) -> int:
    from service.store.keys import KeyStore

    store = KeyStore(_data_dir(args) / "switchyard.db")
    try:
        if args.keys_command == "create":
            record, plain = store.create(args.name)
            print(f"id:   {record.id}\nname: {record.name}\nkey:  {plain}")
            print("Store the key now: it is not kept and cannot be shown again.", file=sys.stderr)
        elif args.keys_command == "list":
            print(f"{'ID':<22} {'NAME':<20} {'KEY':<16} {'CREATED':<20} STATUS")
            for key in store.list():
                created = datetime.fromtimestamp(key.created_at, UTC).strftime("%Y-%m-%d %H:%M")
                status = "active" if key.active else "revoked"
                print(f"{key.id:<22} {key.name:<20} {key.display:<16} {created:<20} {status}")
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
