"""One typed settings object, read from ODOOSAAS_* environment variables.

Every field has a default and one line of help; the README's table lists them all
(a test checks it). Defaults are the embedded ones: SQLite, built-in auth, free tier,
local runtime.
"""
import secrets
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ODOOSAAS_", extra="forbid")

    # Core
    env: Literal["development", "production"] = Field("development", description="`production`: no generated secrets.")
    data_dir: Path = Field(Path("./var"), description="SQLite store, secrets, clusters, logs, outbox.")
    bind: str = Field("127.0.0.1", description="Address the web server listens on (`0.0.0.0` in a container).")
    port: int = Field(8000, validation_alias=AliasChoices("PORT", "ODOOSAAS_PORT"), description="HTTP port (`PORT`).")
    database_url: str = Field("", description="Metadata store URL; empty: SQLite in the data dir.")
    secret_key: str = Field("", description="Signs tokens, encrypts secrets; generated in development.")
    base_domain: str = Field("localhost", description="Tenants live at `<sub>.<base domain>`.")
    public_scheme: str = Field("http", description="Scheme of tenant URLs (`https` in production).")
    admin_email: str = Field("", description="With the password, start-up makes sure this operator account exists.")
    admin_password: str = Field("", description="Password of the operator account named by `ODOOSAAS_ADMIN_EMAIL`.")
    max_body_bytes: int = Field(64 * 1024, description="Largest request body accepted (413 above).")

    # Identity
    auth: Literal["builtin", "supabase"] = Field("builtin", description="Identity provider.")
    access_token_ttl: int = Field(900, description="Lifetime of an access token, seconds.")
    refresh_token_ttl: int = Field(30 * 86400, description="Lifetime of a refresh token family, seconds.")
    reset_token_ttl: int = Field(3600, description="Lifetime of a reset token, seconds (at most an hour).", le=3600)
    rate_limit: str = Field("10 per minute", description="Per client, each account route; login, reset also per email.")
    rate_limit_storage: str = Field("memory://", description="Flask-Limiter storage; `memory://`: per process.")
    trusted_proxies: int = Field(0, description="Proxies in front whose X-Forwarded-For is believed.")
    supabase_url: str = Field("", description="`https://<ref>.supabase.co/auth/v1`; tokens' `iss`.")
    supabase_anon_key: str = Field("", description="The anon (publishable) key.")
    supabase_service_key: str = Field("", description="The service-role key (admin API).")
    supabase_jwt_secret: str = Field("", description="JWT secret (HS256 tokens).")
    supabase_jwks_url: str = Field("", description="JWKS (asymmetric keys); empty: under the URL.")
    operator_emails: str = Field("", description="Operators' emails, comma-separated (Supabase).")
    smtp_host: str = Field("", description="SMTP server for mail; empty writes `.eml` files to `<data dir>/outbox/`.")
    smtp_port: int = Field(587, description="SMTP port.")
    smtp_user: str = Field("", description="SMTP user name (STARTTLS is used when set).")
    smtp_password: str = Field("", description="SMTP password.")
    mail_from: str = Field("no-reply@localhost", description="Sender address of platform mail.")
    portal_url: str = Field("", description="This portal's public URL (mailed links).")

    # Billing and tiers
    billing: Literal["free", "killbill"] = Field("free", description="Billing provider: `free` or `killbill`.")
    killbill_url: str = Field("http://127.0.0.1:8080", description="Kill Bill's URL.")
    killbill_user: str = Field("admin", description="Kill Bill user (HTTP Basic).")
    killbill_password: str = Field("", description="That user's password.")
    killbill_api_key: str = Field("", description="API key of the platform's Kill Bill tenant.")
    killbill_api_secret: str = Field("", description="API secret of that Kill Bill tenant.")
    billing_check_seconds: int = Field(300, description="Seconds between re-reads of every account's balance.")
    free_max_instances: int = Field(5, description="Live instances a user may have on the free tier.")
    tiers: dict[str, dict[str, int]] = Field({}, description="JSON overrides of the tier table.")
    shared_capacity: int = Field(50, description="Tenants per shared PostgreSQL server.")

    # Runtime
    driver: Literal["local", "kubernetes"] = Field("local", description="Runtime driver.")
    worker: bool = Field(True, description="Run the reconciler inside the web process (`make run`).")
    local_fallback_app: str = Field("", description="App run when Odoo is absent (`sample`).")
    odoo_bin: str = Field("", description="odoo-bin (local); empty: the one `make odoo` installs.")
    traefik_bin: str = Field("", description="Traefik binary; empty: PATH, then the cache.")
    ready_timeout: int = Field(600, description="Seconds an app may take to become healthy.")
    move_grace_seconds: int = Field(86400, description="Seconds a moved tenant's old database is kept.")
    move_switch_timeout: int = Field(300, description="Seconds a switch waits for an equal copy.")
    lease_seconds: int = Field(60, description="Seconds a worker holds a row's lease unless its heartbeat renews it.")
    fault_after: str = Field("", description="Tests: exit after this `kind:step`.")
    traefik_port: int = Field(8080, description="Port of the local Traefik entry point (0: no Traefik).")
    traefik_tls_port: int = Field(8443, description="Port of the local Traefik's HTTPS entry point (0: none).")
    acme_server: str = Field("https://acme-v02.api.letsencrypt.org/directory", description="Custom domains' ACME CA.")
    acme_email: str = Field("", description="Contact address of the ACME account.")
    acme_ca_file: str = Field("", description="CA bundle trusted for the ACME server.")
    dns_resolvers: str = Field("", description="Resolvers `ip[:port],...`; empty: the system's.")
    domain_check_seconds: int = Field(60, description="Seconds between checks of pending domains.")

    # Backups
    backup_key: str = Field("", description="Key that encrypts backups; empty: derived from the secret key.")
    backup_s3: str = Field("", description="`bucket/prefix/` in S3 (boto3's `AWS_*`); empty: a folder.")
    backup_every: dict[str, int] = Field({"basic": 86400, "standard": 86400, "premium": 21600, "enterprise": 21600},
                                         description="Seconds between scheduled backups, per tier (0: none).")
    backup_keep: dict[str, int] = Field({"daily": 7, "weekly": 4, "monthly": 3}, description="Backups kept.")
    backup_keep_deleted_days: int = Field(30, description="Days a deleted instance's last backup is kept.")
    backup_check_seconds: int = Field(300, description="Seconds between the worker's schedule and retention sweeps.")
    backup_link_seconds: int = Field(3600, description="Lifetime of a backup's download link, seconds.")

    # Kubernetes driver
    kubeconfig: str = Field("", description="Kubeconfig file; empty uses the pod's service account.")
    k8s_platform_namespace: str = Field("odoosaas", description="Namespace of the control plane.")
    k8s_ingress_namespace: str = Field("ingress", description="Namespace of the ingress controller.")
    k8s_entry_points: str = Field("websecure", description="Traefik entry points of tenant routes (comma-separated).")
    k8s_tls_secret: str = Field("", description="TLS secret of tenant routes; empty: Traefik's default.")
    k8s_storage_class: str = Field("", description="StorageClass of volumes; empty: the default.")
    k8s_odoo_image: str = Field("odoo:18.0", description="Odoo image.")
    k8s_odoo_uid: int = Field(101, description="Numeric uid of the image's `odoo` user.")
    k8s_postgres_image: str = Field("postgres:16", description="Image of dedicated and shared PostgreSQL servers.")
    k8s_platform_image: str = Field("odoosaas:latest", description="The control plane's image.")
    k8s_cert_resolver: str = Field("letsencrypt", description="Traefik certificate resolver of custom-domain routes.")
    k8s_mail_egress: str = Field("", description="CIDRs tenants may reach on SMTP ports (comma-separated).")

    @model_validator(mode="after")
    def _require_real_secrets(self):
        if self.env == "production" and (len(self.secret_key) < 32 or not self.database_url):
            raise ValueError("production needs ODOOSAAS_SECRET_KEY (32+ chars) and ODOOSAAS_DATABASE_URL")
        if self.billing == "killbill" and not (self.killbill_api_key and self.killbill_api_secret):
            raise ValueError("ODOOSAAS_BILLING=killbill needs ODOOSAAS_KILLBILL_API_KEY and _API_SECRET")
        if self.auth == "supabase" and not self.supabase_url:
            raise ValueError("ODOOSAAS_AUTH=supabase needs ODOOSAAS_SUPABASE_URL")
        return self

    def resolve(self) -> None:
        """Fill the derived defaults (store URL, generated key) from the data dir."""
        self.data_dir = self.data_dir.resolve()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.chmod(0o711)  # private, yet the `postgres` account may pass through to its clusters
        self.database_url = self.database_url or f"sqlite:///{self.data_dir / 'odoosaas.db'}"
        key_file = self.data_dir / "secret_key"  # made once, then kept
        if not (self.secret_key or key_file.exists()):
            key_file.touch(mode=0o600)
            key_file.write_text(secrets.token_urlsafe(48))
        self.secret_key = self.secret_key or key_file.read_text().strip()
        self.portal_url = self.portal_url or f"http://127.0.0.1:{self.port}"
