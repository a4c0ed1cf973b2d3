#!/usr/bin/env bash
# A minimal rewrite of the archived reference `app` Update Module's ArtifactInstall, driving an
# orchestrator sub-module through the argv contract (docs/sub-module-api.md) exactly as
# the reference does: LOAD every image, STOP the previous composition, ROLLOUT the new one, and on
# failure ROLLBACK to the last good one. Used by the tests to show that the reference can drive our
# sub-module.
#
# usage: reference-app.sh <sub-module> <store> <application> <unpacked-artifact-dir>
#   <unpacked-artifact-dir>/images/<id>/{image.img,url-new.txt,url-current.txt}, .../manifests/
# exit: 0 installed; 1 failed and rolled back; 2 failed and rollback failed too
set -u
sub=$1 store=$2 app=$3 data=$4
say() { echo "reference-app: $*" >&2; }

mkdir -p "$store"
for d in "$data"/images/*/; do
  url_new=$(cat "$d/url-new.txt"); url_current=$(cat "$d/url-current.txt")
  say "LOAD $url_new"
  "$sub" LOAD "$app" "$url_new" "$d/image.img" "$url_current" || { say "LOAD of $url_new failed"; exit 1; }
done

rm -rf "$store/$app-previous"
if [ -d "$store/$app" ]; then
  mv "$store/$app" "$store/$app-previous"
  say "STOP previous"
  "$sub" STOP "$app" "$store/$app-previous/manifests" || say "STOP of the previous composition failed"
fi
mkdir -p "$store/$app"
cp -r "$data/manifests" "$store/$app/manifests"

say "ROLLOUT"
if "$sub" ROLLOUT "$app" "$store/$app/manifests"; then
  rm -rf "$store/$app-last"
  cp -r "$store/$app" "$store/$app-last"
  rm -rf "$store/$app-previous"
  say "installed"
  exit 0
fi

say "ROLLOUT failed; rolling back"
if [ -d "$store/$app-last" ]; then
  if "$sub" ROLLBACK "$app" "$store/$app-last/manifests" "$store/$app/manifests"; then
    rm -rf "$store/$app"; cp -r "$store/$app-last" "$store/$app"
    exit 1
  fi
elif [ -d "$store/$app-previous" ]; then
  if "$sub" ROLLOUT "$app" "$store/$app-previous/manifests"; then
    rm -rf "$store/$app"; mv "$store/$app-previous" "$store/$app"
    exit 1
  fi
fi
say "rollback failed"
exit 2
