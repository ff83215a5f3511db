"""Supabase Auth (GoTrue) as the identity provider: accounts, passwords, sessions and mail live there.

Access tokens are checked here (the project's JWT secret or JWKS, `exp`, `aud`, `iss`); a `live`
check also asks GoTrue, for the calls where a deleted, banned or logged-out user must stop at once. A `users`
row mirrors each Supabase user (id = `sub`) so tenants keep their owner. Operators are named by
ODOOSAAS_OPERATOR_EMAILS or by `app_metadata.role` = `admin` (only the service role writes
app_metadata), never by `user_metadata`, which users edit themselves.

Password reset: GoTrue mails a link to its `/verify`, which redirects to the portal's `/reset-password`
with a recovery session in the URL fragment; the page copies its access token into the form. So the
`token` of a reset confirmation is that access token, or the mail's `token_hash` (for a mail template
that links straight to the portal), which `/verify` exchanges for the session.
"""
import logging

import httpx
import jwt
from sqlalchemy import update
from werkzeug.exceptions import TooManyRequests

from odoosaas.errors import ApiError, Conflict, Forbidden, Invalid, Unauthenticated
from odoosaas.store.models import User, now

log = logging.getLogger(__name__)
AUDIENCE, OPERATOR_ROLE = "authenticated", "admin"
BAD_LINK = "This reset link is not valid or has expired."


class Unavailable(ApiError, status=503, code="auth_unavailable"):
    """GoTrue unreachable or failing."""


ERRORS = {  # GoTrue's error code -> the platform's error: class, message, code, fields
    "invalid_credentials": (Unauthenticated, "Wrong email or password."),
    "email_not_confirmed": (Unauthenticated, "First follow the link we mailed you.", "email_not_confirmed"),
    **dict.fromkeys(("user_already_exists", "email_exists"),
                    (Conflict, "An account with this email already exists.", "email_taken")),
    "weak_password": (Invalid, "This password is too weak.", None, {"password": "too weak"}),
    "otp_expired": (Invalid, BAD_LINK, None, {"token": "invalid or expired"}),
    "user_banned": (Forbidden, "This account is suspended.", "user_banned"),
    **dict.fromkeys(("over_request_rate_limit", "over_email_send_rate_limit"), (TooManyRequests, "Too many attempts.")),
    **dict.fromkeys(("refresh_token_not_found", "refresh_token_already_used", "session_not_found", "session_expired",
                     "user_not_found", "bad_jwt", "no_authorization"), (Unauthenticated, "Your session has ended.")),
}


