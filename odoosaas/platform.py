"""The platform's parts, built once from settings and shared by the API, pages and worker."""
import os
import threading
from dataclasses import dataclass, field

from odoosaas.auth import make_provider
from odoosaas.billing import make_billing
from odoosaas.drivers import make_driver
from odoosaas.secretbox import SecretBox
from odoosaas.settings import Settings
from odoosaas.store import Store


@dataclass
class Platform:
    settings: Settings
    store: Store
    box: SecretBox
    auth: object
    billing: object
    driver: object
    wakeup: threading.Event = field(default_factory=threading.Event)

    def wake(self) -> None:
        """Tell an in-process worker that desired state changed."""
        self.wakeup.set()


def build(settings: Settings) -> Platform:
    os.umask(0o077)  # every file the platform writes (store, outbox, logs, configs) is private unless opened on purpose
    settings.resolve()
    store = Store(settings.database_url)
    return Platform(settings=settings, store=store, box=SecretBox(settings.secret_key),
                    auth=make_provider(settings, store), billing=make_billing(settings), driver=make_driver(settings))
