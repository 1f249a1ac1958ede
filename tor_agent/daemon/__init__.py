"""`tor-agent run`: the long-running agent (service.py) with its timers (schedule.py), systemd notification
(notify.py), signals (signals.py), control socket (control.py), status file and metrics (reporting.py,
metrics.py). Nothing is imported here: the CLI imports control.py alone, without the daemon's drivers."""
