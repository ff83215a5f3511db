"""The customer's billing page: plan per instance, trial end, next invoice, invoices, the payment method."""
from flask import Blueprint, g, redirect, render_template, url_for

from odoosaas.tenants import service
from odoosaas.web.pages import platform

bp = Blueprint("billing", __name__, url_prefix="/billing")


@bp.get("/")
def show():
    with platform().store.session() as db:
        return render_template("billing.html", billing=platform().billing.overview(platform(), g.user),
                               instances={t.id: t for t in service.list_owned(db, g.user)})


@bp.post("/payment-method")
def payment_method():
    """Kill Bill's external payment method: the unpaid invoices are paid and suspended instances resume."""
    platform().billing.add_payment_method(platform(), g.user)
    return redirect(url_for(".show"))
