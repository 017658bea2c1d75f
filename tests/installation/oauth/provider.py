"""An OAuth 2.0 authorization and resource server on Authlib, run as a process of its own.

``python -m tests.installation.oauth.provider --port PORT [--access-ttl SECONDS]``

Authorization code with PKCE (S256), refresh with rotation, client credentials and RFC 7009
revocation; ``/api/...`` answers who a token is for. ``/_admin`` lets tests register clients,
read counters, revoke a user's grants and make the token endpoint misbehave.
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

from authlib.integrations.flask_oauth2 import AuthorizationServer, ResourceProtector
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc6750 import BearerTokenValidator
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7636 import CodeChallenge
from flask import Flask, Response, jsonify, request
from markupsafe import escape
from werkzeug.serving import WSGIRequestHandler, make_server

from tests.installation.oauth.store import AUTH_METHODS, AuthorizationCode, Client, Store, Token

CODE_TTL = 300
TOKEN_MODES = frozenset({"normal", "error500", "garbage", "slow"})

CONSENT_PAGE = """<!doctype html>
<html><head><title>Authorize {client_id}</title></head><body>
<h1>Let {client_id} act for you?</h1>
<p>Scope: {scope}</p>
<form method="post" action="{action}">
<label for="username">Username</label>
<input type="text" id="username" name="username" value="alice">
<button name="confirm" value="yes">Allow</button>
<button name="confirm" value="no">Deny</button>
</form>
</body></html>
"""


def create_app(access_ttl: float = 5, state: Store | None = None) -> Flask:
    store = state if state is not None else Store()
    app = Flask(__name__)
    # A whole number of seconds is what providers send; a fraction only when a test asks for it.
    app.config["OAUTH2_TOKEN_EXPIRES_IN"] = dict.fromkeys(
        ("authorization_code", "refresh_token", "client_credentials"),
        int(access_ttl) if float(access_ttl).is_integer() else access_ttl,
    )
    app.config["OAUTH2_REFRESH_TOKEN_GENERATOR"] = True

    def query_client(client_id: str) -> Client | None:
        with store.lock:
            return store.clients.get(client_id)

    def save_token(token: dict[str, Any], req: Any) -> None:
        store.add_token(
            Token(
                client=req.client,
                access_token=token["access_token"],
                refresh_token=token.get("refresh_token"),
                scope=token.get("scope") or "",
                user=req.user,
                expires_in=access_ttl,
            )
        )

    class CodeGrant(grants.AuthorizationCodeGrant):  # type: ignore[misc]
        TOKEN_ENDPOINT_AUTH_METHODS = sorted(AUTH_METHODS)

        def save_authorization_code(self, code: str, req: Any) -> None:
            item = AuthorizationCode(
                code=code,
                client_id=req.client.client_id,
                redirect_uri=req.payload.redirect_uri,
                scope=req.scope,
                user=req.user,
                code_challenge=req.payload.data.get("code_challenge"),
                code_challenge_method=req.payload.data.get("code_challenge_method"),
                expires_at=time.time() + CODE_TTL,
            )
            with store.lock:
                store.codes[code] = item

        def query_authorization_code(self, code: str, client: Client) -> AuthorizationCode | None:
            with store.lock:
                item = store.codes.get(code)
            if item and item.client_id == client.client_id and item.expires_at > time.time():
                return item
            return None

        def authenticate_user(self, authorization_code: AuthorizationCode) -> str | None:
            # Taking the code here, after every check, is what makes it single-use under races.
            item = store.take_code(authorization_code.code)
            return item.user if item else None

        def delete_authorization_code(self, authorization_code: AuthorizationCode) -> None:
            pass  # already taken by authenticate_user

    class RefreshGrant(grants.RefreshTokenGrant):  # type: ignore[misc]
        TOKEN_ENDPOINT_AUTH_METHODS = sorted(AUTH_METHODS)
        INCLUDE_NEW_REFRESH_TOKEN = True

        def authenticate_refresh_token(self, refresh_token: str) -> Token | None:
            return store.find_refresh(refresh_token)

        def authenticate_user(self, refresh_token: Token) -> str | None:
            # Claimed here, after every check and before a new token is made, so that of two
            # refreshes racing with one token the loser gets invalid_grant, as at a real provider.
            if not store.rotate(refresh_token):
                raise grants.InvalidGrantError("The refresh token was already used or revoked.")
            return refresh_token.user

        def revoke_old_credential(self, refresh_token: Token) -> None:
            pass  # already revoked by authenticate_user

    class ClientCredentialsGrant(grants.ClientCredentialsGrant):  # type: ignore[misc]
        TOKEN_ENDPOINT_AUTH_METHODS = sorted(AUTH_METHODS)

    class Revocation(RevocationEndpoint):  # type: ignore[misc]
        CLIENT_AUTH_METHODS = sorted(AUTH_METHODS)

        def query_token(self, token_string: str, token_type_hint: str | None) -> Token | None:
            with store.lock:
                return store.access.get(token_string) or store.refresh.get(token_string)

        def revoke_token(self, token: Token, req: Any) -> None:
            with store.lock:
                token.access_revoked = True
                # Revoking the refresh token ends the grant; revoking the access token alone does not.
                if req.form["token"] == token.refresh_token:
                    token.refresh_revoked = True
                store.counters["revocations"] += 1

    class Validator(BearerTokenValidator):  # type: ignore[misc]
        def authenticate_token(self, token_string: str) -> Token | None:
            with store.lock:
                return store.access.get(token_string)

    class Protector(ResourceProtector):  # type: ignore[misc]
        """Takes the token from ``?access_token=`` too (RFC 6750 §2.3), which Authlib's does not."""

        def parse_request_authorization(self, req: Any) -> tuple[Any, str]:
            token = request.args.get("access_token")
            if "Authorization" not in request.headers and token:
                return self.get_token_validator("bearer"), token
            return super().parse_request_authorization(req)  # type: ignore[no-any-return]

    server = AuthorizationServer(app, query_client=query_client, save_token=save_token)
    server.register_grant(CodeGrant, [CodeChallenge(required=True)])
    server.register_grant(RefreshGrant)
    server.register_grant(ClientCredentialsGrant)
    server.register_endpoint(Revocation)
    protector = Protector()
    protector.register_token_validator(Validator())

    def authorization_error(error: OAuth2Error) -> Response:
        """An error the client may hear of goes back to it; any other stays on the provider's page."""
        if error.redirect_uri:
            return server.handle_error_response(None, error)  # type: ignore[no-any-return]
        page = f"<!doctype html><h1>Authorization failed</h1><p>{escape(error.error)}: {escape(error.description)}</p>"
        return Response(page, status=400, mimetype="text/html")

    @app.get("/health")
    def health() -> Response:
        return jsonify(status="ok")

    @app.route("/authorize", methods=["GET", "POST"])
    def authorize() -> Response:
        user = None
        if request.method == "POST" and request.form.get("confirm") == "yes":
            user = request.form.get("username", "").strip() or None
        try:
            grant = server.get_consent_grant(end_user=user)
        except OAuth2Error as error:
            return authorization_error(error)
        if request.method == "GET":
            page = CONSENT_PAGE.format(
                client_id=escape(grant.client.client_id),
                scope=escape(grant.request.scope or ""),
                action=escape(request.full_path),
            )
            return Response(page, mimetype="text/html")
        return server.create_authorization_response(grant_user=user, grant=grant)  # type: ignore[no-any-return]

    @app.post("/token")
    def token() -> Response:
        with store.lock:
            mode = store.token_mode
        if mode == "error500":
            return Response("<html><body><h1>500 Internal Server Error</h1></body></html>", 500, mimetype="text/html")
        if mode == "garbage":
            return Response("not json at all", 200, mimetype="text/plain")
        if mode == "slow":
            time.sleep(2)
        response: Response = server.create_token_response()
        grant_type = request.form.get("grant_type")
        ok = response.status_code == 200
        if ok and grant_type == "authorization_code":
            store.count("codes_exchanged")
        elif ok and grant_type == "client_credentials":
            store.count("client_credentials")
        elif not ok and grant_type == "refresh_token":
            store.count("refresh_failures")
        return response

    @app.post("/revoke")
    def revoke() -> Response:
        return server.create_endpoint_response(Revocation.ENDPOINT_NAME)  # type: ignore[no-any-return]

    @app.route("/api/<path:path>", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
    def api(path: str) -> Response | tuple[Response, int, list[tuple[str, str]]]:
        try:
            tok: Token = protector.acquire_token()
        except OAuth2Error as error:
            store.count("api_rejected")
            return jsonify(dict(error.get_body())), error.status_code, error.get_headers()
        store.count("api_calls")
        return jsonify(sub=tok.sub, client_id=tok.client_id, scope=tok.scope, path=f"/{path}", method=request.method)

    @app.post("/_admin/clients")
    def admin_clients() -> tuple[Response, int]:
        body = request.get_json(force=True)
        client = store.register(
            list(body["redirect_uris"]),
            body.get("scope", "points:read points:write"),
            list(body.get("grant_types", ["authorization_code", "refresh_token", "client_credentials"])),
        )
        return jsonify(client_id=client.client_id, client_secret=client.client_secret), 201

    @app.get("/_admin/stats")
    def admin_stats() -> Response:
        return jsonify(store.stats())

    @app.get("/_admin/issued")
    def admin_issued() -> Response:
        # Every token ever issued: the canaries the platform must never show (test-only, of course).
        with store.lock:
            return jsonify(access=list(store.access), refresh=list(store.refresh))

    @app.post("/_admin/revoke-grants")
    def admin_revoke_grants() -> Response:
        return jsonify(revoked=store.revoke_user(request.get_json(force=True)["sub"]))

    @app.post("/_admin/token-mode")
    def admin_token_mode() -> Response | tuple[Response, int]:
        mode = request.get_json(force=True)["mode"]
        if mode not in TOKEN_MODES:
            return jsonify(error=f"mode must be one of {sorted(TOKEN_MODES)}"), 400
        with store.lock:
            store.token_mode = mode
        return jsonify(mode=mode)

    @app.post("/_admin/reset")
    def admin_reset() -> Response:
        store.reset()
        return jsonify(status="ok")

    return app


class QuietHandler(WSGIRequestHandler):
    """Request lines carry codes and tokens in their query strings: they are not logged."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--access-ttl", type=float, default=5)
    args = parser.parse_args()
    # Tests talk plain HTTP on loopback; Authlib refuses it otherwise.
    os.environ["AUTHLIB_INSECURE_TRANSPORT"] = "1"
    server = make_server(
        "127.0.0.1", args.port, create_app(args.access_ttl), threaded=True, request_handler=QuietHandler
    )
    server.serve_forever()


if __name__ == "__main__":
    main()
