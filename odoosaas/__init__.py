"""Odoo SaaS platform: a control plane that gives each customer an isolated Odoo."""


def create_app(overrides: dict | None = None, platform=None):
    """The Flask app (imported lazily: tenant app processes import this package too)."""
    from odoosaas.app import create_app as build
    return build(overrides, platform)
