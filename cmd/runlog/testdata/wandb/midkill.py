import os, sys, time, wandb
k = int(os.environ.get("K", "300"))
run = wandb.init(project="proj", name="midkill")
for i in range(k):
    wandb.log({"v": i * 1.5, "i": i})
# Reading the summary awaits the service's answer: every row before it
# reached the service.
got = run.summary.get("i")
print("synced", run.id, got, flush=True)
sys.stdin.readline()
t0 = time.time()
try:
    for i in range(k, 2 * k):
        wandb.log({"v": i * 1.5, "i": i})
    wandb.finish()
except Exception as e:
    print("error", type(e).__name__, e, flush=True)
    raise
print("finished after kill in %.1fs" % (time.time() - t0), flush=True)
