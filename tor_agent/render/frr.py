"""Render the FRR configuration of an intent from the Jinja2 templates in `frr-templates/`.

The text follows the layout of FRR 8.4's `show running-config` (line order, one-space indent, `exit`
and `!` lines) and leaves out every line that only restates an FRR default, so a rendering can be
compared with the live configuration and `frr-reload.py` finds nothing to do on an unchanged switch.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from tor_agent.config.schema import Bfd, Intent, Ospf
from tor_agent.errors import RuntimeFailure
from tor_agent.model.underlay import OspfInterface, ospf_interfaces, uses_uplink_bridges

if TYPE_CHECKING:
    import jinja2

TEMPLATES_ENV = "TOR_AGENT_TEMPLATES"
INSTALLED_TEMPLATES = Path("/usr/share/tor-agent/frr-templates")
MAIN_TEMPLATE = "frr.conf.j2"
BFD_PROFILE = "tor-agent"

# FRR 8.4.4 defaults (Debian 12 build), measured with `show running-config`: a line setting one of
# these values is dropped by FRR, so rendering it would leave a permanent diff.
FRR_MAXIMUM_PATHS = 256  # Debian configures FRR with --enable-multipath=256
FRR_REFERENCE_BANDWIDTH_MBPS = 100000  # not 100 as the FRR docs say: a 10G link gets cost 10
FRR_HELLO_INTERVAL_S = 10
FRR_DEAD_INTERVAL_S = 40
FRR_LSA_THROTTLE_MS = 5000
FRR_LSA_MIN_ARRIVAL_MS = 1000
FRR_BFD = Bfd(enabled=True, rx_ms=300, tx_ms=300, multiplier=3)


class TemplateError(RuntimeFailure):
    """The FRR templates are missing or broken; names the template directory."""

    def __init__(self, directory: Path, message: str) -> None:
        self.directory = directory
        self.detail = message
        super().__init__(f"FRR templates in {directory}: {message}")

    def __reduce__(self) -> tuple[type[TemplateError], tuple[Path, str]]:
        return type(self), (self.directory, self.detail)


@dataclass(frozen=True)
class AuthView:
    key_id: int
    key: str


@dataclass(frozen=True)
class InterfaceView:
    """One `interface` stanza; None and False mean "leave the line out"."""

    name: str
    area: str
    area_address: str | None = None  # restrict OSPF to this address of the interface
    auth: AuthView | None = None
    bfd_profile: str | None = None
    cost: int | None = None
    dead_interval_s: int | None = None
    hello_interval_s: int | None = None
    point_to_point: bool = False
    passive: bool = False


@dataclass(frozen=True)
class RouterOspfView:
    router_id: str
    reference_bandwidth_mbps: int | None
    lsa_throttle_ms: int | None
    lsa_min_arrival_ms: int | None
    maximum_paths: int | None
    max_metric: bool = False  # drained: `max-metric router-lsa administrative`


@dataclass(frozen=True)
class BfdProfileView:
    name: str
    detect_multiplier: int | None
    transmit_interval_ms: int | None
    receive_interval_ms: int | None


@dataclass(frozen=True)
class FrrView:
    """Everything the templates need, as plain values."""

    hostname: str
    interfaces: tuple[InterfaceView, ...]
    ospf: RouterOspfView
    bfd: BfdProfileView | None


def template_dir(environ: Mapping[str, str] = os.environ) -> Path:
    """Where the FRR templates are: $TOR_AGENT_TEMPLATES, else the source tree's, else the installed ones."""
    if environ.get(TEMPLATES_ENV):
        return Path(environ[TEMPLATES_ENV])
    in_tree = Path(__file__).resolve().parents[2] / "frr-templates"
    return in_tree if in_tree.is_dir() else INSTALLED_TEMPLATES


_default_template_dir = template_dir  # render_frr's parameter shadows the function's name


def render_frr(intent: Intent, template_dir: Path | None = None, drained: bool = False) -> str:
    """The FRR configuration text for `intent`, rendered from `template_dir` (default: `template_dir()`);
    `drained`: the switch advertises every transit link at the maximum metric (traffic goes around it).

    Imports Jinja2 (only here: a process that never renders, or renders in a child, never loads it)."""
    import jinja2

    directory = template_dir if template_dir is not None else _default_template_dir()
    template = _load_template(directory)
    try:
        return template.render(view=frr_view(intent, drained))
    except jinja2.TemplateError as e:
        raise TemplateError(directory, f"cannot render {MAIN_TEMPLATE}: {e}") from e


