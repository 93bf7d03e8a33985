import os, wandb
# N rows through the real SDK, one log() call each, with a string every
# thousandth row and a nested key, for import tests and benchmarks.
n = int(os.environ.get("N", "100000"))
run = wandb.init(project="rows", config={"n": n})
for i in range(n):
    row = {"i": i, "x": i * 0.25, "m": {"a": -i}}
    if i % 1000 == 0:
        row["s"] = "s%d" % i
    run.log(row)
run.summary["rows"] = n
wandb.finish()
print("finished", run.id)
