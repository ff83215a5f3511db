"""The customer's billing page: plan per instance, trial end, next invoice, invoices, the payment method.

It shows what the billing and tenants APIs answer (plain functions; the page guard has set the signed-in user)."""
from flask import Blueprint, redirect, render_template, url_for

from odoosaas.api import billing as answers, schemas, tenants

bp = Blueprint("billing", __name__, url_prefix="/billing")


@bp.get("/")
def show():
    instances = {t["id"]: t for t in tenants.list_tenants()["items"]}
    return render_template("billing.html", billing=answers.billing(), instances=instances)


@bp.post("/payment-method")
def payment_method():
    """Kill Bill's external payment method: the unpaid invoices are paid and suspended instances resume."""
    answers.payment_method(schemas.PaymentMethod())
    return redirect(url_for(".show"))
