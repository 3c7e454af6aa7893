# The Procfile's release: command: runs once per deploy before the new release serves.
print("release: nothing to migrate", flush=True)
