"""Request bodies and parameters (pydantic names the bad field, the API renders the envelope), and the
answers' shapes for the OpenAPI document."""
from typing import Annotated, Literal

from email_validator import SPECIAL_USE_DOMAIN_NAMES
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, EmailStr, Field, StrictBool, create_model

from odoosaas import apps
from odoosaas.tenants import domains, rules

Password = Field(min_length=8, max_length=200)
# EmailStr refuses the special-use domains (.test, .local...) that the "email" format allows: say so, in any case
SPECIAL_USE = "|".join("".join(f"[{c}{c.upper()}]" for c in name) for name in SPECIAL_USE_DOMAIN_NAMES)
Email = Annotated[EmailStr, Field(json_schema_extra={"not": {"pattern": f"[@.]({SPECIAL_USE})$"}})]
# rules.subdomain_problem as JSON Schema, whose regex dialects need not know lookahead (tests/test_openapi.py)
SUBDOMAIN = {"minLength": 3, "maxLength": 30, "pattern": "^[a-z](-?[a-z0-9])*$",
             "not": {"enum": sorted(rules.RESERVED)}}
# A JSON number (or the dashboard's text), never true or false (None fails as "should be a valid number")
Number = Annotated[float, BeforeValidator(lambda value: None if isinstance(value, bool) else value)]


def refused_by(problem_of, message: str = "{}") -> AfterValidator:
    """A check that refuses a value `problem_of` finds a problem with, saying it in `message`."""
    def check(value: str) -> str:
        if problem := problem_of(value):
            raise ValueError(message.format(problem))
        return value
    return AfterValidator(check)


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")  # kept as sent: a password's spaces are part of it


class Signup(Body):
    email: Email
    password: str = Password
    full_name: str = Field("", max_length=200)


class Login(Body):
    email: Email
    password: str = Field(min_length=1, max_length=200)


class Refresh(Body):
    refresh_token: str = Field(min_length=1, max_length=500)


class ResetRequest(Body):
    email: Email


class ResetConfirm(Body):
    token: str = Field(min_length=1, max_length=4000)  # Supabase: a recovery access token (a JWT)
    password: str = Password


class Profile(Body):
    full_name: str | None = Field(None, max_length=200)
    company: str | None = Field(None, max_length=200)


class TenantRequest(Body):
    subdomain: Annotated[str, refused_by(rules.subdomain_problem)] = Field(json_schema_extra=SUBDOMAIN)
    admin_email: Email
    admin_password: str = Password
    tier: Literal["basic", "standard", "premium", "enterprise"] = "basic"
    app: str = Field("odoo", json_schema_extra={"enum": list(apps.KNOWN)})
    compliance: list[Literal["hipaa", "sox", "pci-dss"]] = []
    high_performance: StrictBool = False  # JSON's true, not 1 or "yes"
    expected_data_gb: Number = Field(0, ge=0, le=100_000)
    modules: list[str] = Field([], max_length=50)


class ModuleNames(Body):
    names: list[str] = Field(min_length=1, max_length=50)


class AdminPassword(Body):
    password: str = Password


class TierChange(Body):
    tier: Literal["basic", "standard", "premium", "enterprise"]


class PaymentMethod(Body):
    kind: Literal["external"] = "external"  # Kill Bill's external payment method; a card processor would add kinds


class MoveRequest(Body):
    target_strategy: Literal["shared", "dedicated"]
    reason: str = Field("", max_length=500)


class DomainRequest(Body):
    name: Annotated[str, refused_by(domains.name_problem, "The domain {}.")] = Field(
        json_schema_extra={"minLength": 4, "maxLength": 254, "pattern": domains.HOSTNAME})


class TenantPath(BaseModel):
    tenant_id: str  # any length: an unknown id is a 404


class DomainPath(TenantPath):
    name: str  # any: an unknown one is a 404


class SubdomainPath(BaseModel):
    name: str  # any length: a bad name is `available: false` with the reason


class AdminFilter(BaseModel):
    status: str = ""
    db_strategy: str = ""
    tier: str = ""
    q: str = Field("", max_length=100)


def answer(model_name: str, /, **fields) -> type[BaseModel]:
    """A body's model: a JSON object with these members (success bodies may add more: clients ignore the rest)."""
    return create_model(model_name, **{field: (kind, ...) for field, kind in fields.items()})


# Every error, on every route (API.md); `fields` (validation only): which field is wrong and why.
ErrorDetail = create_model("ErrorDetail", code=(str, ...), message=(str, ...), fields=(dict[str, str], {}))
Error = answer("Error", error=ErrorDetail)
UserAnswer, TenantAnswer, OperationAnswer, DomainAnswer, RequestAnswer = (
    answer(f"{key.title()}Answer", **{key: dict}) for key in ("user", "tenant", "operation", "domain", "request"))
Items = answer("Items", items=list[dict])
Tokens = answer("Tokens", access_token=str, refresh_token=str, token_type=str, expires_in=int, user=dict)
Availability = answer("Availability", name=str, available=bool, reason=str)
Health = answer("Health", status=str)
Overview = answer("Overview", tenants_by_status=dict, tenants_by_strategy=dict, tenants_by_tier=dict, nodes=list,
                  db_servers=list)
Billing = answer("Billing", account=dict | None, subscriptions=list[dict], invoices=list[dict],
                 payment_method=dict | None)
PaymentMethodAnswer = answer("PaymentMethodAnswer", payment_method=dict)
