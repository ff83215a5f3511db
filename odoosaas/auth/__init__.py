"""Identity providers: the built-in one (default) and Supabase Auth (`auth/supabase.py`); `platform.build`
makes the one ODOOSAAS_AUTH names.

Both have these verbs, and raise the API's errors (odoosaas/errors.py):
- `signup(email, password, full_name) -> User`; `login(email, password)` and `refresh(refresh_token)`
  -> `{access_token, refresh_token, token_type, expires_in, user}`; `logout(access_token)`;
- `request_reset(email)`: mail a reset link if the account exists (the worker calls it);
  `confirm_reset(token, password)`: set the password, end the user's sessions;
- `authenticate(access_token, live=False) -> User`: a check of the token here, for reads; `live` also
  asks the provider (not banned, deleted or logged out), for calls that change something;
- `update_profile(access_token, {full_name?, company?}) -> User` (the fields to change);
  `ensure_operator(email, password) -> User`: `create-admin` and `ODOOSAAS_ADMIN_EMAIL`.

Users always have a row in the store, so tenants keep an owner whatever the provider.
"""

