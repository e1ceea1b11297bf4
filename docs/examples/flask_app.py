"""A Flask app with wsgisession: ``flask.session`` is stored server-side.

Run ``python flask_app.py`` (or ``flask --app flask_app run``) and open
http://127.0.0.1:5000/.
"""

from flask import Flask, flash, get_flashed_messages, redirect, request, url_for
from markupsafe import escape

# flask.session, typed for mypy as what init_app makes it (with cycle_key()).
from wsgisession.contrib.flask import init_app, session
from wsgisession.stores import SQLiteStore

app = Flask(__name__)
# Flask's own session settings still apply: the cookie keeps its name
# ("session") and its flags, PERMANENT_SESSION_LIFETIME is the lifetime.
app.config.update(
    PERMANENT_SESSION_LIFETIME=3600,
    SESSION_PERMANENT=True,  # sessions last an hour unless made otherwise
    SESSION_COOKIE_SAMESITE="Lax",
)
# Wraps app.wsgi_app in the session middleware, sets app.session_interface.
init_app(app, store=SQLiteStore("sessions.sqlite3"))


@app.get("/")
def index():
    session["visits"] = session.get("visits", 0) + 1
    messages = "".join(f"<p>{escape(m)}</p>" for m in get_flashed_messages())
    return (
        f"{messages}<p>Hello, {escape(session.get('user', 'stranger'))}. "
        f"Visits in this session: {session['visits']}.</p>"
        '<form method="post" action="login"><input name="user">'
        '<label><input type="checkbox" name="remember"> remember me</label>'
        "<button>Log in</button></form>"
        '<form method="post" action="logout"><button>Log out</button></form>'
    )


@app.post("/login")
def login():
    session.cycle_key()  # a new session id at login defeats session fixation
    session["user"] = request.form.get("user") or "guest"
    # Not remembered: the cookie ends with the browser (set_expiry(0)).
    session.permanent = "remember" in request.form
    flash("You are logged in.")
    return redirect(url_for("index"), code=303)


@app.post("/logout")
def logout():
    session.flush()  # deletes the record; the response deletes the cookie
    return redirect(url_for("index"), code=303)


if __name__ == "__main__":
    app.run()
