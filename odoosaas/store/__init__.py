"""The metadata store: engine, sessions and migrations."""
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, event, inspect
from sqlalchemy.orm import sessionmaker

from odoosaas.store.models import Base


class Store:
    def __init__(self, url: str):
        sqlite = url.startswith("sqlite")
        self.engine = create_engine(url, pool_pre_ping=not sqlite,
                                    connect_args={"timeout": 30, "check_same_thread": False} if sqlite else {})
        if sqlite:  # on each new connection; the busy timeout is the driver's `timeout` above
            event.listen(self.engine, "connect",
                         lambda dbapi, _: dbapi.executescript("PRAGMA journal_mode=WAL; PRAGMA foreign_keys=ON"))
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    def session(self):
        """A unit of work: committed on success, rolled back on error, then closed."""
        return self.sessions.begin()

    def upgrade(self) -> None:
        """A new store is made from the models and stamped with the newest revision (Alembic's cookbook, "Building
        an Up to Date Database from Scratch"); an older one runs the revisions it lacks."""
        with self.engine.begin() as connection:
            config = Config(attributes={"connection": connection})  # migrations/env.py runs on it
            config.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
            if not inspect(connection).has_table("alembic_version"):
                Base.metadata.create_all(connection)
                command.stamp(config, "head")
            command.upgrade(config, "head")  # a no-op on a new store

    def ping(self) -> None:
        with self.engine.connect() as connection:
            connection.exec_driver_sql("SELECT 1")

    def dispose(self) -> None:
        self.engine.dispose()
