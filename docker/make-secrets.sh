#!/usr/bin/env sh
# Generate the secrets compose.yaml mounts, once, into docker/secrets/ (never committed).
# Existing files are kept: re-running never replaces a key that is already in use.
set -eu
cd "$(dirname "$0")"
umask 077
mkdir -p secrets
gen() { [ -s "secrets/$1" ] || { python3 -c "$2" > "secrets/$1" && echo "created secrets/$1"; }; }
gen django_secret_key 'import secrets; print(secrets.token_urlsafe(64))'
gen master_key 'import base64, os; print(base64.urlsafe_b64encode(os.urandom(32)).decode())'
gen metrics_token 'import secrets; print(secrets.token_urlsafe(32))'
gen postgres_password 'import secrets; print(secrets.token_hex(24))'
[ -s secrets/database_url ] || {
  printf 'postgresql://interchange:%s@postgres:5432/interchange\n' "$(cat secrets/postgres_password)" \
    > secrets/database_url && echo "created secrets/database_url"
}
# Compose bind-mounts these files as they are (no uid mapping outside swarm): the directory
# stays private to you, the files must be readable by the container users.
chmod 700 secrets
chmod 444 secrets/*
echo "Keep a copy of secrets/master_key somewhere safe: without it encrypted files are lost."
