"""initial schema: accounts, database servers, tenants and their events, operations, custom domains

The base revision. Revisions 0001-0003 were squashed into it before the first release, keeping the id 0003, so a
store they made is at it already. A new store never runs it: it is made from the models and stamped with the
newest revision (Store.upgrade). So its schema is that of store/models.py when this body was emptied (git log of
this file); a later revision brings stores at 0003 forward from there, and runs on no other store.

Revision ID: 0003
Revises:
"""
revision = "0003"
down_revision = None


def upgrade():
    """Nothing to do: see above."""
