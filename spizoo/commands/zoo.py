"""``spizoo zoo``: the trained models that ship with spizoo, and their model cards."""

from __future__ import annotations

import argparse

from spizoo.models import zoo

DESCRIPTION = """\
    The trained models inside the package (spizoo.models.zoo), usable without training wherever a
    run directory is: spizoo classify, evaluate, export and monitor take zoo:NAME. `spizoo zoo list`
    lists them with their test accuracy; `spizoo zoo show NAME` prints a model card: the data it
    was trained on (config and its SHA-256), the training command, test metrics over seeds, the
    detector, photon-energy and size ranges, and known limits.

    example:
      spizoo zoo list
      spizoo zoo show hits-resnet10
      spizoo simulate configs/experiments/e1_resnet10_hits.yaml -n 8 --out out/zoo_demo
      spizoo classify zoo:hits-resnet10 out/zoo_demo/patterns.cxi --out out/zoo_demo/results.h5
    """


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("list", "show"), help="list the models, or show one's card")
    parser.add_argument("name", nargs="?", help="with show: the model (hits-resnet10 or zoo:hits-resnet10)")


def run(args: argparse.Namespace) -> dict:
    if args.action == "list":
        if args.name:
            raise ValueError(f"spizoo zoo list takes no name (got {args.name!r}); use spizoo zoo show {args.name}")
        return {"models": {e.name: e.card for e in zoo.entries()}}
    if not args.name:
        raise ValueError("spizoo zoo show needs a model name; spizoo zoo list gives them")
    try:
        directory = zoo.path(args.name)
    except KeyError as err:
        raise ValueError(err.args[0]) from None
    name = directory.name
    return {"models": {name: next(e.card for e in zoo.entries() if e.name == name)}, "path": str(directory)}


def summary_line(summary: dict) -> str:
    models = summary["models"]
    if "path" in summary:
        (name,) = models
        return f"{zoo.PREFIX}{name}: {models[name]['summary']}"
    return f"{len(models)} model(s)" + ("" if models else " (the zoo is empty)")


def summary_rows(summary: dict, args: argparse.Namespace) -> list[tuple[str, str]]:
    if "path" not in summary:
        return [
            (zoo.PREFIX + name, f"{card['summary']} — {_accuracy(card)}") for name, card in summary["models"].items()
        ]
    (card,) = summary["models"].values()
    data, test = card["data"], card["test"]
    rows = [
        ("model", f"{card['model']} ({card['task']}), {card['precision']}, {summary['path']}"),
        ("trained on", f"{data['config']} (sha256 {data['config_sha256'][:16]}…), {data['patterns']}"),
        ("ranges", "; ".join(f"{k} {v}" for k, v in card["ranges"].items())),
        ("command", card["training_command"]),
        ("test", _accuracy(card)),
    ]
    rows += [(f"  seed {s['seed']}", _seed(s)) for s in test["seeds"]]
    rows.append(("check", f"{card['check']['accuracy']:.1%} on {card['check']['patterns']} regenerated patterns"))
    rows += [("limit", limit) for limit in card["limits"]]
    rows.append(("use", f"spizoo classify {zoo.PREFIX}{next(iter(summary['models']))} FILES --out results.h5"))
    return rows


def _seed(seed: dict) -> str:
    text = f"{seed['accuracy']:.1%} on {seed['patterns']} test patterns"
    if "single_hits_kept" in seed:
        kept, fp = seed["single_hits_kept"], seed["at_false_positive_rate"]
        text += f"; single hits kept {kept:.1%} at {fp:.1%} false positives"
    return text


def _accuracy(card: dict) -> str:
    test = card["test"]
    return f"{test['metric']} {test['mean']:.1%}, mean of {len(test['seeds'])} seeds (spread {test['spread']:.1%})"
