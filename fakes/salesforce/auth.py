"""The token endpoint of the local Salesforce (`POST /services/oauth2/token`) and sessions.

Three flows, as a connected app offers them:
- JWT bearer (`grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer`): the assertion is
  RS256-signed with the operator's private key and verified with the certificate's public
  key configured on the app; `iss` is the consumer key, `sub` a known user, `aud` the login
  host, `exp` in the future and at most 3 minutes away. No refresh token.
- client credentials (the app's "run as" user), HTTP basic or form client authentication;
- web server: an authorization code (`GET /services/oauth2/authorize` approves at once and
  redirects) exchanged for an access and a refresh token; `grant_type=refresh_token` gives
  new access tokens (Salesforce does not rotate the refresh token).
A token response carries `access_token`, `instance_url`, `id`, `token_type`, `issued_at`
and `signature`; never `expires_in`: a session ends when Salesforce says so (a 401
`INVALID_SESSION_ID`), here after `session_seconds` or at `expire_sessions()`."""

from __future__ import annotations

import base64
import binascii
import json
import secrets
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
MAX_JWT_LIFETIME = 180.0  # Salesforce: exp within 3 minutes of the assertion's issue


class OAuthError(Exception):
    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status, self.error, self.description = status, error, description

    def body(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}


@dataclass
class ConnectedApp:
    client_id: str
    client_secret: str = ""
    public_key_pem: str | None = None  # the uploaded certificate's key (JWT bearer)
    run_as: str | None = None  # client credentials user; None: the flow is not enabled
    redirect_uris: list[str] = field(default_factory=list)


@dataclass
class Session:
    token: str
    user: str
    issued_at: float
    client_id: str = ""


def _b64decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def verify_rs256(assertion: str, public_key_pem: str) -> dict[str, Any]:
    """The claims of an RS256 JWS compact token, or OAuthError(invalid_grant)."""
    try:
        head, payload, signature = assertion.split(".")
        header = json.loads(_b64decode(head))
        claims = json.loads(_b64decode(payload))
        raw_signature = _b64decode(signature)
    except (ValueError, binascii.Error):
        raise OAuthError(400, "invalid_grant", "invalid assertion") from None
    if not isinstance(header, dict) or header.get("alg") != "RS256":
        raise OAuthError(400, "invalid_grant", "invalid assertion")
    key = serialization.load_pem_public_key(public_key_pem.encode())
    if not isinstance(key, rsa.RSAPublicKey):
        raise OAuthError(400, "invalid_grant", "invalid assertion")
    try:
        key.verify(
            raw_signature,
            f"{head}.{payload}".encode(),
            padding.PKCS1v15(),
            hashes.SHA256(),
        )
    except InvalidSignature:
        raise OAuthError(400, "invalid_grant", "invalid assertion") from None
    if not isinstance(claims, dict):
        raise OAuthError(400, "invalid_grant", "invalid assertion")
    return claims


