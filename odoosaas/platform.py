"""The platform's parts, built once from settings and shared by the API, pages and worker."""
import threading
from dataclasses import dataclass, field

from sqlalchemy import select

from odoosaas.auth import make_provider
from odoosaas.auth.mail import Mailer
from odoosaas.billing import make_billing
from odoosaas.drivers import make_driver
from odoosaas.secretbox import SecretBox
from odoosaas.settings import Settings
from odoosaas.store import Store
from odoosaas.store.models import User


@dataclass
class Platform:
    settings: Settings
    store: Store
    box: SecretBox
    mailer: Mailer
    auth: object
    billing: object
    driver: object
    wakeup: threading.Event = field(default_factory=threading.Event)

    def wake(self) -> None:
        """Tell an in-process worker that desired state changed."""
        self.wakeup.set()


def build(settings: Settings) -> Platform:
    settings.resolved()
    store = Store(settings.database_url)
    mailer = Mailer(settings)
    return Platform(settings=settings, store=store, box=SecretBox(settings.secret_key), mailer=mailer,
                    auth=make_provider(settings, store, mailer), billing=make_billing(settings),
                    driver=make_driver(settings))


def ensure_admin(platform: Platform, email: str, password: str) -> User:
    """Make sure an operator account exists with this password (CLI and start-up)."""
    with platform.store.session() as db:
        user = db.scalar(select(User).where(User.email == email.lower()))
        if user is None:
            user = User(email=email.lower())
            db.add(user)
        user.is_admin = True
        user.password_hash = platform.auth.hasher.hash(password)
    return user
