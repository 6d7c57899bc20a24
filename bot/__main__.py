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
    args, rest = parser.parse_known_args(argv)

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
    if args.command in (None, "serve"):
        from bot.app import create_app

        app = create_app(config)
        print(f"Group supervision bot on http://{config.host}:{config.port}/api/messages "
              f"(profile {config.default_profile}, storage {config.storage_backend} in {config.data_dir}, "
              f"auth {'anonymous local' if config.anonymous else config.app_type})", flush=True)
        web.run_app(app, host=config.host, port=config.port, print=None)
        return 0
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