class Authority:
    """Connected apps, users, codes, refresh tokens and live sessions."""

    def __init__(self, now: Any, session_seconds: float) -> None:
        self.now = now
        self.session_seconds = session_seconds
        self.apps: dict[str, ConnectedApp] = {}
        self.users: set[str] = set()
        self.audiences: set[str] = {"https://login.salesforce.com", "https://test.salesforce.com"}
        self.codes: dict[str, tuple[str, str]] = {}  # code -> (client_id, user)
        self.refresh_tokens: dict[str, tuple[str, str]] = {}  # token -> (client_id, user)
        self.sessions: dict[str, Session] = {}
        self.grants: list[str] = []  # every successful grant type, in order

    def session(self, token: str) -> Session | None:
        session = self.sessions.get(token)
        if session is None:
            return None
        if self.now() - session.issued_at >= self.session_seconds:
            del self.sessions[token]
            return None
        return session

    def expire_sessions(self) -> int:
        count = len(self.sessions)
        self.sessions.clear()
        return count

    def authorize(self, client_id: str, user: str) -> str:
        """An authorization code as if `user` approved the app (web-server flow)."""
        self._app(client_id)
        code = "aPrx" + secrets.token_urlsafe(24)
        self.codes[code] = (client_id, user)
        return code

    def _app(self, client_id: str | None) -> ConnectedApp:
        app = self.apps.get(client_id or "")
        if app is None:
            raise OAuthError(400, "invalid_client_id", "client identifier invalid")
        return app

    def _secret(self, app: ConnectedApp, secret: str | None) -> None:
        if not secret or not secrets.compare_digest(secret, app.client_secret):
            raise OAuthError(400, "invalid_client", "invalid client credentials")

    def token(
        self, form: dict[str, str], basic: tuple[str, str] | None, instance_url: str
    ) -> dict[str, Any]:
        grant = form.get("grant_type", "")
        client_id = basic[0] if basic else form.get("client_id")
        client_secret = basic[1] if basic else form.get("client_secret")
        refresh: str | None = None
        if grant == JWT_GRANT:
            user, client_id = self._jwt(form.get("assertion", ""))
        elif grant == "client_credentials":
            app = self._app(client_id)
            self._secret(app, client_secret)
            if app.run_as is None:
                raise OAuthError(400, "invalid_grant", "no client credentials user enabled")
            user = app.run_as
        elif grant == "authorization_code":
            app = self._app(client_id)
            self._secret(app, client_secret)
            issued = self.codes.pop(form.get("code", ""), None)
            if issued is None or issued[0] != app.client_id:
                raise OAuthError(400, "invalid_grant", "invalid authorization code")
            user = issued[1]
            refresh = "5Aep" + secrets.token_urlsafe(32)
            self.refresh_tokens[refresh] = (app.client_id, user)
        elif grant == "refresh_token":
            app = self._app(client_id)
            if app.client_secret:
                self._secret(app, client_secret)
            owner = self.refresh_tokens.get(form.get("refresh_token", ""))
            if owner is None or owner[0] != app.client_id:
                raise OAuthError(400, "invalid_grant", "expired access/refresh token")
            user = owner[1]
        else:
            raise OAuthError(400, "unsupported_grant_type", "grant type not supported")
        self.grants.append(grant)
        token = "00D000000000001!" + secrets.token_urlsafe(40)
        issued_at = self.now()
        self.sessions[token] = Session(token, user, issued_at, client_id or "")
        body: dict[str, Any] = {
            "access_token": token,
            "instance_url": instance_url,
            "id": f"{instance_url}/id/00D000000000001EAA/{user}",
            "token_type": "Bearer",
            "issued_at": str(int(issued_at * 1000)),
            "signature": base64.b64encode(secrets.token_bytes(32)).decode(),
            "scope": "api",
        }
        if refresh is not None:
            body["refresh_token"] = refresh
        return body

    def _jwt(self, assertion: str) -> tuple[str, str]:
        try:
            _, payload, _ = assertion.split(".")
            unverified = json.loads(_b64decode(payload))
        except (ValueError, binascii.Error):
            raise OAuthError(400, "invalid_grant", "invalid assertion") from None
        if not isinstance(unverified, dict):
            raise OAuthError(400, "invalid_grant", "invalid assertion")
        app = self._app(str(unverified.get("iss", "")))
        if app.public_key_pem is None:
            raise OAuthError(400, "invalid_grant", "invalid assertion")
        claims = verify_rs256(assertion, app.public_key_pem)
        if claims.get("aud") not in self.audiences:
            raise OAuthError(400, "invalid_grant", "audience is invalid")
        exp = claims.get("exp")
        now = self.now()
        if not isinstance(exp, (int, float)) or exp <= now:
            raise OAuthError(400, "invalid_grant", "expired authorization code")
        if exp > now + MAX_JWT_LIFETIME + 5:  # a little clock skew, as Salesforce allows
            raise OAuthError(400, "invalid_grant", "invalid assertion")
        user = claims.get("sub")
        if not isinstance(user, str) or user not in self.users:
            raise OAuthError(400, "invalid_grant", "user hasn't approved this consumer")
        return user, app.client_id
