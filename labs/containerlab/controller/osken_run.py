"""Run os-ken apps: a stand-in for `osken-manager`, which os-ken 4.x no longer ships.

Usage: osken_run.py [--listen HOST:PORT] APP.py [APP.py ...]
Runs in the controller's own venv (os-ken and its dependencies must not meet Debian's packages).
"""

from __future__ import annotations

import argparse
import logging
import sys


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The launcher's arguments."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", default="0.0.0.0:6653", help="OpenFlow listen address (default %(default)s)")
    parser.add_argument("apps", nargs="+", help="os-ken application modules or .py files")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    """Configure os-ken's OpenFlow listener and run the apps until killed."""
    args = parse_args(argv)
    host, _, port = args.listen.rpartition(":")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")

    from os_ken import cfg
    from os_ken.base.app_manager import AppManager

    # os-ken registers its options on import; parse an empty command line so they get their defaults.
    cfg.CONF(args=[], project="os_ken")
    cfg.CONF.set_override("ofp_listen_host", host)
    cfg.CONF.set_override("ofp_tcp_listen_port", int(port))
    AppManager.run_apps(args.apps)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
