"""One classified run on several processes (``accelerate launch`` / ``torchrun``): every process trains
(``clft.engine.distributed``), the main one takes the run's lock and writes its checkpoints and result;
its decisions (skip / train / error) are broadcast to the others."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

from clft.config.experiment import ExperimentConfig
from clft.config.validation import check_no_links, safe_join
from clft.engine.distributed import Parallel
from clft.engine.run_checkpoint import resume_run, save_task_checkpoint
from clft.engine.runner import execute
from clft.errors import ConfigError
from clft.sweep.build import build_run, setup_run
from clft.sweep.classify import PlannedRun, already_done, checkpoint_identity
from clft.sweep.locks import RunLock, RunLockedError
from clft.sweep.record import run_identity, write_result
from clft.sweep.run import LOCK_POLL_SECONDS, remove_tree


def run_one_parallel(cfg: ExperimentConfig, planned: PlannedRun, out_dir: Path, *, base_dir: Path | None,
                     resume: bool, overwrite: bool, parallel: Parallel, rerun_stale: bool = False, log=print) -> Path:
    """``clft.sweep.run.run_one`` for a data-parallel group: every process trains, the main one owns the files."""
    plan, resolved, config_hash = planned.plan, planned.resolved, planned.config_hash
    setup = setup_run(cfg, plan, base_dir)
    identity = run_identity(setup)
    expected = checkpoint_identity(config_hash, identity)
    result_path = safe_join(out_dir, setup.scenario, plan.label, f"seed{plan.seed}.json")
    ckpt_root = safe_join(out_dir / ".checkpoints", setup.scenario, plan.label, f"seed{plan.seed}")
    with ExitStack() as held:
        decision = "train"
        if parallel.is_main:
            lock = RunLock(result_path.with_suffix(".lock"))
            while True:
                try:
                    held.enter_context(lock)
                    break
                except RunLockedError:
                    lock.wait(LOCK_POLL_SECONDS)
            try:
                check_no_links(out_dir, result_path)  # under the lock, as clft.sweep.run.run_one
                check_no_links(out_dir, ckpt_root)
                done = already_done(result_path, config_hash, overwrite, rerun_stale, log, identity)
                decision = "skip" if done else "train"
            except ConfigError as exc:
                decision = f"error: {exc}"
        decision = parallel.broadcast(decision)
        if decision.startswith("error: "):
            raise ConfigError(decision.removeprefix("error: "))
        if decision == "skip":
            return result_path
        run = build_run(cfg, plan, base_dir, progress=False, setup=setup)
        run.parallel = parallel
        if resume:
            resume_run(run, ckpt_root, expected, f"{setup.scenario}/{plan.label}/seed{plan.seed}")
        if parallel.is_main:
            run.on_task_end.append(lambda r, task: save_task_checkpoint(r, ckpt_root, expected))
            log(f"[{cfg.name}] {run.scenario} {run.run_id}: training {len(run.tasks) - run.state.next_task} task(s) "
                f"on {parallel.world} processes")
        execute(run)
        if parallel.is_main:
            write_result(result_path, cfg, run, resolved, config_hash, plan.label)
            remove_tree(ckpt_root)
        parallel.broadcast(None)  # the others return once the result is on disk
    return result_path
