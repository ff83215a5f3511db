"""Loaded by Schemathesis in tests/test_openapi.py (the `hooks` setting): one check of our own."""
import schemathesis

# What only the platform can judge, never the request's shape: which Odoo apps this installation has
# (`modules`, `names`), whether it issued a reset token (`token`), its own base domain (a domain's `name`).
BUSINESS_FIELDS = {"modules", "names", "token", "name"}


@schemathesis.check
def refused_only_for_business_rules(ctx, response, case):
    """A schema-valid request answered 400 names only business fields: positive_data_acceptance, which
    these operations' config lets answer 400, stays strict for every other field."""
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive or response.status_code != 400:
        return None
    fields = set(response.json()["error"].get("fields", {}))
    if not fields or not fields <= BUSINESS_FIELDS:
        raise AssertionError(f"Valid data should have been accepted: refused for {sorted(fields) or 'no field'}")
    return None
