"""A plain WSGI app with wsgisession: a visit counter with login and logout.

Run ``python plain_wsgi.py`` and open http://127.0.0.1:8000/.
"""

from html import escape
from urllib.parse import parse_qs
from wsgiref.simple_server import make_server

from wsgisession import SessionMiddleware
from wsgisession.stores import SQLiteStore

PAGE = """<!doctype html>
<title>wsgisession</title>
<p>Hello, {user}. Visits in this session: {visits}.</p>
<form method="post" action="login"><input name="user"> <button>Log in</button></form>
<form method="post" action="logout"><button>Log out</button></form>
"""


def read_form(environ):
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length).decode("utf-8")
    return {key: values[0] for key, values in parse_qs(body).items()}


def redirect_home(environ, start_response):
    # The app's own "/", wherever it is mounted (SCRIPT_NAME: "/app" behind
    # a proxy or a dispatcher that serves it under /app/).
    start_response(
        "303 See Other", [("Location", environ.get("SCRIPT_NAME", "") + "/")]
    )
    return [b""]


def app(environ, start_response):
    session = environ["wsgisession"]  # loaded from the store on first use
    method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "/")
    if method == "POST" and path == "/login":
        user = read_form(environ).get("user", "guest")
        session.cycle_key()  # a new session id at login defeats session fixation
        session["user"] = user
        return redirect_home(environ, start_response)
    if method == "POST" and path == "/logout":
        session.flush()  # deletes the record; the response deletes the cookie
        return redirect_home(environ, start_response)
    if path != "/":
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found"]
    session["visits"] = session.get("visits", 0) + 1
    page = PAGE.format(
        user=escape(session.get("user", "stranger")), visits=session["visits"]
    )
    start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
    return [page.encode("utf-8")]


application = SessionMiddleware(
    app,
    store=SQLiteStore("sessions.sqlite3"),
    cookie_age=3600,  # sessions idle for an hour expire
    cookie_secure="auto",  # Secure whenever the request came over https
)

if __name__ == "__main__":
    with make_server("127.0.0.1", 8000, application) as server:
        print("serving on http://127.0.0.1:8000/")
        server.serve_forever()
