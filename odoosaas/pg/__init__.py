"""PostgreSQL: local clusters and the role/database operations for tenants."""
