"""A Bottle app with wsgisession: no adapter, the session is in the environ.

Run ``python bottle_app.py`` and open http://127.0.0.1:8080/.
"""

import bottle
from bottle import html_escape, redirect, request

from wsgisession import SessionMiddleware
from wsgisession.stores import FileStore

app = bottle.Bottle()


def session():
    """The request's session, put there by SessionMiddleware."""
    return request.environ["wsgisession"]


@app.get("/")
def index():
    session()["visits"] = session().get("visits", 0) + 1
    return (
        f"<p>Hello, {html_escape(session().get('user', 'stranger'))}. "
        f"Visits in this session: {session()['visits']}.</p>"
        '<form method="post" action="login"><input name="user">'
        "<button>Log in</button></form>"
        '<form method="post" action="logout"><button>Log out</button></form>'
    )


@app.post("/login")
def login():
    session().cycle_key()  # a new session id at login defeats session fixation
    session()["user"] = request.forms.getunicode("user") or "guest"
    redirect(request.script_name, 303)  # the app's "/", wherever mounted


@app.post("/logout")
def logout():
    session().flush()  # deletes the record; the response deletes the cookie
    redirect(request.script_name, 303)  # the app's "/", wherever mounted


application = SessionMiddleware(
    app,
    store=FileStore("sessions"),  # one file per session in ./sessions
    cookie_age=3600,
    cookie_samesite="Strict",
)

if __name__ == "__main__":
    bottle.run(application, host="127.0.0.1", port=8080)
