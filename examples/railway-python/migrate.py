# The pre-deploy step railway.json's deploy.preDeployCommand names: it runs once per
# deploy in the new release before traffic switches, and leaves a mark server.py reports.
# Like a database migration, it writes where data lasts: $HOME (the service's data dir).
# Files written next to the code last only as long as the process that wrote them.
import os

with open(os.path.join(os.environ["HOME"], "migrated.txt"), "w") as f:
    f.write("schema v1\n")
print("migrate: schema v1 applied", flush=True)
