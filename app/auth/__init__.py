"""Sign-in for staff (agent, supervisor, crew, analyst, admin) with Flask-Login; roles guard each side."""
import re
from functools import wraps
from urllib.parse import urlsplit

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, session, url_for
from flask_login import current_user, login_required, login_user, logout_user
from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, EqualTo, Length

from app.auth import lockout, users
from app.extensions import db, limiter, login_manager
from gis import sessions
from gis.errors import InvalidInput

bp = Blueprint("auth", __name__)


@bp.record_once
def _count_failures(state):
    state.app.extensions["pin311.sign_in_failures"] = lockout.SignInFailures(state.app.config["DATABASE_URL"])


@login_manager.user_loader
def load_user(token):
    return users.load(db.connection(), token, session_limits())


def session_limits():
    config = current_app.config
    return sessions.Limits(config["SESSION_IDLE_MINUTES"], config["SESSION_MAX_HOURS"])


class LoginForm(FlaskForm):
    username = StringField("Username", validators=[DataRequired(), Length(max=80)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=200)])


class PasswordForm(FlaskForm):
    current_password = PasswordField("Current password", validators=[DataRequired(), Length(max=200)])
    new_password = PasswordField("New password", validators=[
        DataRequired(), Length(min=users.PASSWORD_MIN, max=200,
                               message=f"must have at least {users.PASSWORD_MIN} characters")])
    repeat = PasswordField("New password again", validators=[
        DataRequired(), EqualTo("new_password", message="does not match the new password")])


def roles_required(*roles):
    """Allow signed-in users whose role is in `roles` (admins are always allowed)."""
    def decorator(view):
        @wraps(view)
        @login_required
        def wrapped(*args, **kwargs):
            if current_user.role not in roles and current_user.role != "admin":
                abort(403)
            return view(*args, **kwargs)
        return wrapped
    return decorator


# Browsers (and Werkzeug's Location header) drop tabs and newlines and read a backslash as a slash, so
# "/\t/evil.example" or "/\\evil.example" would leave the site; a real return path never holds them.
_NOT_IN_A_PATH = re.compile(r"[\x00-\x1f\x7f\\]")


def _safe_next(target):
    """`target` when it is a path on this site ("/agent/?q=1"), otherwise None."""
    if not target or _NOT_IN_A_PATH.search(target) or not target.startswith("/") or target.startswith("//"):
        return None
    parts = urlsplit(target)
    return target if not parts.scheme and not parts.netloc else None


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit("20 per minute", methods=["POST"])
def login():
    form = LoginForm()
    if form.validate_on_submit():
        name, address = form.username.data, request.remote_addr
        failures = current_app.extensions["pin311.sign_in_failures"]
        user, problem = users.authenticate(db.connection(), name, form.password.data, failures.refusing(name, address))
        if user:
            failures.succeeded(name, address)
            conn = db.connection()
            _end_current_session(conn, "replaced by a new sign-in")   # one browser, one live session
            users.sign_in(conn, user, address, request.user_agent.string)
            conn.commit()
            session.permanent = True
            login_user(user)
            return redirect(_safe_next(request.args.get("next")) or url_for(users.home_endpoint(user)))
        failures.failed(name, address)
        flash(problem, "error")
    return render_template("login.html", form=form), (401 if form.errors or request.method == "POST" else 200)


def _end_current_session(conn, reason):
    """Revoke the session this browser's cookie names, if any: a copy of the cookie then stops working."""
    token = session.get("_user_id")
    if token and sessions.revoke(conn, token, reason):
        conn.commit()


@bp.post("/logout")
def logout():
    _end_current_session(db.connection(), "signed out")
    logout_user()
    return redirect(url_for("auth.login"))


@bp.route("/account/password", methods=["GET", "POST"])
@limiter.limit("20 per minute", methods=["POST"])
@login_required
def change_password():
    """A signed-in person's own new password: every other session of theirs ends, this one stays."""
    form = PasswordForm()
    if form.validate_on_submit():
        conn, me = db.connection(), current_user._get_current_object()
        # Guessing the current password here is guessing the sign-in password: the same counts refuse both.
        failures, address = current_app.extensions["pin311.sign_in_failures"], request.remote_addr
        refused = failures.refusing(me.username, address)
        try:
            if refused:
                raise InvalidInput(f"not checked: {refused}; try again in 15 minutes", field="current_password")
            user = users.change_own_password(conn, me, form.current_password.data, form.new_password.data,
                                             address, request.user_agent.string)
        except InvalidInput as exc:
            if exc.field == "current_password" and not refused:
                failures.failed(me.username, address)
            getattr(form, exc.field).errors.append(exc.message)
        else:
            failures.succeeded(me.username, address)
            conn.commit()
            login_user(user)       # this browser's new session (the old token ended with the others)
            flash("Your password is changed. You stay signed in here; every other sign-in of yours has ended.",
                  "info")
            return redirect(url_for(users.home_endpoint(user)))
    return render_template("account_password.html", form=form), (400 if request.method == "POST" else 200)
