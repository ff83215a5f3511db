"""Built-in identity provider: argon2 password hashes, short-lived JWT access tokens and
rotating refresh tokens whose reuse revokes the whole family.

A refresh token's successor is derived from it (HMAC with a key from the secret key), so a second
tab refreshing the same token within the grace gets the very token the first one got, and a token whose
successor is the family's current one is the one rotated away last: the store keeps only the current hash."""
import contextlib
import ctypes
import hashlib
import hmac
import logging
import secrets
import smtplib
import threading
from datetime import timedelta
from email.message import EmailMessage

import jwt
from argon2 import PasswordHasher
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from odoosaas.errors import Conflict, Invalid, Unauthenticated
from odoosaas.store.models import AuthSession, ResetToken, User, new_id, now

log = logging.getLogger(__name__)
ISSUER = AUDIENCE = "odoosaas"
REUSE_INTERVAL = timedelta(seconds=10)  # as Supabase Auth's refresh_token_reuse_interval
# argon2id with OWASP's first recommended parameters (19 MiB, 2 passes, 1 lane), one hash at a time per process: with
# the library's defaults (64 MiB each) 8 logins at once took the API to 620 MB resident, over its pod's limit. Now
# 115 MB steady, 136 MB at most (bench/login_memory.py). Older hashes still verify.
HASHER = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
ONE_AT_A_TIME = threading.BoundedSemaphore(1)


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def hashed(password: str) -> str:
    with ONE_AT_A_TIME:
        return HASHER.hash(password)


def send_mail(settings, to: str, subject: str, body: str) -> None:
    """SMTP when configured, else an `.eml` file in `<data dir>/outbox/`. Bodies may hold single-use links, so
    they are never logged; file names carry no secret."""
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = settings.mail_from, to, subject
    message.set_content(body)
    if settings.smtp_host:
        with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=30) as smtp:
            if settings.smtp_user:
                smtp.starttls()
                smtp.login(settings.smtp_user, settings.smtp_password)
            smtp.send_message(message)
    else:
        outbox = settings.data_dir / "outbox"
        outbox.mkdir(parents=True, exist_ok=True)
        (outbox / f"{now():%Y%m%d%H%M%S%f}-{secrets.token_hex(3)}.eml").write_bytes(bytes(message))
    log.info("mail %r sent", subject)


