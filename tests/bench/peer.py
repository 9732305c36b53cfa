"""The baseline peer: the design of the public Sesam python-datasource-template, reproduced
for comparison only (never used by the service): every entity in a Python list, `since`
filtered with a list comprehension, the whole body built with json.dumps, served by
Werkzeug's threaded development server (debug off).

    python -m tests.bench.peer PORT COUNT SEED
"""
from __future__ import annotations

import json
import sys
from decimal import Decimal

from flask import Flask, Response, request

from tests.support.seeded_orders import orders


def build_app(count: int, seed: int) -> Flask:
    entities = [{"_id": str(order.id), "_updated": order.id, "id": order.id,
                 "Username": order.username, "Orders": order.orders,
                 "TotalSum": float(Decimal(order.total_sum))} for order in orders(count, seed)]
    app = Flask(__name__)

    @app.get("/api/orders")
    def pull():
        since = int(request.args.get("since", 0))
        limit = request.args.get("limit")
        result = [entity for entity in entities if entity["_updated"] > since]
        if limit:
            result = result[:int(limit)]
        return Response(json.dumps(result), mimetype="application/json")

    @app.get("/health")
    def health():
        return {"status": "ok"}

    return app


if __name__ == "__main__":
    port, count, seed = (int(value) for value in sys.argv[1:4])
    build_app(count, seed).run(host="127.0.0.1", port=port, threaded=True, debug=False)
