#!/usr/bin/env bash
# Regenerate one committed results folder from a clean commit: its runs, table.md and README.md.
#
#   results/regenerate.sh FOLDER PRESET[,PRESET...] [clft run options and overrides...]
#   e.g. results/regenerate.sh quickstart-reference quickstart --jobs 2 train.log_with=[tensorboard]
# Several presets (comma-separated, sharing one experiment name) run in turn into the one folder.
# KEEP=1 keeps the folder's finished runs (they are skipped when this code made them; a run
# made by other code stops the sweep): for continuing an interrupted regeneration.
# TABLE_OPTIONS (e.g. "--reference --ci") go to the table command, which the README records.
# HELPERS=N starts N more `clft run` processes on the same folder, each running the presets in the
# reverse order (the run locks share the runs: none trains twice), e.g. to fill the cores a preset's
# --jobs cannot (a one-run preset, or runs of very different lengths); the README records them.
#
# Refuses a tree whose code or presets differ from HEAD (a result must name the commit that made it).
# The README records the command, the wall time, the commit and the table command that
# tests/test_committed_results.py renders again (docs/architecture.md, "Committed results").
set -euo pipefail
cd "$(dirname "$0")/.."
folder=$1 preset=$2
shift 2
helpers=${HELPERS:-0}
[[ $helpers =~ ^[0-9]+$ ]] || { echo "regenerate.sh: HELPERS must be a whole number (0 or more), got '$helpers'" >&2; exit 2; }
if [ -n "$(git status --porcelain -- clft experiments benchmarks)" ]; then
  echo "regenerate.sh: clft/, experiments/ or benchmarks/ differ from HEAD; commit first" >&2
  exit 2
fi
commit=$(git rev-parse HEAD)  # the code that makes the runs (HEAD may move while they run)
clft=${CLFT:-.venv/bin/clft}
out=results/$folder
[ "${KEEP:-0}" = 1 ] || rm -rf "$out"
started=$(date +%s)
IFS=, read -r -a presets <<< "$preset"
prefix=""  # the Regenerate line's environment
reversed=()
for one in "${presets[@]}"; do reversed=("$one" "${reversed[@]}"); done
helper_pids=()
stop_helpers() {  # the main process failed: end the helpers' runs too (their finished tasks are checkpointed)
  for pid in "${helper_pids[@]}"; do pkill -TERM -P "$pid" 2>/dev/null || true; kill "$pid" 2>/dev/null || true; done
}
trap stop_helpers ERR INT TERM
run_preset() {  # run_preset PRESET [options...]: one preset into the folder
  OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 "$clft" run "$1" --out "$out" --quiet "${@:2}"
}
recorded() {  # recorded PRESET [options...]: run_preset's command as the README shows it
  echo "    clft run $1 --out $out --quiet ${*:2}"
}
for _ in $(seq 1 "$helpers"); do
  (for one in "${reversed[@]}"; do run_preset "$one" "$@" || exit $?; done) &
  helper_pids+=($!)
  sleep "${HELPER_DELAY:-5}"  # the first process claims the folder before the next one looks at it
done
commands=""
for one in "${presets[@]}"; do
  run_preset "$one" "$@"
  commands+="$(recorded "$one" "$@")"$'\n'
done
trap - ERR INT TERM
for pid in "${helper_pids[@]}"; do
  wait "$pid" || { echo "regenerate.sh: a helper process failed (exit $?)" >&2; exit 1; }
done
if [ "$helpers" -gt 0 ]; then
  commands+=$'\n'"and $helpers helper process(es) running, at the same time, on the same folder:"$'\n'
  for one in "${reversed[@]}"; do commands+="$(recorded "$one" "$@")"$'\n'; done
  commands+="(the run locks shared the runs between the processes; none trained twice)"$'\n'
  prefix="HELPERS=$helpers "
fi
seconds=$(( $(date +%s) - started ))
wall_scope="(the whole sweep, including start-up and evaluation)"
if [ "${KEEP:-0}" = 1 ]; then
  wall_scope="for this invocation only (KEEP=1: it continued the folder; the runs an earlier invocation finished or began are not counted here, and each run's train_seconds are in its JSON)"
fi
table_options=${TABLE_OPTIONS:-}
# shellcheck disable=SC2086  # the options are words
"$clft" table "$out" $table_options --output "$out/table.md"
cat > "$out/README.md" <<EOF
# $folder

Made from commit $commit (clean tree) on $(nproc --all) CPU cores, $(date -u +%Y-%m-%d).

$commands
Wall time: ${seconds} s ${wall_scope}.

Table: \`clft table $out ${table_options:+$table_options }--output $out/table.md\`

Regenerate: \`${prefix}results/regenerate.sh $folder $preset $*\`
EOF
echo "regenerated $out in ${seconds} s"