class SupabaseProvider:
    def __init__(self, settings, store):
        self.settings, self.store = settings, store
        self.issuer = settings.supabase_url.rstrip("/")
        self.http = httpx.Client(base_url=self.issuer, timeout=15, headers={"X-Supabase-Api-Version": "2024-01-01"})
        self.jwks = jwt.PyJWKClient(settings.supabase_jwks_url or f"{self.issuer}/.well-known/jwks.json")
        self.operators = {email.strip().lower() for email in settings.operator_emails.split(",") if email.strip()}

    def _call(self, method: str, path: str, token: str = "", admin: bool = False, **kwargs) -> dict:
        key = self.settings.supabase_service_key if admin else self.settings.supabase_anon_key
        headers = {"apikey": key} if key else {}  # the gateway in front of a Supabase project wants a key
        if token or key:
            headers["Authorization"] = f"Bearer {token or key}"
        try:
            answer = self.http.request(method, path, headers=headers, **kwargs)
        except httpx.HTTPError as exc:
            log.warning("Supabase Auth unreachable: %s", exc)
            raise Unavailable("Accounts are unavailable for a moment.") from None
        if answer.is_success:
            return answer.json() if answer.content else {}
        code = answer.headers.get("x-sb-error-code", "")
        if code not in ERRORS:
            log.warning("Supabase Auth answered %s %r to %s %s", answer.status_code, code, method, path)
        unknown = (Unavailable, "Accounts are unavailable for a moment.") if answer.status_code >= 500 else (
            Invalid, "The account service refused this request.")
        kind, message, *details = ERRORS.get(code, unknown)
        raise kind(message, *details)

    def _claims(self, access_token: str) -> dict:
        try:
            hs256 = jwt.get_unverified_header(access_token).get("alg") == "HS256"
            # HS256 without a secret configured: PyJWT (2.13 on) refuses the empty key, which would let anyone sign;
            # passing the audience and issuer makes their claims required too
            key = self.settings.supabase_jwt_secret if hs256 else self.jwks.get_signing_key_from_jwt(access_token).key
            claims = jwt.decode(access_token, key, algorithms=["HS256"] if hs256 else ["RS256", "ES256"],
                                audience=AUDIENCE, issuer=self.issuer, options={"require": ["exp", "sub"]})
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("The access token has expired.") from None
        except jwt.PyJWTError:
            raise Unauthenticated("The access token is not valid.") from None
        if claims.get("is_anonymous") or not claims["sub"]:
            raise Unauthenticated("Sign up with an email address first.")
        return claims

    def _mirror(self, profile: dict, names: bool = True) -> User:
        """The store's row of a Supabase user, brought up to date; names only from a fresh GoTrue answer
        (`names`), not from a token's claims, which may predate a profile change."""
        user_id, email = profile.get("id") or profile["sub"], (profile.get("email") or "").lower()
        metadata = profile.get("user_metadata") or {}
        with self.store.session() as db:
            user = db.get(User, user_id)
            if user is None:  # a deleted account's row keeps its tenants and frees the email
                db.execute(update(User).where(User.email == email).values(email=User.id + "@replaced.invalid"))
                user, names = User(id=user_id, created_at=now()), True
                db.add(user)
            user.email = email
            user.is_admin = (profile.get("app_metadata") or {}).get("role") == OPERATOR_ROLE or email in self.operators
            if names:
                user.full_name, user.company = metadata.get("full_name", ""), metadata.get("company", "")
        return user

    def _session(self, grant: str, **body) -> dict:
        """A session from GoTrue's token endpoint, by password or refresh token."""
        answer = self._call("POST", "/token", params={"grant_type": grant}, json=body)
        fields = ("access_token", "refresh_token", "expires_in")
        return {**{name: answer[name] for name in fields}, "token_type": "bearer", "user": self._mirror(answer["user"])}

    def signup(self, email: str, password: str, full_name: str = "") -> User:
        profile = {"email": email, "password": password, "data": {"full_name": full_name}}
        answer = self._call("POST", "/signup", json=profile)
        # Not stored yet: with email confirmation on, GoTrue answers a look-alike for a taken email.
        return User(id=answer.get("user", answer)["id"], email=email.lower(), full_name=full_name, company="",
                    is_admin=False, created_at=now())

    def login(self, email: str, password: str) -> dict:
        return self._session("password", email=email, password=password)

    def refresh(self, refresh_token: str) -> dict:
        return self._session("refresh_token", refresh_token=refresh_token)

    def logout(self, access_token: str) -> None:
        self._call("POST", "/logout", token=access_token, params={"scope": "local"})

    def authenticate(self, access_token: str, live: bool = False) -> User:
        claims = self._claims(access_token)
        return self._mirror(self._call("GET", "/user", token=access_token) if live else claims, names=live)

    def update_profile(self, access_token: str, changes: dict) -> User:
        return self._mirror(self._call("PUT", "/user", token=access_token, json={"data": changes}))

    def request_reset(self, email: str) -> None:
        self._call("POST", "/recover", params={"redirect_to": f"{self.settings.portal_url}/reset-password"},
                   json={"email": email})

    def confirm_reset(self, token: str, password: str) -> None:
        try:
            if token.count(".") != 2:  # not a JWT: the mail's token_hash
                token = self._call("POST", "/verify", json={"type": "recovery", "token_hash": token})["access_token"]
            self._call("PUT", "/user", token=token, json={"password": password})  # GoTrue checks the token
        except Unauthenticated:
            raise Invalid(BAD_LINK, fields={"token": "invalid or expired"}) from None
        self._call("POST", "/logout", token=token, params={"scope": "global"})  # single use; other sessions end too

    def ensure_operator(self, email: str, password: str) -> User:
        """Through the admin API (service-role key): the account, confirmed, with this password and role."""
        attributes = {"password": password, "email_confirm": True, "app_metadata": {"role": OPERATOR_ROLE}}
        found = self._call("GET", "/admin/users", admin=True, params={"filter": email})["users"]
        known = next((user["id"] for user in found if user.get("email") == email.lower()), None)
        return self._mirror(self._call("PUT", f"/admin/users/{known}", admin=True, json=attributes) if known else
                            self._call("POST", "/admin/users", admin=True, json={"email": email, **attributes}))
