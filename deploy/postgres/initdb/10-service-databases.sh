#!/usr/bin/env bash
# One database per service, each owned by its own login role: a service can reach its own data and no other
# service's. The postgres image runs this once, when it initialises an empty data volume (a volume made
# before this script changed keeps its databases: see deploy/README.md).
#
# Needs CAMPAIGNS_DB_PASSWORD, PLEDGES_DB_PASSWORD and REFUNDS_DB_PASSWORD (docker-compose.yml passes them).
set -euo pipefail

for service in campaigns pledges refunds; do
  variable="${service^^}_DB_PASSWORD"
  password="${!variable:-}"
  if [[ -z "$password" ]]; then
    echo "10-service-databases.sh: $variable is not set" >&2
    exit 1
  fi
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
    -v name="$service" -v password="$password" <<'SQL'
CREATE ROLE :"name" LOGIN PASSWORD :'password';
CREATE DATABASE :"name" OWNER :"name";
REVOKE ALL ON DATABASE :"name" FROM PUBLIC;
SQL
  echo "10-service-databases.sh: database and role \"$service\" created"
done
