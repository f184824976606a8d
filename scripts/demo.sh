#!/usr/bin/env bash
# The main job on embedded defaults: a full sync (copy, then change stream)
# from the built-in generator to the built-in counting sink, a cut-over once
# the sink has caught up, and a look at the checkpoints. No database needed.
set -euo pipefail
cd "$(dirname "$0")/.."
DSYNC=${DSYNC:-./bin/dsync}
STATE=$(mktemp -d "${TMPDIR:-/tmp}/dsync-demo.XXXXXX")
trap 'rm -rf "$STATE"' EXIT

SRC='random://?namespaces=3&docs=200000&size=512&partitions=4&updates=20000&rate=10000'
DST='null://'

echo "== connectors"
$DSYNC connectors
echo
echo "== dsync sync $SRC $DST --until-lag 2s"
$DSYNC sync "$SRC" "$DST" --until-lag 2s --state-dir "$STATE" --log-level warn
echo
FLOW=$($DSYNC state list --state-dir "$STATE" --json | sed -n 's/.*"id":"\([^"]*\)".*/\1/p' | head -1)
echo "== dsync state show $FLOW"
$DSYNC state show "$FLOW" --state-dir "$STATE"
echo
echo "== the same command again resumes the flow: it only streams new changes, then cuts over"
$DSYNC sync "$SRC" "$DST" --until-lag 2s --state-dir "$STATE" --log-level warn --progress none
