"""The app of ``paste.ini``: a visit counter, with a Paste Deploy app factory.

Run ``python hello.py`` in this directory: it loads ``paste.ini`` (the
session filter and this app) and serves it on http://127.0.0.1:8000/.
"""

import os
from wsgiref.simple_server import make_server


def hello(environ, start_response):
    session = environ["wsgisession"]
    session["visits"] = session.get("visits", 0) + 1
    start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
    return [f"Hello! Visits in this session: {session['visits']}\n".encode()]


def app_factory(global_config, **local_config):
    """Paste Deploy ``paste.app_factory``: ``use = call:hello:app_factory``."""
    return hello


if __name__ == "__main__":
    from paste.deploy import loadapp

    here = os.path.dirname(os.path.abspath(__file__))
    application = loadapp("config:paste.ini", relative_to=here)
    with make_server("127.0.0.1", 8000, application) as server:
        print("serving on http://127.0.0.1:8000/")
        server.serve_forever()
