"""Plain-text tables of a run's metrics, for `manage.py evaluate` and logs."""

from __future__ import annotations


def _f(value) -> str:
    return "  n/a" if value is None else f"{value:.3f}"


def metrics_table(metrics: dict, *, title: str = "") -> str:
    lines = [title] if title else []
    lines += [
        f"items {metrics['n']}  answered {metrics['answered']}  passed {metrics['passed']}",
        "",
        "metric        value",
        f"precision     {_f(metrics['precision'])}",
        f"recall        {_f(metrics['recall'])}",
        f"F1            {_f(metrics['f1'])}",
        f"accuracy      {_f(metrics['accuracy'])}",
        f"Cohen's κ     {_f(metrics['kappa'])}",
        f"rule prec.    {_f(metrics['rule_precision'])}",
        f"rule recall   {_f(metrics['rule_recall'])}",
        "",
        "confusion (expected → answered)   violating  not_violating  no_answer",
    ]
    for label, row in metrics["confusion"].items():
        lines.append(
            f"  {label:<31} {row['violating']:>9}  {row['not_violating']:>13}  {row['no_answer']:>9}"
        )
    lines += ["", "language   n     precision  recall  F1"]
    for lang, m in metrics["by_language"].items():
        lines.append(
            f"  {lang:<8} {m['n']:<5} {_f(m['precision']):>9}  {_f(m['recall']):>6}  {_f(m['f1'])}"
        )
    if metrics["failures"]:
        lines += ["", "failures by reason"]
        lines += [f"  {reason:<22} {count}" for reason, count in metrics["failures"].items()]
    if metrics.get("by_group"):
        lines += ["", "group                               n      pass rate"]
        for name, g in metrics["by_group"].items():
            lines.append(f"  {name:<33} {g['n']:<6} {g['pass_rate']:.3f}")
    if metrics.get("must_pass_failed"):
        lines += ["", f"must-pass items failing: {', '.join(metrics['must_pass_failed'])}"]
    lines += [
        "",
        f"tokens {metrics['tokens']:,}  model time {metrics['latency_ms'] / 1000:.1f} s"
        + (f"  wall {metrics['seconds']:.1f} s" if "seconds" in metrics else ""),
    ]
    return "\n".join(lines) + "\n"
