"""The Flask web layer: create_app() builds everything; nothing connects at import time.

Flask is imported inside create_app: the `pin311` commands import this package too (app.cli, app.config)
and most never build the app, so they do not pay for importing Flask (~0.3 s: bulk import, locate)."""
from app.config import Config


def create_app(config=None):
    """Build the app. `config` is a dict of overrides (tests pass DATABASE_URL, TESTING …)."""
    from flask import Flask
    app = Flask(__name__)
    settings = Config().update(config)
    app.config.from_object(settings)
    register_extensions(app)
    register_blueprints(app)
    register_errorhandlers(app)
    from app.extensions import limits_per_view_only
    limits_per_view_only(app)
    return app


def register_extensions(app):
    from app.extensions import csrf, db, limiter, login_manager
    db.init_app(app)
    csrf.init_app(app)
    app.config.setdefault("RATELIMIT_STORAGE_URI", "pin311://")
    app.config.setdefault("RATELIMIT_STORAGE_OPTIONS", {"database_url": app.config["DATABASE_URL"]})
    limiter.init_app(app)
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    from app import auth  # noqa: F401  (registers the user loader)
    from app import openapi, security
    security.init_app(app)
    openapi.register(app)


BLUEPRINTS = (
    # (module, attribute, url_prefix)
    ("app.core", "bp", None),
    ("app.auth", "bp", None),
    ("app.api", "bp", "/api/v1"),
    ("app.open311", "bp", "/open311"),
    ("app.agent", "bp", "/agent"),
    ("app.crew", "bp", "/crew"),
    ("app.public", "bp", None),
    ("app.layers", "bp", None),
    ("app.channels", "bp", "/channels"),
    ("app.dashboards", "bp", "/dashboards"),
    ("app.admin", "bp", "/admin"),
)


def register_blueprints(app):
    import importlib
    for module_name, attr, prefix in BLUEPRINTS:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:  # a real import error inside the blueprint
                raise
            continue  # feature not built yet
        app.register_blueprint(getattr(module, attr), url_prefix=prefix)


def register_errorhandlers(app):
    from app.errors import register
    register(app)
