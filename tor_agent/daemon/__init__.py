"""`tor-agent run`: the long-running agent (service.py) with its timers (schedule.py), systemd notification
(notify.py), signals (signals.py), control socket (control.py), status file and metrics (reporting.py,
metrics.py), and what it keeps between passes: the kernel's routes and MACs from netlink's announcements and
its CPU time (kernel.py), FRR read in full only when it moved (quiet.py). Nothing is imported here: the CLI
imports control.py alone, without the daemon's drivers."""
