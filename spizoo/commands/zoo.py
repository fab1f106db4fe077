"""``spizoo zoo``: the trained models that ship with spizoo, and their model cards."""

from __future__ import annotations

import argparse

from spizoo.models import zoo

DESCRIPTION = """\
    The trained models inside the package (spizoo.models.zoo), usable without training wherever a
    run directory is: spizoo classify, evaluate, export, monitor, emc and fit-summary take zoo:NAME. `spizoo zoo list`
    lists them with their test figure; `spizoo zoo show NAME` prints a model card: the data it
    was trained on (config and its SHA-256), the training command, test metrics over seeds, the
    detector, photon-energy and size ranges, and known limits. A model too large to ship is listed
    as "card only": its card says why, and the commands that train it.

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
        found = zoo.entries()
        return {"models": {e.name: e.card for e in found}, "shipped": {e.name: e.shipped for e in found}}
    if not args.name:
        raise ValueError("spizoo zoo show needs a model name; spizoo zoo list gives them")
    try:
        entry = zoo.entry(args.name)
    except KeyError as err:
        raise ValueError(err.args[0]) from None
    return {"models": {entry.name: entry.card}, "path": str(entry.path), "shipped": {entry.name: entry.shipped}}


def summary_line(summary: dict) -> str:
    models = summary["models"]
    if "path" in summary:
        (name,) = models
        return f"{zoo.PREFIX}{name}: {models[name]['summary']}"
    return f"{len(models)} model(s)" + ("" if models else " (the zoo is empty)")


def summary_rows(summary: dict, args: argparse.Namespace) -> list[tuple[str, str]]:
    if "path" not in summary:
        return [
            (zoo.PREFIX + name, f"{card['summary']} — {_test(card)}" + " (card only)" * (not summary["shipped"][name]))
            for name, card in summary["models"].items()
        ]
    ((name, card),) = summary["models"].items()
    data, test = card["data"], card["test"]
    shipped = summary["shipped"][name]
    what = f"{card['precision']}, {summary['path']}" if shipped else f"card only: {card['not_shipped']}"
    rows = [
        ("model", f"{card['model']} ({card['task']}), {what}"),
        ("trained on", f"{data['config']} (sha256 {data['config_sha256'][:16]}…), {data['patterns']}"),
        ("ranges", "; ".join(f"{k} {v}" for k, v in card["ranges"].items())),
        ("command", card["training_command"]),
        ("test", _test(card)),
    ]
    rows += [(f"  seed {s['seed']}", _seed(s)) for s in test["seeds"]]
    if shipped:
        rows.append(("check", f"{card['check']['accuracy']:.1%} on {card['check']['patterns']} regenerated patterns"))
    rows += [("limit", limit) for limit in card["limits"]]
    if shipped:
        rows.append(("use", f"spizoo classify {zoo.PREFIX}{name} FILES --out results.h5"))
    else:
        rows += [("obtain", command) for command in card["obtain"]["commands"]]
        outside = f"{summary['path']}/data_config.yaml, the same file"
        rows.append(("  config", f"{data['config']} is in a spizoo checkout; elsewhere use {outside}"))
        rows.append(("  takes", card["obtain"]["time"]))
    return rows


def _seed(seed: dict) -> str:
    if "mean_relative_error" in seed:
        return (
            f"mean relative error {seed['mean_relative_error']:.2%}, maximum {seed['max_relative_error']:.2%}, "
            f"on {seed['patterns']} test patterns"
        )
    text = f"{seed['accuracy']:.1%} on {seed['patterns']} test patterns"
    if "single_hits_kept" in seed:
        kept, fp = seed["single_hits_kept"], seed["at_false_positive_rate"]
        text += f"; single hits kept {kept:.1%} at {fp:.1%} false positives"
    return text


def _test(card: dict) -> str:
    test, n = card["test"], len(card["test"]["seeds"])
    form = ".2%" if "mean_relative_error" in test["seeds"][0] else ".1%"
    return f"{test['metric']} {test['mean']:{form}}, mean of {n} seed{'s' * (n > 1)} (spread {test['spread']:{form}})"
