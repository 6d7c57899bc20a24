"""``python -m bot`` runs the bot; ``python -m bot run-due [--now ISO]`` and others are operations commands."""
from __future__ import annotations

import argparse
import logging
import sys

from aiohttp import web

from bot.config import ConfigError, load_config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot", description="Group supervision Teams bot")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("serve", help="serve /api/messages and /healthz (the default)")
    sub.add_parser("check-config", help="validate the configuration and profiles, then exit")
    run_due = sub.add_parser("run-due", help="run the scheduled work that is due, once (cron, Azure timer)")
    run_due.add_argument("--now", help="the time to run as, ISO-8601 with a zone (default: now)")
    run_due.add_argument("--rebuild", action="store_true", help="rebuild the due index from every case first")
    package = sub.add_parser("package", help="build the Teams app package (build/appPackage.zip)")
    package.add_argument("--out", help="where to write the zip (default: build/appPackage.zip)")
    from bot.ops import COMMANDS as OPS_COMMANDS
    from bot.ops import add_ops_commands

    add_ops_commands(sub)    # backup, restore, migrate, purge, export-case
    args, rest = parser.parse_known_args(argv)
    if args.command == "package":  # needs only the app id, not a runnable configuration
        from bot.package import main as package_main

        return package_main(args.out)

    try:
        config = load_config()
    except ConfigError as error:
        print(f"Cannot start: {error}", file=sys.stderr)
        return 2
    logging.basicConfig(level=config.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s")

    if args.command == "check-config":
        print(f"configuration ok: profile {config.default_profile}, storage {config.storage_backend}, "
              f"auth {'anonymous' if config.anonymous else config.app_type}")
        return 0
    if args.command == "run-due":
        from bot.scheduler import run_due_command

        return run_due_command(config, args.now, args.rebuild)
    if args.command in OPS_COMMANDS:
        from bot.ops import run_ops_command

        return run_ops_command(config, args)
    if args.command in (None, "serve"):
        from bot.app import create_app
        from supervision.errors import StoreLocked

        try:
            app = create_app(config)
        except StoreLocked as error:     # another process already runs on this data folder
            print(f"Cannot start: {error}", file=sys.stderr)
            return 2
        print(f"Group supervision bot on http://{config.host}:{config.port}/api/messages "
              f"(profile {config.default_profile}, storage {config.storage_backend} in {config.data_dir}, "
              f"auth {'anonymous local' if config.anonymous else config.app_type})", flush=True)
        web.run_app(app, host=config.host, port=config.port, print=None)
        return 0
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