def frr_view(intent: Intent, drained: bool = False) -> FrrView:
    """The plain data the templates render, with FRR-default values already replaced by None."""
    ospf = intent.underlay.ospf
    enabled_bfd = ospf.bfd if ospf.bfd is not None and ospf.bfd.enabled else None
    loopback = InterfaceView(name="lo", area=ospf.area, passive=True)
    links = tuple(
        _link_view(i, ospf, bridged=uses_uplink_bridges(intent), bfd=enabled_bfd is not None)
        for i in ospf_interfaces(intent)
    )
    return FrrView(
        hostname=intent.node.hostname,
        interfaces=(loopback, *links),
        ospf=RouterOspfView(
            router_id=str(intent.node.router_id),
            reference_bandwidth_mbps=_unless_default(ospf.reference_bandwidth_mbps, FRR_REFERENCE_BANDWIDTH_MBPS),
            lsa_throttle_ms=_unless_default(ospf.lsa_throttle_ms, FRR_LSA_THROTTLE_MS),
            lsa_min_arrival_ms=_unless_default(ospf.lsa_min_arrival_ms, FRR_LSA_MIN_ARRIVAL_MS),
            maximum_paths=_unless_default(ospf.maximum_paths, FRR_MAXIMUM_PATHS),
            max_metric=drained,
        ),
        bfd=_bfd_view(enabled_bfd) if enabled_bfd is not None else None,
    )


def _link_view(interface: OspfInterface, ospf: Ospf, bridged: bool, bfd: bool) -> InterfaceView:
    # An uplink bridge also carries the VTEP /32 (docs/design.md §8): without the address restriction
    # OSPF would run a second, bogus point-to-point interface on it.
    address = interface.address
    auth = ospf.authentication
    return InterfaceView(
        name=interface.name,
        area=ospf.area,
        area_address=str(address.ip) if bridged and address is not None else None,
        auth=AuthView(auth.key_id, auth.key) if auth is not None else None,
        bfd_profile=BFD_PROFILE if bfd else None,
        cost=interface.cost,
        dead_interval_s=_unless_default(ospf.dead_interval_s, FRR_DEAD_INTERVAL_S),
        hello_interval_s=_unless_default(ospf.hello_interval_s, FRR_HELLO_INTERVAL_S),
        point_to_point=True,
    )


def _bfd_view(bfd: Bfd) -> BfdProfileView:
    return BfdProfileView(
        name=BFD_PROFILE,
        detect_multiplier=_unless_default(bfd.multiplier, FRR_BFD.multiplier),
        transmit_interval_ms=_unless_default(bfd.tx_ms, FRR_BFD.tx_ms),
        receive_interval_ms=_unless_default(bfd.rx_ms, FRR_BFD.rx_ms),
    )


def _unless_default(value: int | None, default: int) -> int | None:
    return None if value == default else value


@lru_cache(maxsize=4)  # one Environment per directory; Jinja re-reads a template whose file changed
def _load_template(directory: Path) -> jinja2.Template:
    import jinja2

    if not directory.is_dir():
        raise TemplateError(directory, f"no such directory (set {TEMPLATES_ENV} or reinstall tor-agent)")
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(directory)),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
        finalize=_one_word,
    )
    try:
        return env.get_template(MAIN_TEMPLATE)
    except jinja2.TemplateError as e:
        raise TemplateError(directory, f"cannot load {MAIN_TEMPLATE}: {e}") from e


def _one_word(value: object) -> object:
    """Refuse a None or a multi-word value: either would put a broken (or injected) line into FRR."""
    import jinja2

    if value is None:
        raise jinja2.TemplateRuntimeError("a template printed None: guard the line with an `if`")
    if isinstance(value, str) and (not value or not value.isprintable() or len(value.split()) != 1):
        raise jinja2.TemplateRuntimeError(f"{value!r} is not a single word and cannot go into an FRR line")
    return value
