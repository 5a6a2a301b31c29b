"""A Flask tool on werkzeug's server. Flask routes by werkzeug's upper-cased method, so a `post`
request runs the POST view, and it answers HEAD with the GET view. Each view that runs is
printed to stdout as one JSON line, with the method as received.

Usage: python flask_tool.py PORT
"""

import json
import sys

from flask import Flask, request
from werkzeug.serving import run_simple

app = Flask(__name__)


def ran(view):
    line = {"server": "flask", "view": view, "method": request.environ["REQUEST_METHOD"], "path": request.path}
    print(json.dumps(line), flush=True)


@app.route("/api/items", methods=["GET", "POST"])
def items():
    if request.method == "POST":
        ran("create item")
        return "created\n", 201
    ran("list items")
    return "items\n"


@app.route("/reports/<name>")
def report(name):
    ran("report")
    return f"report {name}\n"


if __name__ == "__main__":
    run_simple("127.0.0.1", int(sys.argv[1]), app, threaded=True)
