# The pre-deploy step railway.json's deploy.preDeployCommand names: it runs once per
# deploy in the new release before traffic switches, and leaves a mark server.py reports.
import os

with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "migrated.txt"), "w") as f:
    f.write("schema v1\n")
print("migrate: schema v1 applied", flush=True)
