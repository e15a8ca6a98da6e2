"""The action server as ``make run`` starts it: rasa_sdk's own Sanic app, bound to
``ACTION_HOST`` (127.0.0.1 unless configured) and closed to anyone without the shared secret.

rasa_sdk 3.6's CLI has no interface option (it reads ``SANIC_HOST`` and defaults to
0.0.0.0) and no authentication, so anyone who could reach the port could run any action,
e.g. queue a forged VIP chat. Here every route but ``GET /health`` needs
``Authorization: Bearer <ACTION_TOKEN>``, which Rasa sends from ``endpoints.yml``
(``action_endpoint.headers``); a missing or wrong token gets 403 before any action runs.
Run it with ``python -m actions.server``; it refuses to start without ``ACTION_TOKEN``.
"""

from __future__ import annotations

import hmac
import logging
import sys

from rasa_sdk import utils
from rasa_sdk.constants import APPLICATION_ROOT_LOGGER_NAME
from rasa_sdk.endpoint import create_app as create_sdk_app
from rasa_sdk.plugin import plugin_manager
from sanic import Sanic, response
from sanic.request import Request
from sanic.response import HTTPResponse

from actions.handoff import redis as handoff_redis
from bot.channels.guard import store_health
from bot.settings import SettingsError, load_settings

OPEN_PATHS = frozenset({"/health"})


def authorized(header: str, token: str) -> bool:
    """Whether an ``Authorization`` header carries ``token``; constant time, never a prefix."""
    scheme, _, presented = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        return False
    return hmac.compare_digest(presented.strip().encode(), token.encode())


def create_app(token: str, actions_package: str = "actions") -> Sanic:
    """rasa_sdk's app (``/health``, ``/webhook``, ``/actions``) behind the token check.

    No CORS: only Rasa calls this server, never a browser.
    """
    if not token:
        raise ValueError("the action server needs a non-empty token")
    app = create_sdk_app(actions_package, cors_origins="")

    @app.middleware("request")
    async def require_token(request: Request) -> HTTPResponse | None:
        if request.path in OPEN_PATHS and request.method in ("GET", "HEAD"):
            # Health tells the truth: the handoff actions need Redis (the queue).
            ok, reason = await store_health(handoff_redis())
            if not ok:
                return response.json({"status": "down", "reason": reason}, status=503)
            return None
        if authorized(request.headers.get("authorization", ""), token):
            return None
        return response.json({"error": "forbidden"}, status=403)

    return app


def warm_up() -> None:
    """Build the knowledge base's matcher, the tone model and the guides' typed answers
    before taking requests, so the first customer does not wait for them (about two
    seconds with the vectors saved), and start watching the knowledge-base files for
    editors' changes."""
    from actions.faq import STORE
    from bot.frustration import tone_model
    from bot.kb.typed_answers import classifier

    STORE.matcher()
    STORE.watch()
    tone_model()
    classifier(STORE.kb)


def main() -> int:
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    if not settings.action_token:
        print("configuration error: ACTION_TOKEN is not set; the action server will not run open", file=sys.stderr)
        return 2
    utils.configure_colored_logging(logging.INFO)
    utils.configure_file_logging(logging.getLogger(APPLICATION_ROOT_LOGGER_NAME), None, logging.INFO, None)
    utils.update_sanic_log_level()
    app = create_app(settings.action_token)
    warm_up()
    plugin_manager().hook.attach_sanic_app_extensions(app=app)
    logging.getLogger(__name__).info(
        "Action endpoint is up and running on http://%s:%s", settings.action_host, settings.action_port
    )
    app.run(settings.action_host, settings.action_port, workers=utils.number_of_sanic_workers())
    return 0


if __name__ == "__main__":
    sys.exit(main())
