"""A Pyramid app with wsgisession: ``request.session`` is stored server-side.

Run ``python pyramid_app.py`` and open http://127.0.0.1:6543/. ``main`` is
also a Paste Deploy app factory: the ``wsgisession.`` settings can live in
the ``[app:main]`` section of an ini file instead of ``SETTINGS`` below.
"""

from wsgiref.simple_server import make_server

from markupsafe import escape
from pyramid.config import Configurator
from pyramid.csrf import get_csrf_token, new_csrf_token
from pyramid.httpexceptions import HTTPSeeOther
from pyramid.response import Response

from wsgisession.contrib.pyramid import make_wsgi_app

SETTINGS = {
    "wsgisession.store": "sqlite",
    "wsgisession.sqlite_path": "sessions.sqlite3",
    "wsgisession.cookie_age": "3600",
    "wsgisession.cookie_secure": "auto",
}


def index(request):
    session = request.session
    session["visits"] = session.get("visits", 0) + 1
    token = escape(get_csrf_token(request))
    messages = "".join(f"<p>{escape(m)}</p>" for m in session.pop_flash())
    return Response(
        f"{messages}<p>Hello, {escape(session.get('user', 'stranger'))}. "
        f"Visits in this session: {session['visits']}.</p>"
        f'<form method="post" action="login"><input name="user">'
        f'<input type="hidden" name="csrf_token" value="{token}">'
        "<button>Log in</button></form>"
        f'<form method="post" action="logout">'
        f'<input type="hidden" name="csrf_token" value="{token}">'
        "<button>Log out</button></form>"
    )


def login(request):
    request.session.cycle_key()  # a new session id at login defeats fixation
    new_csrf_token(request)  # and a new CSRF token: one planted before is refused
    request.session["user"] = request.POST.get("user") or "guest"
    request.session.flash("You are logged in.")
    return HTTPSeeOther(request.route_path("index"))


def logout(request):
    request.session.invalidate()  # deletes the record and the cookie
    return HTTPSeeOther(request.route_path("index"))


def main(global_config=None, **settings):
    """Build the app; POSTs need the session's CSRF token."""
    with Configurator(settings=settings or SETTINGS) as config:
        config.include("wsgisession.contrib.pyramid")  # request.session
        config.set_default_csrf_options(require_csrf=True)
        config.add_route("index", "/")
        config.add_view(index, route_name="index", request_method="GET")
        config.add_route("login", "/login")
        config.add_view(login, route_name="login", request_method="POST")
        config.add_route("logout", "/logout")
        config.add_view(logout, route_name="logout", request_method="POST")
        # The Pyramid app wrapped in SessionMiddleware built from the settings.
        return make_wsgi_app(config)


if __name__ == "__main__":
    with make_server("127.0.0.1", 6543, main()) as server:
        print("serving on http://127.0.0.1:6543/")
        server.serve_forever()