class BuiltinProvider:
    def __init__(self, settings, store):
        self.settings, self.store = settings, store
        # glibc raises its mmap threshold after the first big free, and then keeps a 19 MiB block in each request
        # thread's arena (8 threads: +150 MB for good); a fixed threshold stops that (M_MMAP_THRESHOLD = -3)
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6").mallopt(-3, 128 * 1024)
        self.dummy_hash = hashed(secrets.token_hex(16))  # checked for unknown emails, so they take as long as others
        self.jwt_key = hashlib.sha256(b"odoosaas-jwt:" + settings.secret_key.encode()).hexdigest()
        self.chain_key = hashlib.sha256(b"odoosaas-refresh:" + settings.secret_key.encode()).digest()

    def signup(self, email: str, password: str, full_name: str = "") -> User:
        user = User(email=email.lower(), password_hash=hashed(password), full_name=full_name)
        try:
            with self.store.session() as db:
                db.add(user)
        except IntegrityError:
            raise Conflict("An account with this email already exists.", "email_taken") from None
        return user

    def login(self, email: str, password: str) -> dict:
        with self.store.session() as db:
            user = db.scalar(select(User).where(User.email == email.lower()))
            try:  # no such user: the dummy hash, whose password nobody knows, is checked all the same
                with ONE_AT_A_TIME:
                    HASHER.verify(user.password_hash if user and user.password_hash else self.dummy_hash, password)
            except Exception:  # argon2's VerificationError (no match) or InvalidHashError
                raise Unauthenticated("Wrong email or password.") from None
            family_id = new_id()
            refresh_token = f"{family_id}.{secrets.token_urlsafe(32)}"
            db.add(AuthSession(id=family_id, user_id=user.id, token_hash=digest(refresh_token),
                               expires_at=now() + timedelta(seconds=self.settings.refresh_token_ttl)))
            return self._issue(user, family_id, refresh_token)

    def refresh(self, refresh_token: str) -> dict:
        session_id = refresh_token.partition(".")[0]
        # derived from the token, so a second tab refreshing it within the grace gets the same one
        successor = f"{session_id}.{hmac.new(self.chain_key, refresh_token.encode(), 'sha256').hexdigest()}"
        with self.store.session() as db:
            family = db.get(AuthSession, session_id, with_for_update=True)
            if family is None or family.revoked_at or family.expires_at <= now():
                raise Unauthenticated("The refresh token is not valid.")
            if secrets.compare_digest(family.token_hash, digest(refresh_token)):
                family.token_hash, family.rotated_at = digest(successor), now()
            elif not (secrets.compare_digest(family.token_hash, digest(successor))
                      and now() - family.rotated_at < REUSE_INTERVAL):  # rotated away a moment ago: two tabs
                family.revoked_at = now()  # an older token came back: someone may have copied it
            if not family.revoked_at:
                return self._issue(db.get(User, family.user_id), family.id, successor)
        raise Unauthenticated("The refresh token was already used; please log in again.")

    def _issue(self, user: User, family_id: str, refresh_token: str) -> dict:
        ttl = self.settings.access_token_ttl
        claims = {"sub": user.id, "sid": family_id, "iss": ISSUER, "aud": AUDIENCE,
                  "iat": now(), "exp": now() + timedelta(seconds=ttl)}
        return {"access_token": jwt.encode(claims, self.jwt_key, algorithm="HS256"),
                "refresh_token": refresh_token, "token_type": "bearer", "expires_in": ttl, "user": user}

    def _claims(self, access_token: str) -> dict:
        try:
            return jwt.decode(access_token, self.jwt_key, algorithms=["HS256"], audience=AUDIENCE,
                              issuer=ISSUER, options={"require": ["exp", "sub", "sid"]})
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("The access token has expired.") from None
        except jwt.InvalidTokenError:
            raise Unauthenticated("The access token is not valid.") from None

    def authenticate(self, access_token: str, live: bool = False) -> User:
        """`live` asks nothing more here: the session's row is read either way."""
        with self.store.session() as db:
            family = db.get(AuthSession, self._claims(access_token)["sid"])
            if family is None or family.revoked_at:
                raise Unauthenticated("This session has ended; please log in again.")
            return db.get(User, family.user_id)  # a user's sessions go with it (ON DELETE CASCADE)

    def logout(self, access_token: str) -> None:
        claims = self._claims(access_token)
        with self.store.session() as db:
            db.execute(update(AuthSession).where(AuthSession.id == claims["sid"]).values(revoked_at=now()))

    def request_reset(self, email: str) -> None:
        token = secrets.token_urlsafe(32)
        with self.store.session() as db:
            user = db.scalar(select(User).where(User.email == email.lower()))
            if user is None or user.password_hash is None:
                return
            expires = now() + timedelta(seconds=self.settings.reset_token_ttl)
            db.add(ResetToken(token_hash=digest(token), user_id=user.id, expires_at=expires))
        link = f"{self.settings.portal_url}/reset-password?token={token}"
        send_mail(self.settings, user.email, "Reset your password",
                  f"Someone asked to reset the password of your account.\n\nSet a new one here "
                  f"(the link works once, for an hour):\n{link}\n\nIf it was not you, ignore this mail.\n")

    def confirm_reset(self, token: str, password: str) -> None:
        with self.store.session() as db:
            row = db.get(ResetToken, digest(token), with_for_update=True)
            if row is None or row.used_at or row.expires_at < now():
                raise Invalid("This reset link is not valid or has expired.", fields={"token": "invalid or expired"})
            row.used_at = now()
            db.get(User, row.user_id).password_hash = hashed(password)
            db.execute(update(AuthSession).where(AuthSession.user_id == row.user_id).values(revoked_at=now()))

    def update_profile(self, access_token: str, changes: dict) -> User:
        with self.store.session() as db:
            row = db.get(User, self.authenticate(access_token).id)
            for field, value in changes.items():  # full_name, company (the API's Profile); maybe none
                setattr(row, field, value)
        return row

    def ensure_operator(self, email: str, password: str) -> User:
        with self.store.session() as db:
            user = db.scalar(select(User).where(User.email == email.lower())) or User(email=email.lower())
            db.add(user)  # a no-op for a row the session holds already
            user.is_admin, user.password_hash = True, hashed(password)
        return user
