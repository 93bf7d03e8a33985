import os, sys, wandb
n = int(os.environ.get("N", "1000"))
run = wandb.init(project="proj", name="nm", group="grp", tags=["a","b"], notes="some notes",
                 config={"lr": 0.1, "layers": 3, "opt": {"name": "adam", "beta": 0.9}, "drop": 1})
print("hello from script")
for i in range(n):
    if i % 3 == 0:
        wandb.log({"loss": 1.0/(i+1), "i": i, "s": "x%d" % i})
    elif i % 3 == 1:
        wandb.log({"acc": i*0.5, "flag": i % 2 == 0}, step=run.step + 1)
    else:
        wandb.log({"part": i}, commit=False)
        wandb.log({"part2": float(i)})
run.config.update({"epochs": 10})

run.summary["best"] = 0.99
run.summary.update({"final": {"a": 1}})
print("to stderr", file=sys.stderr)
wandb.alert(title="t1", text="done", level=wandb.AlertLevel.WARN)
wandb.finish()
print("finished", run.id)
