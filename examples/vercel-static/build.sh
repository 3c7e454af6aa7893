#!/bin/sh
# The site's build, as vercel.json's buildCommand runs it: copies the pages into the
# output directory and stamps it.
set -eu
rm -rf public
mkdir -p public
cp -R src/. public/
echo "built by the vercel.json buildCommand" > public/build.txt
