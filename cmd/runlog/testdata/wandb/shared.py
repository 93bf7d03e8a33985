import os, sys, wandb
# One process of a shared-mode run: LABEL names it, PRIMARY=1 the primary.
label = os.environ["LABEL"]
primary = os.environ.get("PRIMARY") == "1"
run = wandb.init(project="shared", id=os.environ["RUN_ID"],
                 settings=wandb.Settings(mode="shared", x_primary=primary, x_label=label,
                                         x_update_finish_state=primary))
print("started", flush=True)
for i in range(int(os.environ.get("N", "200"))):
    run.log({label + "/v": i * 2 + (1 if primary else 0), label + "/i": i})
run.config.update({label: True})
if primary:
    # runlog finishes the run once no process is attached: the primary
    # waits until the others have joined.
    sys.stdin.readline()
run.finish()
print("finished", run.id, flush=True)
