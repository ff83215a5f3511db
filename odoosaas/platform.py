"""The platform's parts, built once from settings and shared by the API, pages and worker."""
import os
import threading
from dataclasses import dataclass, field

from odoosaas.auth import builtin, supabase
from odoosaas.billing import FreeTier, killbill
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
    auth = (supabase.SupabaseProvider if settings.auth == "supabase" else builtin.BuiltinProvider)(settings, store)
    billing = killbill.KillBill(settings) if settings.billing == "killbill" else FreeTier(settings.free_max_instances)
    return Platform(settings=settings, store=store, box=SecretBox(settings.secret_key), auth=auth, billing=billing,
                    driver=make_driver(settings))  # a driver's module is imported when chosen (lightkube is heavy)
