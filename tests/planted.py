"""Distinctive secrets the suite plants: credentials the server holds, the admin key.

Tests that exercise credentials use these values, and ``tests/conftest.py`` scans every
log line, error body, admin response and response header the suite produces for them (see
``secret_scan``): none may ever appear there.
"""

from __future__ import annotations

ADMIN_KEY = "pk-admin-7Qe2LmV9xT4rB8wN1sZ6"
ADMIN = {"x-portkey-api-key": ADMIN_KEY}

# Server-held credentials of every kind the gateway sends upstream.
OPENAI_KEY = "sk-planted-openai-3fK9qL2mZ8vR1tX7"
GOOGLE_KEY = "AIzaPlantedGoogleKey-5hJ2kP9wQ4rT"
AZURE_KEY = "azk-planted-azure-8uY3nB6cV1xM4z"
AZURE_AD_TOKEN = "eyJplanted.azure-ad-token.6gH2jK8lP0qW"
AWS_ACCESS_KEY_ID = "AKIAPLANTEDKEY7Z3Q"
AWS_SECRET_ACCESS_KEY = "planted/aws+secret/9dF4gH7jK2lZ5xC8vB1n"
AWS_SESSION_TOKEN = "IQoJplanted-aws-session-token-4rT7yU0iO3pA"
VERTEX_TOKEN = "ya29.planted-vertex-access-token-2wE5rT8y"
ANTHROPIC_KEY = "sk-ant-planted-anthropic-6tY9uI2oP5aS"
USERINFO_PASSWORD = "planted-userinfo-pass-1qA4zX7c"
#: the vault's master key for every gateway of the suite (base64url of 32 bytes)
MASTER_KEY = "cGxhbnRlZC1tYXN0ZXIta2V5LTMyLWJ5dGVzLW9rISE"

#: Every planted value: the scan fails the test if any of them shows up where it looks.
ALL = [
    ADMIN_KEY,
    OPENAI_KEY,
    GOOGLE_KEY,
    AZURE_KEY,
    AZURE_AD_TOKEN,
    AWS_ACCESS_KEY_ID,
    AWS_SECRET_ACCESS_KEY,
    AWS_SESSION_TOKEN,
    VERTEX_TOKEN,
    ANTHROPIC_KEY,
    USERINFO_PASSWORD,
    MASTER_KEY,
]


def plant(value: str) -> str:
    """Add a value made at run time (a generated private key) to the scanned ones."""
    if value not in ALL:
        ALL.append(value)
    return value
