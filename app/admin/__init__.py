"""Administration pages: staff accounts and their sign-in sessions — who is signed in, from where, since
when — with the means to end one session, all of an account's, or the account itself. Admins only."""
import logging

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user

from app.auth import roles_required, session_limits, users
from app.extensions import db
from gis import sessions
from gis.errors import InvalidInput

bp = Blueprint("admin", __name__)
log = logging.getLogger(__name__)
admins_only = roles_required()      # no role named: only admins pass


def _account(conn, user_id):
    return users.get(conn, user_id) or abort(404)


def _done(conn, user_id, message, what):
    conn.commit()
    log.warning("%s (admin) %s of user %s", current_user.username, what, user_id)   # who ended whose sessions
    flash(message, "info")
    return redirect(url_for("admin.user_page", user_id=user_id))


@bp.get("/users/")
@admins_only
def users_page():
    conn = db.connection()
    return render_template("admin/users.html", accounts=users.list_all(conn),
                           counts=sessions.live_counts(conn, session_limits()))


@bp.get("/users/<int:user_id>")
@admins_only
def user_page(user_id):
    conn = db.connection()
    return render_template("admin/user.html", account=_account(conn, user_id),
                           sessions=sessions.live(conn, user_id, session_limits()), mine=current_user.session_id)


@bp.post("/users/<int:user_id>/sessions/<int:session_id>/end")
@admins_only
def end_session(user_id, session_id):
    conn = db.connection()
    _account(conn, user_id)
    ended = sessions.revoke_one(conn, user_id, session_id)
    return _done(conn, user_id, "Session ended." if ended else "That session had already ended.",
                 f"ended session {session_id}")


@bp.post("/users/<int:user_id>/sign-out-everywhere")
@admins_only
def sign_out_everywhere(user_id):
    conn = db.connection()
    account = _account(conn, user_id)
    count = sessions.revoke_all(conn, user_id)
    return _done(conn, user_id, f"{account.username} is signed out everywhere ({count} session"
                                f"{'' if count == 1 else 's'} ended).", "ended every session")


@bp.post("/users/<int:user_id>/password")
@admins_only
def reset_password(user_id):
    """Someone else's new password (forgotten, or the account is feared taken): all their sessions end."""
    conn = db.connection()
    account = _account(conn, user_id)
    if account.id == current_user.id:      # one's own: with the current password, keeping this session
        flash("Change your own password here, with your current one.", "info")
        return redirect(url_for("auth.change_password"))
    try:
        users.set_password(conn, user_id, request.form.get("new_password", ""))
    except InvalidInput as exc:
        flash(f"Not changed: the {exc.message}.", "error")
        return redirect(url_for("admin.user_page", user_id=user_id))
    return _done(conn, user_id, f"{account.username} has a new password and is signed out everywhere; "
                                "give it to them by a safe way.", "set a new password")


@bp.post("/users/<int:user_id>/deactivate")
@admins_only
def deactivate(user_id):
    conn = db.connection()
    account = _account(conn, user_id)
    if account.id == current_user.id:      # the last admin could lock everyone out of this page
        flash("You cannot deactivate your own account; ask another administrator.", "error")
        return redirect(url_for("admin.user_page", user_id=user_id))
    users.set_active(conn, user_id, False)
    return _done(conn, user_id, f"{account.username} is deactivated and signed out everywhere.", "deactivated")


@bp.post("/users/<int:user_id>/reactivate")
@admins_only
def reactivate(user_id):
    conn = db.connection()
    account = _account(conn, user_id)
    users.set_active(conn, user_id, True)
    return _done(conn, user_id, f"{account.username} can sign in again (earlier sessions stay ended).",
                 "reactivated")
