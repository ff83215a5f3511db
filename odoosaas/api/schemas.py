"""Request bodies and parameters; pydantic names the bad field, the API renders the envelope."""
from typing import Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field, field_validator

from odoosaas.tenants import rules

Password = Field(min_length=8, max_length=200)


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Signup(Body):
    email: EmailStr
    password: str = Password
    full_name: str = Field("", max_length=200)


class Login(Body):
    email: EmailStr
    password: str = Field(min_length=1, max_length=200)


class Refresh(Body):
    refresh_token: str = Field(min_length=1, max_length=500)


class ResetRequest(Body):
    email: EmailStr


class ResetConfirm(Body):
    token: str = Field(min_length=1, max_length=4000)  # Supabase: a recovery access token (a JWT)
    password: str = Password


class Profile(Body):
    full_name: str | None = Field(None, max_length=200)
    company: str | None = Field(None, max_length=200)


class TenantRequest(Body):
    subdomain: str
    admin_email: EmailStr
    admin_password: str = Password
    tier: Literal["basic", "standard", "premium", "enterprise"] = "basic"
    app: str = "odoo"
    compliance: list[Literal["hipaa", "sox", "pci-dss"]] = []
    high_performance: bool = False
    expected_data_gb: float = Field(0, ge=0, le=100_000)
    modules: list[str] = Field([], max_length=50)

    @field_validator("subdomain")
    @classmethod
    def _subdomain(cls, value: str) -> str:
        problem = rules.subdomain_problem(value)
        if problem:
            raise ValueError(problem)
        return value


class ModuleNames(Body):
    names: list[str] = Field(min_length=1, max_length=50)


class AdminPassword(Body):
    password: str = Password


class TenantPath(BaseModel):
    tenant_id: str  # any length: an unknown id is a 404


class SubdomainPath(BaseModel):
    name: str  # any length: a bad name is `available: false` with the reason


class AdminFilter(BaseModel):
    status: str = ""
    db_strategy: str = ""
    tier: str = ""
    q: str = Field("", max_length=100)
