"""Identity providers: the built-in one (default) and Supabase Auth share these verbs.

Users always have a row in the store, so tenants keep an owner whatever the provider.
"""
from typing import Protocol

from odoosaas.store.models import User


class IdentityProvider(Protocol):
    def signup(self, email: str, password: str, full_name: str) -> User: ...
    def login(self, email: str, password: str) -> dict: ...
    def refresh(self, refresh_token: str) -> dict: ...
    def logout(self, access_token: str) -> None: ...
    def request_reset(self, email: str) -> None: ...
    def confirm_reset(self, token: str, password: str) -> None: ...
    def authenticate(self, access_token: str) -> User: ...
    def verify_live(self, access_token: str) -> User: ...  # authenticate, and ask the provider: not banned, not logged out
    def update_profile(self, access_token: str, changes: dict) -> User: ...
    def ensure_operator(self, email: str, password: str) -> User: ...


def public_user(user: User) -> dict:
    return {"id": user.id, "email": user.email, "full_name": user.full_name, "company": user.company,
            "is_admin": user.is_admin, "created_at": user.created_at.isoformat()}


def make_provider(settings, store, mailer) -> IdentityProvider:
    if settings.auth == "supabase":
        from odoosaas.auth.supabase import SupabaseProvider
        return SupabaseProvider(settings, store)
    from odoosaas.auth.builtin import BuiltinProvider
    return BuiltinProvider(settings, store, mailer)
