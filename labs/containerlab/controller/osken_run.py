"""Run os-ken apps: a stand-in for `osken-manager`, which os-ken 4.x no longer ships.

Usage: osken_run.py [--listen HOST:PORT] [--ssl-key KEY --ssl-cert CERT --ca-cert CA]
                    [--api HOST:PORT] [--state FILE] [--seed FILE] APP.py [APP.py ...]
Runs in the controller's own venv (os-ken and its dependencies must not meet Debian's packages).
With --ssl-key and --ssl-cert it listens for ssl: switches only (os-ken serves TLS or TCP, not both on one
port); with --ca-cert a switch must present a certificate signed by that CA. --api, --state and --seed are
the lab app's (lab_app.py): where its network API listens, the file its networks are kept in, and the file
they come from when there is no state file yet.
"""

from __future__ import annotations

import argparse
import logging
import sys


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The launcher's arguments."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", default="0.0.0.0:6653", help="OpenFlow listen address (default %(default)s)")
    parser.add_argument("--ssl-key", help="the controller's private key (PEM): listen for ssl: switches")
    parser.add_argument("--ssl-cert", help="the controller's certificate (PEM)")
    parser.add_argument("--ca-cert", help="CA certificate switches' certificates must be signed by (PEM)")
    parser.add_argument("--api", help="HOST:PORT the lab app's network API listens on (default: no API)")
    parser.add_argument("--state", help="file the lab app keeps its networks in (default: memory only)")
    parser.add_argument("--seed", help="file the lab app takes its networks from when there is no state file yet")
    parser.add_argument("apps", nargs="+", help="os-ken application modules or .py files")
    args = parser.parse_args(argv)
    if (args.ssl_key is None) != (args.ssl_cert is None) or (args.ca_cert and not args.ssl_key):
        parser.error("TLS needs --ssl-key and --ssl-cert together (and --ca-cert only with them)")
    if args.api and not args.api.rpartition(":")[2].isdigit():
        parser.error(f"--api {args.api}: must be HOST:PORT")
    return args


def main(argv: list[str]) -> int:
    """Configure os-ken's OpenFlow listener and run the apps until killed."""
    args = parse_args(argv)
    host, _, port = args.listen.rpartition(":")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")

    from os_ken import cfg
    from os_ken.base.app_manager import AppManager

    # os-ken registers its options on import; parse an empty command line so they get their defaults. The lab
    # app's own options go in group "lab" (lab_app.settings reads them).
    cfg.CONF.register_opts([cfg.StrOpt(name) for name in ("api", "state", "seed")], group="lab")
    cfg.CONF(args=[], project="os_ken")
    for name in ("api", "state", "seed"):
        cfg.CONF.set_override(name, getattr(args, name), group="lab")
    cfg.CONF.set_override("ofp_listen_host", host)
    cfg.CONF.set_override("ofp_tcp_listen_port", int(port))
    if args.ssl_key:
        cfg.CONF.set_override("ofp_ssl_listen_port", int(port))
        cfg.CONF.set_override("ctl_privkey", args.ssl_key)
        cfg.CONF.set_override("ctl_cert", args.ssl_cert)
        if args.ca_cert:
            cfg.CONF.set_override("ca_certs", args.ca_cert)
    AppManager.run_apps(args.apps)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
