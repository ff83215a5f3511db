"""Plans, the caller's billing and payment method; Kill Bill's notification callback (a hint, nothing more)."""
from flask_openapi3 import APIBlueprint, Tag

from odoosaas.api import BEARER, BODY, SIGNED_IN, current_user, fails, platform, schemas

bp = APIBlueprint("billing", __name__, url_prefix="/api/v1", abp_tags=[Tag(name="billing")])


@bp.get("/plans", responses={200: schemas.Items, **fails()})
def plans():
    return {"items": platform().billing.plans(platform().settings)}


@bp.get("/billing", security=BEARER, responses={200: schemas.Billing, **SIGNED_IN})  # 503: Kill Bill unreachable
def billing():
    return platform().billing.overview(platform(), current_user())


@bp.post("/billing/payment-method", security=BEARER, responses={201: schemas.PaymentMethodAnswer, **BODY, **SIGNED_IN,
                                                                **fails(409)})
def payment_method(body: schemas.PaymentMethod):
    """Kill Bill's external payment method; the unpaid invoices are paid and suspended instances resume."""
    return {"payment_method": platform().billing.add_payment_method(platform(), current_user())}, 201


@bp.post("/billing/notifications", responses={204: None, **BODY})
def notification():
    """Kill Bill's push notification: the sweep re-reads Kill Bill now, so a forged one changes nothing."""
    platform().billing.woken.set()
    platform().wake()
    return "", 204
