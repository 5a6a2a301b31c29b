"""A WSGI tool on the standard library's wsgiref server, which maps a field name to its CGI
variable as CGI does: X-Forwarded-User and X_Forwarded_User both become HTTP_X_FORWARDED_USER
(several such fields are joined with commas). It answers with its HTTP_* variables as JSON.

Usage: python wsgi_tool.py PORT
"""

import json
import sys
from wsgiref.simple_server import WSGIRequestHandler, make_server


def app(environ, start_response):
    length = int(environ.get("CONTENT_LENGTH") or 0)
    if length:
        environ["wsgi.input"].read(length)
    fields = {k: v for k, v in environ.items() if k.startswith("HTTP_")}
    body = json.dumps({"path": environ["PATH_INFO"], "environ": fields}).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


class Quiet(WSGIRequestHandler):
    def log_message(self, *args):
        pass


if __name__ == "__main__":
    make_server("127.0.0.1", int(sys.argv[1]), app, handler_class=Quiet).serve_forever()
