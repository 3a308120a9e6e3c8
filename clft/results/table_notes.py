"""Lines printed under a table: footnotes for undefined metrics, the forgetting definition and statistics,
provenance warnings."""

from __future__ import annotations

from clft.results.metrics import FORGETTING_DEFINITION, UNDEFINED_REASONS
from clft.results.staleness import source_of, stale_codes
from clft.results.stats import ALPHA, CONFIDENCE

SUPERSCRIPTS = "¹²³⁴⁵⁶⁷⁸⁹"
SIGNIFICANT_MARK = "†"


def provenance_warnings(runs: list[dict]) -> list[str]:
    """A warning when the runs come from more than one code identity (or record none), and one when any
    was made from a dirty tree; empty when every run comes from one clean, recorded code identity."""
    lines = []
    identities = {source_of(run) for run in runs}
    if identities == {None}:
        lines.append(f"warning: none of these {len(runs)} runs records a code identity (made before clft recorded "
                     "one); re-run them with `clft run EXP --rerun-stale` to tie them to code")
    elif len(identities) > 1:
        lines.append(f"warning: these runs come from {len(identities)} code identities ({stale_codes(runs)}); "
                     "re-run the old ones with `clft run EXP --rerun-stale`")
    dirty = [run for run in runs if isinstance(run.get("code"), dict) and run["code"].get("git_dirty")]
    if dirty:
        lines.append(f"warning: {len(dirty)} of {len(runs)} runs were made from a tree with uncommitted changes "
                     "under clft/ (dirty); commit and re-run them to make them traceable")
    return lines + stale_settled_notes(runs)


def stale_settled_notes(runs: list[dict]) -> list[str]:
    """A warning naming the runs kept by ``--accept-stale`` (made by other code, never re-run under this one)
    and a note on runs re-stamped by ``--verify-stale`` (``clft.sweep.stale_runs``)."""
    lines = []
    accepted = [run for run in runs if isinstance(run.get("stale_accepted"), dict)]
    if accepted:
        lines.append(f"warning: {len(accepted)} of {len(runs)} runs were made by other code and kept with "
                     f"--accept-stale, neither re-run nor verified ({stale_codes(accepted)}); "
                     "`clft run EXP --verify-stale` or `--rerun-stale` ties them to the code that accepted them")
    verified = [run["stale_verification"] for run in runs if isinstance(run.get("stale_verification"), dict)]
    if verified:
        rerun = sorted({key for record in verified for key in record.get("rerun", [])})
        lines.append(f"note: {len(verified)} of {len(runs)} runs were made by older code and re-stamped after "
                     f"--verify-stale re-ran {len(rerun)} of them with identical matrices ({', '.join(rerun)})")
    return lines


def undefined_footnotes(used: list[str]) -> list[str]:
    """``n/d¹: <reason>`` for every key of :data:`clft.results.metrics.UNDEFINED_REASONS` used, in order."""
    return [f"n/d{SUPERSCRIPTS[i]}: {UNDEFINED_REASONS[key]}." for i, key in enumerate(used)]


def forgetting_footnote(n_tasks: list[int]) -> list[str]:
    """The definition of the Forgetting column (:data:`clft.results.metrics.FORGETTING_DEFINITION`) when some row
    has T ≥ 2 tasks (``n_tasks``: one entry per row), so a reader knows which of the field's definitions
    the numbers follow; empty when no row has a forgetting value."""
    return [FORGETTING_DEFINITION + "."] if any(n >= 2 for n in n_tasks) else []


def ci_footnote(has_reference: bool) -> str:
    """What ``--ci`` adds: the interval, and (when a scenario has a finetune row) the significance mark."""
    text = (f"[low, high]: {CONFIDENCE:.0%} confidence interval of the mean over seeds "
            "(t distribution, n−1 degrees of freedom; blank for one seed)")
    if not has_reference:
        return text + "; no significance marks: no scenario has a finetune row with ≥ 2 seeds."
    return text + f"; {SIGNIFICANT_MARK}: differs from the scenario's finetune row by Welch's t-test, p < {ALPHA}."
