"""The web console: server-rendered pages at /console over the control plane's service
layer and roles (docs/console.md)."""

from services.control.console.app import PREFIX, setup, skip_console

__all__ = ["PREFIX", "setup", "skip_console"]
