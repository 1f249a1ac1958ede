"""Write the tor-agent(1) man page (roff) to standard output, from the click command itself.

Run by the Debian build against the command it just built, so the page lists exactly the commands,
options and help texts of the packaged `tor-agent`. The hand-written parts are FILES, ENVIRONMENT and
SEE ALSO; tests/unit/test_packaging.py checks their paths against the code.
Usage: PYTHONPATH=<where tor_agent is> python3 packaging/gen_manpage.py > tor-agent.1
"""

from __future__ import annotations

import inspect
import os
import re
import sys
import time

import click

PROG = "tor-agent"
FILES = (
    (
        "/etc/tor-agent/agent.yaml",
        "The intent of this switch, read by tor-agent.service. The packaged file is all "
        "comments; the service does not start until a setting in it is not commented out.",
    ),
    (
        "/lib/systemd/system/tor-agent.service",
        "The service; it runs `tor-agent run --config /etc/tor-agent/agent.yaml`.",
    ),
    ("/usr/share/tor-agent/frr-templates/", "The Jinja2 templates the FRR configuration is rendered from."),
    (
        "/var/lib/tor-agent/",
        "tor-agent's records (removed on purge): which interfaces' FRR configuration it made, the history of "
        "applied intents (history/), the drain state (drain.json) and a pending commit-confirm (confirm.json).",
    ),
    (
        "/run/tor-agent/",
        "Which kernel addresses tor-agent added, the engine lock, the running agent's control socket "
        "(control.sock) and status file (status.json); removed on purge.",
    ),
    ("/usr/share/doc/tor-agent/examples/", "Intent files for a leaf and a spine."),
    (
        "/usr/share/doc/tor-agent/config.md.gz",
        "Every key of the intent file, with its type, default and allowed values.",
    ),
)
ENVIRONMENT = (
    ("TOR_AGENT_CONFIG", "The intent file commands read when none is given (default /etc/tor-agent/agent.yaml)."),
    ("TOR_AGENT_STATE_DIR", "tor-agent's records instead of /var/lib/tor-agent."),
    ("TOR_AGENT_TEMPLATES", "Render from the templates in this directory instead of the installed ones."),
)
SEE_ALSO = ("systemctl(1)", "journalctl(1)", "vtysh(1)", "ovs-vsctl(8)", "nft(8)")


def escape(text: str) -> str:
    """Plain text as roff: `code` in bold, minus signs and quotes that groff will not curl or misread."""
    text = text.replace("\\", "\\e").replace("-", "\\-").replace("'", "\\(aq").replace('"', "\\(dq")
    text = re.sub(r"`([^`]+)`", r"\\fB\1\\fR", text)
    return "\n".join("\\&" + line if line.startswith((".", "\\(aq")) else line for line in text.split("\n"))


def paragraphs(help_text: str | None) -> list[str]:
    """Click's help text as roff paragraphs: `\\b` blocks stay verbatim, the rest is refilled by groff."""
    text = inspect.cleandoc(help_text or "").split("\f")[0]
    out: list[str] = []
    for block in re.split(r"\n\s*\n", text.strip()):
        if block.startswith("\b"):
            lines = [line for line in block.split("\n")[1:] if line.strip()]
            out.append(".PP\n.nf\n.RS 4\n" + "\n".join(escape(line) for line in lines) + "\n.RE\n.fi")
        elif block:
            out.append(".PP\n" + escape(" ".join(line.strip() for line in block.split("\n"))))
    return out


def options(command: click.Command, ctx: click.Context, with_help: bool) -> list[str]:
    out: list[str] = []
    for param in command.get_params(ctx):
        if not isinstance(param, click.Option) or (param.name == "help" and not with_help):
            continue
        record = param.get_help_record(ctx)
        if record is not None:
            out.append(f".TP\n\\fB{escape(record[0])}\\fR\n{escape(record[1])}")
    return out


def usage(command: click.Command, ctx: click.Context) -> str:
    return escape(" ".join([ctx.command_path, *command.collect_usage_pieces(ctx)]))


def summary(group: click.Group) -> str:
    """The first paragraph of the group's help, for the NAME line (whatis)."""
    first = inspect.cleandoc(group.help or "").split("\n\n")[0]
    return escape(" ".join(first.split()).removeprefix(f"{PROG}: "))


def environment(group: click.Group, ctx: click.Context) -> list[tuple[str, str]]:
    """ENVIRONMENT plus every option's environment variable, with the commands that read it."""
    users: dict[str, list[str]] = {}
    helps: dict[str, str] = {}
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        for param in command.params if command is not None else ():
            if isinstance(param, click.Option) and isinstance(param.envvar, str):
                users.setdefault(param.envvar, []).append(name)
                helps[param.envvar] = f"The default of {param.opts[-1]} ({{}}): {param.help or ''}"
    found = dict(ENVIRONMENT) | {var: helps[var].format(", ".join(names)) for var, names in users.items()}
    return sorted(found.items())


def sections(group: click.Group, ctx: click.Context, prefix: str) -> list[str]:
    """A subsection per command of `group`; a command group's own commands follow it (`fabric render`)."""
    lines: list[str] = []
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if command is None or command.hidden:
            continue
        sub = click.Context(command, info_name=name, parent=ctx, **command.context_settings)
        lines += [f".SS {prefix}{name}", f"\\fB{usage(command, sub)}\\fR", *paragraphs(command.help)]
        lines += [*paragraphs(command.epilog), *options(command, sub, with_help=False)]
        if isinstance(command, click.Group):
            lines += sections(command, sub, f"{prefix}{name} ")
    return lines


def man_date() -> str:
    """The build date, or the changelog's when dpkg-buildpackage sets SOURCE_DATE_EPOCH (reproducible)."""
    return time.strftime("%Y-%m-%d", time.gmtime(int(os.environ.get("SOURCE_DATE_EPOCH", time.time()))))


def manpage(group: click.Group, version: str) -> str:
    """The whole page for `group`, the `tor-agent` command."""
    ctx = click.Context(group, info_name=PROG, **group.context_settings)
    lines = [
        f'.TH TOR\\-AGENT 1 "{man_date()}" "tor\\-agent {escape(version)}" "User Commands"',
        ".SH NAME",
        f"{escape(PROG)} \\- {summary(group)}",
        ".SH SYNOPSIS",
        f"\\fB{escape(PROG)}\\fR [\\fIOPTIONS\\fR] \\fICOMMAND\\fR [\\fIARGS\\fR]...",
        ".SH DESCRIPTION",
        *paragraphs(group.help),
        ".SH OPTIONS",
        *options(group, ctx, with_help=True),
        ".SH COMMANDS",
    ]
    lines += sections(group, ctx, "")
    lines += [".SH EXIT STATUS", *paragraphs(group.epilog)]
    lines += [".SH FILES", *(f".TP\n.I {escape(path)}\n{escape(text)}" for path, text in FILES)]
    lines += [".SH ENVIRONMENT", *(f".TP\n.B {escape(name)}\n{escape(text)}" for name, text in environment(group, ctx))]
    lines += [".SH SEE ALSO", ",\n".join(f"\\fB{escape(p.split('(')[0])}\\fR({p.split('(')[1]}" for p in SEE_ALSO)]
    return "\n".join(lines) + "\n"


def main() -> None:
    from tor_agent import __version__
    from tor_agent.cli import main as cli

    assert isinstance(cli, click.Group)
    sys.stdout.write(manpage(cli, __version__))


if __name__ == "__main__":
    main()
