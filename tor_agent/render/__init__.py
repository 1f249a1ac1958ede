"""Text rendered from the intent (pure: reads only its template directory)."""

from tor_agent.render.frr import TemplateError, frr_view, render_frr, template_dir

__all__ = ["TemplateError", "frr_view", "render_frr", "template_dir"]
