# The python-stdlib example's pre-deploy step (Procfile `release:` / slipway.toml
# preDeployCommand): a stand-in for `alembic upgrade head`. It runs once per deploy in
# the new release with its variables, before any traffic switches to it.
# PREDEPLOY_FAIL=1 makes it fail, to see a deploy stop before the switch.
import os
import sys

version = os.environ.get("APP_VERSION", "dev")
# PRINT_VARIABLES=A,B: print them, as careless migrations do (the build log masks secrets).
for name in filter(None, os.environ.get("PRINT_VARIABLES", "").split(",")):
    print(f"migrate: {name}={os.environ.get(name, '')}", flush=True)
if os.environ.get("PREDEPLOY_FAIL") == "1":
    print(f"migrate: version {version}: migration 0042 failed: column \"email\" already exists "
          "(PREDEPLOY_FAIL=1)", file=sys.stderr, flush=True)
    sys.exit(1)
print(f"migrate: version {version}: schema up to date", flush=True)
